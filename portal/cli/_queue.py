"""`--queue`: long commands run here by default, or as a background job with --queue."""
from __future__ import annotations

import click

queue_option = click.option(
    "--queue", "queued", is_flag=True,
    help="Run as a background job (the `flask jobs consumer` worker does the work) instead of here.",
)


def enqueue_and_report(kind: str, params: dict, actor) -> None:
    from portal.jobs import enqueue

    job = enqueue(kind, params, actor=actor)
    click.echo(f"Queued job {job.id} ({kind}). Follow it with: flask jobs show {job.id}")
