"""Customer credit and the settlement of credit notes.

The rules (see `portal.domain.payments` for the whole picture):

- What an overpaid payment has left (`unallocated` > 0, state `overpaid`) is the customer's
  credit, per currency; the next invoice consumes it (`apply_customer_credit`).
- A credit note reduces what the invoice it corrects asks for; money already paid beyond the
  reduced total goes back to customer credit (`settle_credit_note`).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import DomainError, audit
from portal.domain.actors import Actor
from portal.domain.invoice_state import (
    PAYABLE_TYPES,
    _allocate,
    _cur,
    _describe,
    _lock_invoices,
    _lock_open_invoices,
    _lock_payments,
    _money,
    _refresh_paid_at,
    _state,
    invoice_due,
)
from portal.models import (
    Invoice,
    InvoiceState,
    InvoiceType,
    Payment,
    PaymentAllocation,
    PaymentState,
)
from portal.models.base import ZERO


class CreditNoteNotSettleable(DomainError):
    """The document is not an issued credit note correcting an invoice."""


def customer_credit(session: Session, customer_id: int) -> dict[str, Decimal]:
    """The customer's credit per currency: Σ unallocated of their overpaid payments."""
    rows = session.execute(
        select(Payment.currency, func.sum(Payment.unallocated))
        .where(Payment.customer_id == customer_id, Payment.state == PaymentState.OVERPAID)
        .group_by(Payment.currency)
    ).all()
    return {_cur(c): _money(total) for c, total in rows if _money(total) > 0}


def apply_customer_credit(session: Session, customer_id: int, *, actor: Actor, on: date) -> Decimal:
    """Consume the customer's credit (the unallocated rest of overpaid payments, oldest
    payment first) against their open invoices, oldest due first, per currency. Returns the
    amount applied (0 with a single query when the customer has no credit). Invoices that
    become fully paid get `paid_at` = `on` (or their issue date, if later)."""
    payments = list(session.scalars(
        select(Payment)
        .where(Payment.customer_id == customer_id, Payment.state == PaymentState.OVERPAID,
               Payment.unallocated > 0)
        .order_by(Payment.received_on, Payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ))
    if not payments:
        return ZERO
    allocations: list[PaymentAllocation] = []
    for currency in sorted({p.currency for p in payments}):
        queue = [p for p in payments if p.currency == currency]
        for invoice, credited in _lock_open_invoices(session, customer_id, currency):
            while queue and (due := invoice_due(invoice, credited)) > 0:
                payment = queue[0]
                allocations.append(_allocate(session, payment, invoice, min(due, payment.unallocated), actor))
                if payment.unallocated <= 0:
                    payment.state = _state(payment, remainder_is_credit=True)
                    queue.pop(0)
            _refresh_paid_at(invoice, credited, on)
            if not queue:
                break
    applied = sum((a.amount for a in allocations), ZERO)
    if allocations:
        session.flush()
        audit.record(session, actor, "customer.credit_applied", "customer", customer_id,
                     {"applied": applied, "allocations": _describe(allocations)}, customer_id=customer_id)
    return applied


def settle_credit_note(session: Session, credit_note: Invoice, *, actor: Actor, on: date | None = None,
                       apply_credit: bool = True) -> Decimal:
    """Settle a credit note (type credit_note, negative gross, correcting invoice X).

    The rule: a credit note reduces what X asks for — due(X) = gross(X) − paid(X) − credited(X),
    credited(X) = −Σ gross of X's issued credit notes — so nothing is written for an unpaid or
    partly paid X that stays covered. When X was already paid beyond its reduced total, the
    excess is released from X's allocations (newest first) back to their payments, where it
    becomes customer credit (state overpaid); with `apply_credit` it is applied at once to the
    customer's other open invoices (what is left waits for the next invoice or a refund).
    Payment allocations thus remain real money: Σ allocations ≤ payment amount, paid(X) ≤
    its reduced total. The credit note records itself as settled (paid_amount = −gross,
    paid_at = `on`, default its issue date), so settling twice does nothing. Returns the
    amount released to customer credit."""
    if credit_note.type != InvoiceType.CREDIT_NOTE or credit_note.corrects_id is None:
        raise CreditNoteNotSettleable(_("Only a credit note correcting an invoice can be settled."))
    if credit_note.state != InvoiceState.ISSUED or credit_note.gross_total >= 0:
        raise CreditNoteNotSettleable(_("Only an issued credit note with a negative total can be settled."))
    on = on or credit_note.issue_date
    session.flush()
    if credit_note.paid_amount == -credit_note.gross_total:
        return ZERO
    target_id = credit_note.corrects_id
    # Lock order as everywhere: payments first, then the invoice.
    payments = {p.id: p for p in _lock_payments(session, select(PaymentAllocation.payment_id).where(
        PaymentAllocation.invoice_id == target_id))}
    target, credited = _lock_invoices(session, [target_id])[0]
    target.credited_amount = credited
    released = ZERO
    excess = target.paid_amount + credited - target.gross_total
    if excess > 0 and target.type in PAYABLE_TYPES and target.state == InvoiceState.ISSUED:
        allocations = session.scalars(
            select(PaymentAllocation).where(PaymentAllocation.invoice_id == target_id)
            .order_by(PaymentAllocation.at.desc(), PaymentAllocation.id.desc())
        ).all()
        for a in allocations:
            if excess <= 0:
                break
            take = min(a.amount, excess)
            payment = payments[a.payment_id]
            payment.unallocated += take
            target.paid_amount -= take
            excess -= take
            released += take
            if take == a.amount:
                session.delete(a)
            else:
                a.amount -= take
            payment.state = _state(payment, remainder_is_credit=True)
        session.flush()
        session.expire(target, ["allocations"])
        for p in payments.values():
            session.expire(p, ["allocations"])
    _refresh_paid_at(target, credited, on)
    credit_note.paid_amount = -credit_note.gross_total
    credit_note.paid_at = on
    session.flush()
    applied = ZERO
    if released > 0 and apply_credit:
        applied = apply_customer_credit(session, target.customer_id, actor=actor, on=on)
    audit.record(
        session, actor, "credit_note.settled", "invoice", credit_note.id,
        {"credit_note": credit_note.number, "corrects": target.number, "credited": credited,
         "released_to_credit": released, "applied_elsewhere": applied},
        customer_id=target.customer_id,
    )
    return released
