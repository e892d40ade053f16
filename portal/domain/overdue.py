"""What a customer owes late and where dunning stands with them: overdue invoices (issued
invoices, type invoice, something still due, due date before the day), the reminder ladders,
the open debt recovery case, blocking exceptions and the services a case blocked. Read by the
dunning run, by staff pages and by the customer summary; nothing here writes.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.domain import lifecycle
from portal.domain.payments import credited_expr, invoice_due
from portal.models import (
    BlockingException,
    CaseState,
    Customer,
    CustomerService,
    DebtRecoveryCase,
    ExceptionKind,
    Invoice,
    InvoiceState,
    InvoiceType,
    ReminderLevel,
    ServiceState,
)

# -- what is overdue -----------------------------------------------------------------------------


def _overdue_query(customer_ids: list[int], on: date):
    """Rows of (invoice, credited) for the customers' overdue invoices, "credited" as the
    payment rules see it (credit notes that settle an invoice)."""
    credited = credited_expr()
    return (
        select(Invoice, credited.label("credited"))
        .where(
            Invoice.customer_id.in_(customer_ids),
            Invoice.type == InvoiceType.INVOICE,
            Invoice.state == InvoiceState.ISSUED,
            Invoice.due_date < on,
            Invoice.gross_total - Invoice.paid_amount - credited > 0,
        )
        .order_by(Invoice.customer_id, Invoice.due_date, Invoice.id)
    )


def _due(invoice: Invoice, credited) -> Decimal:
    return invoice_due(invoice, credited)


def overdue_by_customer(session: Session, customer_ids: list[int], on: date) -> dict[int, list[tuple[Invoice, Decimal]]]:
    """{customer id: [(invoice, amount due), …]} — overdue on `on` means an issued invoice
    (type invoice) with something still due and a due date before `on`; oldest due first."""
    out: dict[int, list[tuple[Invoice, Decimal]]] = defaultdict(list)
    for invoice, credited in session.execute(_overdue_query(customer_ids, on)):
        due = _due(invoice, credited)
        if due > 0:
            out[invoice.customer_id].append((invoice, due))
    return out


def overdue_invoices(session: Session, customer_id: int, on: date) -> list[tuple[Invoice, Decimal]]:
    """The customer's overdue invoices on `on` with what is due on each, oldest due first."""
    return overdue_by_customer(session, [customer_id], on).get(customer_id, [])


def ladders(session: Session) -> dict[int | None, list[ReminderLevel]]:
    """Reminder levels by billing plan id (None = the default ladder), lowest level first."""
    out: dict[int | None, list[ReminderLevel]] = defaultdict(list)
    for level in session.scalars(select(ReminderLevel).order_by(ReminderLevel.level)):
        out[level.billing_plan_id].append(level)
    return dict(out)


def ladder_for(customer: Customer, all_ladders: dict[int | None, list[ReminderLevel]]) -> list[ReminderLevel]:
    """The customer's billing plan's ladder if it has one, else the default ladder."""
    return all_ladders.get(customer.billing_plan_id) or all_ladders.get(None) or []


def next_level(ladder: list[ReminderLevel], current: int) -> ReminderLevel | None:
    """The first level of the ladder above `current` (0 = no reminder yet), or None at the top."""
    return next((lvl for lvl in ladder if lvl.level > current), None)


def interval(ladder: list[ReminderLevel], level: ReminderLevel) -> int:
    """Days the previous reminder must be old before `level` may follow it: the difference of
    their days_overdue (0 for the first level of the ladder)."""
    before = [lvl for lvl in ladder if lvl.level < level.level]
    return max(level.days_overdue - before[-1].days_overdue, 0) if before else 0


def open_case(session: Session, customer_id: int) -> DebtRecoveryCase | None:
    return session.scalar(_OPEN_CASE, {"customer_id": customer_id})


# Pages ask these for every customer they show: built once, with the customer bound.
_OPEN_CASE = (
    select(DebtRecoveryCase)
    .where(DebtRecoveryCase.customer_id == bindparam("customer_id"), DebtRecoveryCase.state != CaseState.CLOSED)
    .order_by(DebtRecoveryCase.id.desc())
    .limit(1)
)
_ACTIVE_EXCEPTIONS = select(BlockingException).where(
    BlockingException.customer_id == bindparam("customer_id"), BlockingException.revoked_at.is_(None))


def blocking_exception_state(exceptions: list[BlockingException], on: date) -> tuple[bool, date | None]:
    """(never block?, postponed until) from these exceptions on `on`; revoked ones do not count."""
    never, until = False, None
    for exc in exceptions:
        if exc.revoked_at is not None:
            continue
        if exc.kind == ExceptionKind.NEVER_BLOCK:
            never = True
        elif exc.until is not None and exc.until >= on and (until is None or exc.until > until):
            until = exc.until
    return never, until


def active_exceptions(session: Session, customer_id: int, on: date) -> tuple[bool, date | None]:
    """(never block?, postponed until) from the customer's unrevoked exceptions on `on`."""
    return blocking_exception_state(list(session.scalars(_ACTIVE_EXCEPTIONS, {"customer_id": customer_id})), on)


def services_blocked_by(session: Session, case: DebtRecoveryCase) -> list[CustomerService]:
    """The customer's services that are blocked because of this case (their blocking event is
    linked to it) — never a service staff blocked themselves."""
    services = session.scalars(
        select(CustomerService)
        .where(CustomerService.customer_id == case.customer_id, CustomerService.state == ServiceState.BLOCKED)
        .order_by(CustomerService.id)
    ).all()
    out = []
    for service in services:
        event = lifecycle.blocking_event(service)
        if event is not None and event.debt_recovery_case_id == case.id:
            out.append(service)
    return out
