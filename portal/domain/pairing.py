"""Pairing: who a payment is from, and which invoices it pays.

The rules (see `portal.domain.payments` for the whole picture):

- A payment is identified by its variable symbol (VS): an invoice's VS first, then the
  customer's VS, then a customer service's VS. Leading zeros do not matter (banks pad the VS
  to ten digits). A VS that points at more than one customer identifies nobody.
- An identified payment pays the open invoice carrying its VS first, then the customer's
  oldest open invoices (due date, then id) in the payment's currency. What is left is
  customer credit (state `overpaid`); an unidentified payment waits for staff (`unmatched`).
- Staff are offered suggestions for a payment that waits: open invoices scored by amount,
  VS (exact or one typo away) and customer.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import audit
from portal.domain.actors import Actor
from portal.domain.invoice_state import (
    HALF_CENT,
    PAYABLE_TYPES,
    _allocate,
    _describe,
    _lock_open_invoices,
    _lock_payments,
    _money,
    _refresh_paid_at,
    _refuse_reversed,
    _state,
    credited_expr,
    invoice_due,
)
from portal.models import (
    Customer,
    CustomerService,
    Invoice,
    InvoiceState,
    Payment,
    PaymentAllocation,
)


def vs_candidates(variable_symbol: str | None) -> list[str]:
    """The spellings of a VS that mean the same number: '123' also matches '0000000123'."""
    if not variable_symbol:
        return []
    bare = variable_symbol.lstrip("0") or "0"
    return sorted({bare.zfill(n) for n in range(len(bare), 11)})


def identify_customer(session: Session, variable_symbol: str | None) -> int | None:
    """The customer a VS points at: an invoice's VS first, then a customer's, then a
    service's. None when nobody (or more than one customer) carries it."""
    cands = vs_candidates(variable_symbol)
    if not cands:
        return None
    lookups = (
        select(Invoice.customer_id).where(
            Invoice.variable_symbol.in_(cands), Invoice.type.in_(PAYABLE_TYPES),
            Invoice.state == InvoiceState.ISSUED,
        ),
        select(Customer.id).where(Customer.variable_symbol.in_(cands)),
        select(CustomerService.customer_id).where(CustomerService.variable_symbol.in_(cands)),
    )
    for stmt in lookups:
        ids = set(session.scalars(stmt.distinct().limit(2)))
        if len(ids) == 1:
            return ids.pop()
        if ids:  # ambiguous: the VS belongs to several customers; staff decide
            return None
    return None


def pair_payment(session: Session, payment: Payment, *, actor: Actor) -> Payment:
    """Pair what is left of a payment: identify the customer by VS unless known, pay the open
    invoice carrying the VS, then the oldest open invoices; the rest becomes customer credit
    (overpaid), or the payment stays unmatched when nobody is identified. Audited."""
    _refuse_reversed(payment)
    before = (payment.state, payment.customer_id)
    allocations = _pair(session, payment, actor)
    if allocations or before != (payment.state, payment.customer_id):
        audit.record(
            session, actor, "payment.paired", "payment", payment.id,
            {"state": [before[0], payment.state], "customer_id": [before[1], payment.customer_id],
             "allocations": _describe(allocations)},
            customer_id=payment.customer_id,
        )
    return payment


def _pair(session: Session, payment: Payment, actor: Actor) -> list[PaymentAllocation]:
    _lock_payments(session, [payment.id])
    if payment.customer_id is None:
        payment.customer_id = identify_customer(session, payment.variable_symbol)
        if payment.customer_id is None:
            payment.state = _state(payment, remainder_is_credit=False)
            return []
    allocations: list[PaymentAllocation] = []
    if payment.unallocated > 0:
        rows = _lock_open_invoices(session, payment.customer_id, payment.currency)
        cands = set(vs_candidates(payment.variable_symbol))
        rows.sort(key=lambda r: r[0].variable_symbol not in cands)  # stable: VS first, then oldest
        for invoice, credited in rows:
            if payment.unallocated <= 0:
                break
            due = invoice_due(invoice, credited)
            if due > 0:
                amount = min(due, payment.unallocated)
                allocations.append(_allocate(session, payment, invoice, amount, actor))
                _refresh_paid_at(invoice, credited, payment.received_on)
    payment.state = _state(payment, remainder_is_credit=True)
    session.flush()
    return allocations


# ---------------------------------------------------------------- suggestions for staff


@dataclass
class Suggestion:
    """An open invoice that may be what a payment pays, with why it was suggested."""

    invoice: Invoice
    due: Decimal
    score: int
    reasons: list[str]


def similar_symbols(variable_symbol: str | None) -> list[str]:
    """Spellings a payer may have mistyped for a VS: one digit changed, two neighbouring digits
    swapped, one digit left out or one added — plus the VS itself (without leading zeros).
    Symbols shorter than 4 digits suggest nothing (too many accidental matches)."""
    vs = (variable_symbol or "").lstrip("0")
    if len(vs) < 4 or not vs.isdigit():
        return []
    out = {vs}
    digits = "0123456789"
    for i in range(len(vs)):
        out.add(vs[:i] + vs[i + 1:])  # one left out
        for d in digits:
            out.add(vs[:i] + d + vs[i + 1:])  # one changed
    for i in range(len(vs) + 1):
        for d in digits:
            out.add(vs[:i] + d + vs[i:])  # one added
    for i in range(len(vs) - 1):
        out.add(vs[:i] + vs[i + 1] + vs[i] + vs[i + 2:])  # neighbours swapped
    return sorted(s for s in out if s and len(s) <= 10 and not s.startswith("0"))


def suggest_matches(session: Session, payment: Payment, *, location_ids=None, limit: int = 10) -> list[Suggestion]:
    """Open invoices (issued, payable, something due, the payment's currency) the payment may
    pay, best first. Points: the amount due equals what is left of the payment (3), the
    invoice's VS is the payment's (3) or one typo away from it (2), the customer's own VS is
    one typo away (1), the invoice belongs to the payment's customer (2). Only invoices of
    `location_ids` (None = all) are suggested. A handful of queries whatever the data size."""
    left = _money(payment.unallocated)
    if left <= 0:
        return []
    credited = credited_expr()
    due_expr = Invoice.gross_total - Invoice.paid_amount - credited
    base = select(Invoice, credited.label("credited")).where(
        Invoice.type.in_(PAYABLE_TYPES), Invoice.state == InvoiceState.ISSUED,
        Invoice.currency == payment.currency, due_expr > HALF_CENT,
    )
    if location_ids is not None:
        base = base.where(Invoice.location_id.in_(list(location_ids)))
    exact = set(vs_candidates(payment.variable_symbol))
    similar = similar_symbols(payment.variable_symbol)
    found: dict[int, tuple[Invoice, Decimal]] = {}

    def collect(stmt) -> None:
        for inv, cr in session.execute(stmt.order_by(Invoice.due_date, Invoice.id).limit(50)).all():
            found.setdefault(inv.id, (inv, _money(cr)))

    collect(base.where(due_expr > left - HALF_CENT, due_expr < left + HALF_CENT))
    similar_customers: set[int] = set()
    if similar:
        padded = sorted({s.zfill(10) for s in similar} | set(similar))
        collect(base.where(Invoice.variable_symbol.in_(padded)))
        similar_customers = set(session.scalars(select(Customer.id).where(Customer.variable_symbol.in_(padded))))
        if similar_customers:
            collect(base.where(Invoice.customer_id.in_(sorted(similar_customers))))
    if payment.customer_id is not None:
        collect(base.where(Invoice.customer_id == payment.customer_id))

    out = []
    similar_set = set(similar)
    for inv, cr in found.values():
        due = invoice_due(inv, cr)
        if due <= 0:
            continue
        score, reasons = 0, []
        if due == left:
            score += 3
            reasons.append("amount")
        vs = (inv.variable_symbol or "").lstrip("0")
        if inv.variable_symbol in exact or (vs and vs == (payment.variable_symbol or "").lstrip("0")):
            score += 3
            reasons.append("variable_symbol")
        elif vs in similar_set:
            score += 2
            reasons.append("similar_variable_symbol")
        if inv.customer_id in similar_customers:
            score += 1
            reasons.append("similar_customer_symbol")
        if payment.customer_id is not None and inv.customer_id == payment.customer_id:
            score += 2
            reasons.append("customer")
        out.append(Suggestion(inv, due, score, reasons))
    out.sort(key=lambda s: (-s.score, s.invoice.due_date, s.invoice.id))
    return out[:limit]
