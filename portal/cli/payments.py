"""`flask payments …`: bank statement import, manual payments, the unmatched queue."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from flask.cli import AppGroup

from portal.cli._queue import queue_option
from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("payments", help="Bank statements, payments and their pairing with invoices.")


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@queue_option
def import_file(file: Path, queued: bool):
    """Import a bank statement (CAMT.053/.054, ABO/GPC, MT940, Fio CSV or CSV) and pair its payments."""
    from portal.domain.statements import import_statement

    if queued:
        from portal.jobs import enqueue_statement_import

        job = enqueue_statement_import(file.name, file.read_bytes(), actor=Actor.system("cli"))
        click.echo(f"Queued job {job.id} (statement_import). Follow it with: flask jobs show {job.id}")
        return

    try:
        imp = import_statement(db.session, file.name, file.read_bytes(), actor=Actor.system("cli"))
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"{file.name}: {exc}") from exc
    db.session.commit()
    click.echo(
        f"Imported {file.name} ({imp.format.value}): {imp.payments_count} new, {imp.duplicates_count} duplicates, "
        f"{imp.matched_count} matched, {imp.unmatched_count} unmatched, total {imp.total}."
    )


@group.command("add")
@click.option("--amount", required=True, help="Amount received, e.g. 605.00")
@click.option("--vs", "variable_symbol", default=None, help="Variable symbol the payer quoted.")
@click.option("--date", "received_on", default=None, help="Date received (YYYY-MM-DD); default today.")
@click.option("--currency", default="CZK", show_default=True)
@click.option("--message", default="", help="A note for the payment.")
def add(amount: str, variable_symbol: str | None, received_on: str | None, currency: str, message: str):
    """Record a payment by hand and pair it."""
    from portal.domain.payments import record_payment

    try:
        day = date.fromisoformat(received_on) if received_on else date.today()
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from exc
    try:
        payment = record_payment(db.session, amount=amount, currency=currency, received_on=day,
                                 variable_symbol=variable_symbol, message=message, actor=Actor.system("cli"))
    except DomainError as exc:
        db.session.rollback()
        hint = f"--{exc.field.replace('_', '-')}" if exc.field else None
        raise click.BadParameter(str(exc), param_hint=hint) from exc
    db.session.commit()
    allocated = payment.amount - payment.unallocated
    click.echo(f"Payment #{payment.id}: {payment.amount} {payment.currency.value}, state {payment.state.value}, "
               f"allocated {allocated}, unallocated {payment.unallocated}"
               + (f", customer #{payment.customer_id}" if payment.customer_id else "") + ".")


@group.command("unmatched")
@click.option("--limit", default=100, show_default=True)
def unmatched(limit: int):
    """List the payments waiting for staff (unmatched, or partly paired), oldest first."""
    from portal.domain.payments import unmatched_payments_query

    rows = db.session.scalars(unmatched_payments_query().limit(limit)).all()
    if not rows:
        click.echo("No payments wait for pairing.")
        return
    for p in rows:
        click.echo(
            f"#{p.id:<6} {p.received_on.isoformat()} {p.amount:>12} {p.currency.value} "
            f"unallocated {p.unallocated:>12}  {p.state.value:<9} VS {p.variable_symbol or '-':<10} "
            f"{(p.counterparty_name or '')[:30]:<30} {p.message[:40]}"
        )
