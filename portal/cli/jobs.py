"""`flask jobs …`: the consumer that runs background jobs, and what the jobs did."""
from __future__ import annotations

import json
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db

group = AppGroup("jobs", help="Background jobs: run the consumer, list and inspect jobs.")


@group.command("consumer")
@click.option("-w", "--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run at the same time (threads).")
def consumer(workers: int):
    """Run jobs from the queue (HUEY_URL) until stopped: Ctrl-C lets running jobs finish,
    SIGTERM stops at once (their jobs are marked failed). Run one per machine as needed."""
    from portal.jobs import get_queue

    queue = get_queue(current_app._get_current_object())
    if queue.immediate:
        raise click.ClickException("HUEY_URL is memory://: jobs run inline, there is nothing to consume.")
    click.echo(f"Job consumer on {queue.describe()} (queue {queue.name!r}), {workers} worker(s).")
    start_reaper(current_app._get_current_object())
    # max_delay: an idle SQLite queue is polled at least every second, so a job waits ≤ 1 s.
    queue.huey.create_consumer(workers=workers, worker_type="thread", max_delay=1.0).run()


@group.command("list")
@click.option("-n", "--limit", default=20, show_default=True, help="How many jobs, newest first.")
@click.option("--state", type=click.Choice(["queued", "running", "done", "failed"]))
@click.option("--kind", help="Only jobs of this kind.")
def list_jobs(limit: int, state: str | None, kind: str | None):
    """Show recent jobs: state, progress, who asked, and the error or result."""
    from portal.jobs import progress_of
    from portal.models import Job

    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    jobs = db.session.scalars(query).all()
    if not jobs:
        click.echo("No jobs.")
        return
    click.echo(f"{'id':>6}  {'kind':<18} {'state':<8} {'progress':>11}  {'created (UTC)':<16}  {'by':<16} note")
    for job in jobs:
        p = progress_of(job)
        progress = f"{p.done}/{p.total}" if p.total else (str(p.done) if p.done else "")
        actor = (job.params or {}).get("actor") or {}
        by = actor.get("name") or f"{job.created_by_type}:{job.created_by_id or ''}"
        note = job.error.splitlines()[0] if job.error else (json.dumps(job.result) if job.result else "")
        created = f"{job.created_at:%Y-%m-%d %H:%M}" if job.created_at else ""
        click.echo(
            f"{job.id:>6}  {job.kind:<18} {job.state:<8} {progress:>11}  {created:<16}  "
            f"{by[:16]:<16} {note[:70]}"
        )


@group.command("show")
@click.argument("job_id", type=int)
def show(job_id: int):
    """Everything about one job: parameters, result, error, timestamps."""
    from portal.jobs import progress_of
    from portal.models import Job

    job = db.session.get(Job, job_id)
    if job is None:
        raise click.ClickException(f"No job {job_id}.")
    p = progress_of(job)
    click.echo(f"Job {job.id}: {job.kind}, {job.state}, progress {p.done}/{p.total}")
    click.echo(f"  task      {job.task_id}")
    click.echo(f"  created   {job.created_at}  by {job.created_by_type}:{job.created_by_id or ''}")
    click.echo(f"  started   {job.started_at or ''}")
    click.echo(f"  finished  {job.finished_at or ''}")
    click.echo(f"  params    {json.dumps(job.params, ensure_ascii=False)}")
    if job.result:
        click.echo(f"  result    {json.dumps(job.result, ensure_ascii=False)}")
    if job.error:
        click.echo(f"  error     {job.error}")


@group.command("ping")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for a consumer.")
def ping(timeout: float):
    """Queue a no-op job and wait for a consumer to run it: exits 1 when none does."""
    from portal.domain.actors import Actor
    from portal.jobs import enqueue
    from portal.models import Job, JobState

    job = enqueue("ping", {}, actor=Actor.system("cli"))
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        state = db.session.get(Job, job.id).state
        if state in (JobState.DONE, JobState.FAILED) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if state != JobState.DONE:
        raise click.ClickException(f"Job {job.id} is still {state}: is `flask jobs consumer` running?")
    click.echo(f"A consumer ran job {job.id}.")


def start_reaper(app):
    """Mark jobs whose worker is gone (lease expired) interrupted: now, then every lease/2
    seconds, in a daemon thread beside the consumer's workers."""
    import threading

    from portal.jobs import lease_seconds, reap_interrupted_jobs

    def reap() -> None:
        with app.app_context():
            try:
                reaped = reap_interrupted_jobs()
                if reaped:
                    click.echo(f"Interrupted job(s) whose worker is gone: {', '.join(map(str, reaped))}.")
            except Exception:  # the database may be away for a moment; try again later
                current_app.logger.warning("could not look for interrupted jobs", exc_info=True)
            finally:
                db.session.remove()

    reap()
    interval = max(1.0, lease_seconds(app) / 2)

    def loop() -> None:
        while True:
            time.sleep(interval)
            reap()

    threading.Thread(target=loop, name="job-reaper", daemon=True).start()


@group.command("resume")
@click.argument("job_id", type=int)
def resume(job_id: int):
    """Resume an interrupted job (its worker died) as a new job with the same parameters —
    also for kinds without a staff page, such as document rendering."""
    from portal.domain import DomainError
    from portal.domain.actors import Actor
    from portal.jobs import reap_interrupted_jobs, resume_job
    from portal.models import Job

    reap_interrupted_jobs()
    job = db.session.get(Job, job_id)
    if job is None:
        raise click.ClickException(f"No job {job_id}.")
    try:
        new = resume_job(job, actor=Actor.system("cli"))
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Job {job_id} resumed as job {new.id} ({new.kind}). Follow it with: flask jobs show {new.id}")
