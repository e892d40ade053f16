"""What an invoice still asks for, and the few moves every payment rule makes on the ledger.

The rule: an invoice (or advance) asks for `gross_total − paid_amount − credited`, never below
zero, where `credited` is −Σ gross of the issued credit notes correcting it; credit notes and
cancelled invoices ask for nothing. An allocation moves money from a payment's `unallocated`
to an invoice's `paid_amount` and is positive and within what the payment has left; `paid_at`
is the date an invoice became fully settled. The payment rules (`payments`, `pairing`,
`credits`) change allocations only through the helpers here, which also lock the rows they
touch (payments before invoices, invoices by due date and id).
"""
from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.models import (
    Currency,
    Invoice,
    InvoiceState,
    InvoiceType,
    Payment,
    PaymentAllocation,
    PaymentState,
)
from portal.models.base import ZERO, Money, utcnow

CENT = Decimal("0.01")
# Amounts are exact on PostgreSQL; SQLite sums NUMERIC as floats, so "still open" is
# "more than half a cent left" to stay clear of 1e-13 noise.
HALF_CENT = Decimal("0.005")
MAX_AMOUNT = Decimal("9999999999.99")  # Numeric(12, 2)
# An advance invoice is a request for payment, so payments pay it like an invoice.
PAYABLE_TYPES = (InvoiceType.INVOICE, InvoiceType.ADVANCE)
STAFF_QUEUE_STATES = (PaymentState.UNMATCHED, PaymentState.PARTIAL)


class AllocationNotAllowed(DomainError):
    """A manual allocation, unpairing or customer assignment that the rules refuse."""


# ---------------------------------------------------------------- what is still due


def credited_expr(invoice=Invoice):
    """SQL: −Σ gross of the issued credit notes correcting `invoice` (0 when none)."""
    return _credited_expr(invoice)


@functools.lru_cache(maxsize=64)
def _credited_expr(invoice):
    # Built once per entity: constructing it costs ~2 ms a page, and an expression is
    # immutable, so every statement may share it.
    cn = aliased(Invoice, name="credit_note")
    total = (
        select(func.coalesce(func.sum(cn.gross_total), 0))
        .where(
            # A credit note is the corrected invoice's customer's (issue_credit_note copies
            # it). Saying so lets SQLite search the customer's few invoices: once ANALYZE has
            # seen corrects_id is mostly NULL it would rather scan the whole table per row.
            cn.customer_id == invoice.customer_id,
            cn.corrects_id == invoice.id,
            cn.type == InvoiceType.CREDIT_NOTE,
            cn.state == InvoiceState.ISSUED,
        )
        .correlate(invoice)
        .scalar_subquery()
    )
    return type_coerce(-total, Money)


def invoice_due(invoice: Invoice, credited: Decimal | None = ZERO) -> Decimal:
    """What the customer still owes on an invoice: gross − paid − credited, never below 0.
    Credit notes and cancelled invoices ask for nothing."""
    if invoice.type not in PAYABLE_TYPES or invoice.state != InvoiceState.ISSUED:
        return ZERO
    due = invoice.gross_total - invoice.paid_amount - _money(credited)
    return due.quantize(CENT) if due > HALF_CENT else ZERO


def open_invoices_query(customer_id: int, currency: Currency | str | None = None):
    """Rows of (Invoice, credited) for the customer's issued invoices (and advances) with
    something left to pay once payments and credit notes are counted, oldest due first
    (due date, then id). Use `invoice_due(invoice, credited)` for each row's amount due."""
    credited = credited_expr()
    stmt = (
        select(Invoice, credited.label("credited"))
        .where(
            Invoice.customer_id == customer_id,
            Invoice.type.in_(PAYABLE_TYPES),
            Invoice.state == InvoiceState.ISSUED,
            Invoice.gross_total - Invoice.paid_amount - credited > HALF_CENT,
        )
        .order_by(Invoice.due_date, Invoice.id)
    )
    if currency is not None:
        stmt = stmt.where(Invoice.currency == Currency(currency))
    return stmt


def credited_amounts(session: Session, invoice_ids) -> dict[int, Decimal]:
    """{invoice id: credited} for the given invoices, in one query."""
    ids = list(set(invoice_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Invoice.corrects_id, func.sum(Invoice.gross_total))
        .where(
            Invoice.corrects_id.in_(ids),
            Invoice.type == InvoiceType.CREDIT_NOTE,
            Invoice.state == InvoiceState.ISSUED,
        )
        .group_by(Invoice.corrects_id)
    ).all()
    found = {inv_id: -_money(total) for inv_id, total in rows}
    return {i: found.get(i, ZERO) for i in ids}


# ---------------------------------------------------------------- moves on the ledger


def _money(value) -> Decimal:
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT)


def _cur(value) -> str:
    return value.value if hasattr(value, "value") else str(value)


def _refuse_reversed(payment: Payment) -> None:
    if payment.state == PaymentState.REVERSED:
        raise AllocationNotAllowed(_("The payment was reversed by the bank; it pays nothing."), field="payment")


def _state(payment: Payment, *, remainder_is_credit: bool) -> PaymentState:
    if payment.unallocated <= 0:
        return PaymentState.MATCHED
    if payment.customer_id is not None and remainder_is_credit:
        return PaymentState.OVERPAID
    if payment.unallocated < payment.amount:
        return PaymentState.PARTIAL
    return PaymentState.UNMATCHED


# session.info key: customers whose invoices were paid in this transaction (→ settlement).
PAID_CUSTOMERS = "portal.paid_customers"


def _allocate(session: Session, payment: Payment, invoice: Invoice, amount: Decimal, actor: Actor) -> PaymentAllocation:
    if amount <= 0 or amount > payment.unallocated:  # the invariant, guarded where it is made
        raise AllocationNotAllowed(_("An allocation must be positive and within the payment's unallocated amount."))
    allocation = PaymentAllocation(
        payment=payment, invoice=invoice, amount=amount, at=utcnow(), actor_type=actor.type, actor_id=actor.id,
    )
    session.add(allocation)
    payment.unallocated -= amount
    invoice.paid_amount += amount
    session.info.setdefault(PAID_CUSTOMERS, {})[invoice.customer_id] = actor
    return allocation


def _refresh_paid_at(invoice: Invoice, credited: Decimal, on: date | None) -> None:
    """paid_at is the date the invoice became fully settled; None while something is due."""
    if invoice_due(invoice, credited) > 0:
        invoice.paid_at = None
    elif invoice.paid_at is None:
        on = on or date.today()
        invoice.paid_at = max(on, invoice.issue_date)


def _lock_payments(session: Session, ids) -> list[Payment]:
    """Lock payment rows (FOR UPDATE on PostgreSQL) and reload them; ids may be a subquery."""
    return list(session.scalars(
        select(Payment).where(Payment.id.in_(ids)).order_by(Payment.id)
        .with_for_update().execution_options(populate_existing=True)
    ))


def _lock_invoices(session: Session, ids) -> list[tuple[Invoice, Decimal]]:
    credited = credited_expr()
    rows = session.execute(
        select(Invoice, credited.label("credited")).where(Invoice.id.in_(list(set(ids))))
        .order_by(Invoice.due_date, Invoice.id)
        .with_for_update(of=Invoice).execution_options(populate_existing=True)
    ).all()
    return [(inv, _money(c)) for inv, c in rows]


def _lock_open_invoices(session: Session, customer_id: int, currency) -> list[tuple[Invoice, Decimal]]:
    rows = session.execute(
        open_invoices_query(customer_id, currency)
        .with_for_update(of=Invoice).execution_options(populate_existing=True)
    ).all()
    return [(inv, _money(c)) for inv, c in rows]


def _describe(allocations: list[PaymentAllocation]) -> list[dict]:
    return [{"invoice": a.invoice.number, "invoice_id": a.invoice.id, "amount": a.amount} for a in allocations]
