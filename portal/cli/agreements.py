"""`flask agreements …`: the acceptance rule's daily run (reminders, then blocking)."""
from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from portal.cli._queue import enqueue_and_report, queue_option
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("agreements", help="Agreements waiting for acceptance.")

DATE = click.DateTime(formats=["%Y-%m-%d"])


@group.command("enforce-acceptance")
@click.option("--date", "on", type=DATE, default=None, help="Run as of this day (default: today).")
@queue_option
def enforce_acceptance(on, queued: bool):
    """Remind customers of unaccepted agreements and block their services when the type says so
    (run daily, like the dunning run)."""
    from portal.domain.agreements import enforce_acceptance as run

    day = on.date() if on else date.today()
    actor = Actor.system("cli: agreements enforce-acceptance")
    if queued:
        enqueue_and_report("agreement_acceptance", {"on": day}, actor)
        return
    result = run(db.session, today=day, actor=actor)
    db.session.commit()
    click.echo(result.summary())
