"""`flask services …`: the service lifecycle from the command line (cron)."""
from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("services", help="Customer services: scheduled lifecycle steps.")


@group.command("apply-scheduled")
@click.option("--date", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Carry out steps due by this day (default: today).")
def apply_scheduled(on):
    """Carry out scheduled activations, blocks, unblocks, plan changes and cancellations that
    are due (run daily)."""
    from portal.domain.lifecycle import apply_scheduled as apply

    today = on.date() if on else date.today()
    count = apply(db.session, today=today, actor=Actor.system("cli: services apply-scheduled"))
    db.session.commit()
    click.echo(f"{count} scheduled step{'s' if count != 1 else ''} carried out (due by {today.isoformat()}).")
