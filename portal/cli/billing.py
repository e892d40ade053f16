"""`flask billing …`: preview and run billing for a month, issue credit notes, cancel invoices."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.cli._queue import enqueue_and_report, queue_option
from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("billing", help="Billing runs, credit notes and cancellations.")

PREVIEW_ROWS = 50


def _actor() -> Actor:
    return Actor.system("cli")


def _money(value) -> str:
    return f"{Decimal(str(value)):,.2f}".replace(",", " ")


def _totals(totals: dict) -> None:
    if not totals:
        click.echo("Totals: nothing to invoice.")
        return
    for currency, t in sorted(totals.items()):
        click.echo(f"Totals {currency}: net {_money(t['net'])}  VAT {_money(t['vat'])}  "
                   f"gross {_money(t['gross'])}  ({t['invoices']} invoices)")


def _invoice_by_number(number: str):
    from portal.models import Invoice

    found = db.session.scalars(select(Invoice).where(Invoice.number == number.strip())).all()
    if not found:
        raise click.ClickException(f"No invoice numbered {number!r}.")
    if len(found) > 1:
        raise click.ClickException(f"Several documents are numbered {number!r}.")
    return found[0]


@group.command("preview")
@click.option("--period", required=True, help="The month to bill, YYYY-MM.")
@click.option("--all", "show_all", is_flag=True, help=f"List every customer (default: the first {PREVIEW_ROWS}).")
def preview(period: str, show_all: bool):
    """Show what a billing run would create. Writes nothing."""
    from portal.domain.billing import preview_billing

    try:
        p = preview_billing(db.session, period)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Billing preview {p.period_start:%Y-%m} ({p.period_start} – {p.period_end})")
    click.echo(f"Services: {p.services}  Charges: {p.charges}  Invoices: {p.invoices}  Customers: {p.customers}")
    _totals(p.totals)
    rows = p.per_customer if show_all else p.per_customer[:PREVIEW_ROWS]
    if rows:
        click.echo("")
        click.echo(f"{'Customer':<12} {'Name':<32} {'Cur':<4} {'Lines':>5} {'Net':>14} {'VAT':>12} {'Gross':>14}")
        for r in rows:
            click.echo(f"{r.number:<12} {r.name[:32]:<32} {r.currency:<4} {r.lines:>5} {_money(r.net):>14} "
                       f"{_money(r.vat):>12} {_money(r.gross):>14}")
        if len(rows) < len(p.per_customer):
            click.echo(f"… and {len(p.per_customer) - len(rows)} more (use --all).")
    db.session.rollback()  # nothing was written; end the read transaction


@group.command("run")
@click.option("--period", required=True, help="The month to bill, YYYY-MM.")
@click.option("--issue-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Issue date of the invoices (default: today).")
@click.option("--batch-size", default=500, show_default=True, help="Customers per committed batch.")
@queue_option
def run(period: str, issue_date, batch_size: int, queued: bool):
    """Bill the month: create charges and issue invoices (running it twice adds nothing)."""
    from portal.domain.billing import billing_period

    issued_on: date | None = issue_date.date() if issue_date else None
    if queued:
        try:
            start, _end = billing_period(period)
        except DomainError as exc:
            raise click.ClickException(str(exc)) from exc
        enqueue_and_report("billing_run", {"period_start": start, "issue_date": issued_on}, _actor())
        return
    state = {"bar": None, "done": 0}

    def progress(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=max(total, 1), label="Billing customers")
            state["bar"].__enter__()
        state["bar"].update(done - state["done"])
        state["done"] = done

    from portal.jobs import run_here
    from portal.models import BillingRun, JobState

    try:
        start, _end = billing_period(period)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    # Run here, but as a job: a run killed mid-way is then detected and resumed like one.
    try:
        job = run_here("billing_run", {"period_start": start, "issue_date": issued_on, "batch_size": batch_size},
                       actor=_actor(), progress=progress)
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
    if job.state != JobState.DONE:
        raise click.ClickException(job.error or "The billing run failed.")
    result = db.session.get(BillingRun, job.result["billing_run_id"])
    click.echo(f"Billing run {result.id} for {result.period_start:%Y-%m}: {result.state}")
    click.echo(f"Charges created: {result.charges_count}  Invoices issued: {result.invoices_count}  "
               f"Customers: {result.customers_count}")
    _totals(result.totals_by_currency or {})


@group.command("credit-note")
@click.argument("invoice_number")
@click.option("--reason", required=True, help="Why the invoice is corrected (printed on the credit note).")
@click.option("--line", "lines", multiple=True, type=int, help="Credit only this line id (repeatable).")
@click.option("--issue-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
def credit_note(invoice_number: str, reason: str, lines: tuple[int, ...], issue_date):
    """Issue a credit note for an invoice (all of it, or the given lines)."""
    from portal.domain.billing import issue_credit_note

    invoice = _invoice_by_number(invoice_number)
    try:
        note = issue_credit_note(db.session, invoice, actor=_actor(), reason=reason, line_ids=list(lines) or None,
                                 issue_date=issue_date.date() if issue_date else None)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Credit note {note.number} issued for {invoice.number}: {_money(note.gross_total)} {note.currency}")


@group.command("cancel")
@click.argument("invoice_number")
@click.option("--reason", required=True, help="Why the invoice is cancelled.")
def cancel(invoice_number: str, reason: str):
    """Cancel an unpaid invoice (issues a full credit note)."""
    from portal.domain.billing import cancel_invoice

    invoice = _invoice_by_number(invoice_number)
    try:
        note = cancel_invoice(db.session, invoice, actor=_actor(), reason=reason)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    suffix = f" by credit note {note.number}" if note else ""
    click.echo(f"Invoice {invoice.number} cancelled{suffix}.")
