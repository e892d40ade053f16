"""`flask dunning …`: the dunning run and blocking exceptions."""
from __future__ import annotations

import sys
from datetime import date

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.cli._queue import enqueue_and_report, queue_option
from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("dunning", help="Reminders, debt recovery, blocking and unblocking.")

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _customer(number: str):
    from portal.models import Customer

    customer = db.session.scalar(select(Customer).where(Customer.customer_number == number.strip()))
    if customer is None:
        raise click.ClickException(f"No customer with number {number!r}.")
    return customer


@group.command("run")
@click.option("--date", "on", type=DATE, default=None, help="Run as of this day (default: today).")
@click.option("--dry-run", is_flag=True, help="Show what would happen; write and send nothing.")
@queue_option
def run(on, dry_run: bool, queued: bool):
    """Issue reminders, block and unblock services, close settled cases."""
    from portal.domain.dunning import run_dunning

    day = on.date() if on else date.today()
    if queued:
        enqueue_and_report("dunning_run", {"on": day, "dry_run": dry_run}, Actor.system("cli: dunning run"))
        return
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="Customers", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        result = run_dunning(db.session, on=day, actor=Actor.system("cli: dunning run"), progress=progress,
                             dry_run=dry_run)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    click.echo(result.summary())


@group.command("postpone")
@click.argument("customer_number")
@click.option("--until", type=DATE, required=True, help="No blocking up to and including this day.")
@click.option("--reason", required=True, help="Why (kept with the exception and in the audit log).")
def postpone(customer_number: str, until, reason: str):
    """Postpone blocking of a customer until a date."""
    from portal.domain.dunning import postpone_blocking

    customer = _customer(customer_number)
    try:
        postpone_blocking(db.session, customer, until=until.date(), reason=reason, actor=Actor.system("cli"))
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Blocking of {customer.display_name} ({customer.customer_number}) postponed until "
               f"{until.date().isoformat()}.")


@group.command("never-block")
@click.argument("customer_number")
@click.option("--reason", required=True, help="Why (kept with the exception and in the audit log).")
def never_block(customer_number: str, reason: str):
    """Exempt a customer from blocking (reminders still go out)."""
    from portal.domain.dunning import exempt_from_blocking

    customer = _customer(customer_number)
    try:
        exempt_from_blocking(db.session, customer, reason=reason, actor=Actor.system("cli"))
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"{customer.display_name} ({customer.customer_number}) will never be blocked by dunning.")
