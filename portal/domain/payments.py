"""Payments: recording money received, pairing it with invoices, customer credit, staff
corrections and the settlement of credit notes.

The rules, in the business's words:

- A payment is identified by its variable symbol (VS): an invoice's VS first, then the
  customer's VS, then a customer service's VS. Leading zeros do not matter (banks pad the VS
  to ten digits). A VS that points at more than one customer identifies nobody.
- An identified payment pays the open invoice carrying its VS first, then the customer's
  oldest open invoices (due date, then id) in the payment's currency. Partial payments are
  fine. What is left is customer credit (state `overpaid`, `unallocated` > 0), consumed by
  the next invoice (`apply_customer_credit`).
- An unidentified payment waits for staff (state `unmatched`).
- Payment states: `unmatched` — nothing allocated and the money waits for staff; `partial` —
  partly allocated, the rest waits for staff (after a manual allocation or an unpairing);
  `matched` — fully allocated; `overpaid` — the rest is the customer's credit; `reversed` —
  the bank took the money back (`reverse_payment`): its allocations are removed, so what it
  paid is due again, and it counts in no balance, credit, queue or statement.
- Σ allocations of a payment = amount − unallocated ≤ amount (a reversed payment has neither
  allocations nor anything unallocated); an invoice's `paid_amount` is
  Σ of its allocations and `paid_at` the date it became fully settled (None while it is not).
- What an invoice still asks for is `gross_total − paid_amount − credited`, where `credited`
  is −Σ gross of the issued credit notes correcting it (see `settle_credit_note`).

Rows are locked (SELECT … FOR UPDATE, payments before invoices, invoices by due date and id)
so that concurrent pairing on PostgreSQL cannot allocate the same money or due twice.

This module records payments and holds the staff's corrections (allocate, unpair, assign,
reverse); the rest lives by topic and every name stays importable from here:
`invoice_state` (what an invoice still asks for; the moves on the ledger), `pairing`
(identifying the payer, pairing, suggestions for staff) and `credits` (customer credit,
settling credit notes).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import DomainError, audit, wording
from portal.domain.actors import Actor
from portal.domain.credits import (
    CreditNoteNotSettleable,
    apply_customer_credit,
    customer_credit,
    settle_credit_note,
)
from portal.domain.invoice_state import (
    CENT,
    HALF_CENT,
    MAX_AMOUNT,
    PAYABLE_TYPES,
    STAFF_QUEUE_STATES,
    AllocationNotAllowed,
    _allocate,
    _cur,
    _describe,
    _lock_invoices,
    _lock_payments,
    _money,
    _refresh_paid_at,
    _refuse_reversed,
    _state,
    credited_amounts,
    credited_expr,
    invoice_due,
    open_invoices_query,
)
from portal.domain.pairing import (
    Suggestion,
    _pair,
    identify_customer,
    pair_payment,
    similar_symbols,
    suggest_matches,
    vs_candidates,
)
from portal.models import (
    Currency,
    Customer,
    Invoice,
    InvoiceState,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    StatementImport,
)
from portal.models.base import ZERO

# Every name of the payment rules stays importable from here, whichever module holds it now.
__all__ = [
    "CENT", "HALF_CENT", "MAX_AMOUNT", "PAYABLE_TYPES", "STAFF_QUEUE_STATES",
    "AllocationNotAllowed", "CreditNoteNotSettleable", "InvalidPayment", "ReversalNotAllowed", "Suggestion",
    "allocate", "apply_customer_credit", "assign_customer", "clean_symbol", "credited_amounts", "credited_expr",
    "customer_credit", "identify_customer", "invoice_due", "open_invoices_query", "pair_payment",
    "parse_amount", "parse_currency", "record_payment", "reverse_payment", "settle_credit_note",
    "similar_symbols", "suggest_matches", "unmatched_payments_query", "unpair", "vs_candidates",
    "_cur", "_money", "_new_payment", "_pair",
]


class InvalidPayment(DomainError):
    """The payment's data is not acceptable (amount, currency, symbols…)."""


class ReversalNotAllowed(DomainError):
    """The payment cannot be reversed (already reversed)."""


# ---------------------------------------------------------------- validation helpers


def parse_amount(value, field: str = "amount") -> Decimal:
    """A positive amount with at most two decimals, as a Decimal quantized to cents."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidPayment(_("%(value)s is not an amount.", value=repr(value)), field=field) from None
    if not amount.is_finite():
        raise InvalidPayment(_("%(value)s is not an amount.", value=repr(value)), field=field)
    if amount <= 0:
        raise InvalidPayment(_("The amount must be greater than zero."), field=field)
    if amount != amount.quantize(CENT):
        raise InvalidPayment(_("The amount may have at most two decimals."), field=field)
    if amount > MAX_AMOUNT:
        raise InvalidPayment(_("The amount is too large."), field=field)
    return amount.quantize(CENT)


def parse_currency(value) -> Currency:
    try:
        return Currency(str(value).strip().upper())
    except ValueError:
        known = ", ".join(c.value for c in Currency)
        raise InvalidPayment(_("Unknown currency %(value)s (known: %(known)s).", value=repr(value), known=known),
                             field="currency") from None


# What clean_symbol says of a symbol that is not 1–n digits, per field.
_SYMBOL_DIGITS = {
    "variable_symbol": _l("A variable symbol has 1–%(n)d digits."),
    "constant_symbol": _l("A constant symbol has 1–%(n)d digits."),
    "specific_symbol": _l("A specific symbol has 1–%(n)d digits."),
    None: _l("A symbol has 1–%(n)d digits."),
}


def clean_symbol(value, field: str, max_digits: int) -> str | None:
    """A payment symbol: digits only, at most `max_digits`; blank → None."""
    if value is None:
        return None
    text = str(value).strip().replace(" ", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > max_digits:
        rule = _SYMBOL_DIGITS.get(field, _SYMBOL_DIGITS[None])
        raise InvalidPayment(rule % {"n": max_digits}, field=field)
    return text


def unmatched_payments_query(include_partial: bool = True):
    """The staff queue: payments whose money (or its rest) waits for a decision, oldest first."""
    states = STAFF_QUEUE_STATES if include_partial else (PaymentState.UNMATCHED,)
    return select(Payment).where(Payment.state.in_(states)).order_by(Payment.received_on, Payment.id)


# ---------------------------------------------------------------- recording


def record_payment(
    session: Session,
    *,
    amount: Decimal,
    currency,
    received_on: date,
    actor: Actor,
    variable_symbol: str | None = None,
    source: PaymentSource = PaymentSource.MANUAL,
    customer: Customer | int | None = None,
    bank_reference: str | None = None,
    counterparty_account: str | None = None,
    counterparty_name: str | None = None,
    constant_symbol: str | None = None,
    specific_symbol: str | None = None,
    message: str = "",
    statement_import: StatementImport | None = None,
    pair: bool = True,
) -> Payment:
    """Record money received and (unless `pair=False`) pair it at once.

    Refused with InvalidPayment (naming the field): an amount that is not > 0 or has more than
    two decimals, an unknown currency, symbols that are not digits (VS and SS up to 10, KS up
    to 4), a bank reference already recorded for the same source."""
    payment = _new_payment(
        session,
        amount=amount, currency=currency, received_on=received_on, variable_symbol=variable_symbol,
        source=source, customer=customer, bank_reference=bank_reference,
        counterparty_account=counterparty_account, counterparty_name=counterparty_name,
        constant_symbol=constant_symbol, specific_symbol=specific_symbol, message=message,
        statement_import=statement_import,
    )
    allocations = _pair(session, payment, actor) if pair else []
    audit.record(
        session, actor, "payment.recorded", "payment", payment.id,
        {
            "amount": payment.amount, "currency": payment.currency, "received_on": payment.received_on,
            "variable_symbol": payment.variable_symbol, "source": payment.source, "state": payment.state,
            "unallocated": payment.unallocated, "allocations": _describe(allocations),
        },
        customer_id=payment.customer_id,
    )
    return payment


def _new_payment(session: Session, *, amount, currency, received_on, variable_symbol, source, customer,
                 bank_reference, counterparty_account, counterparty_name, constant_symbol,
                 specific_symbol, message, statement_import, check_reference: bool = True) -> Payment:
    amount = parse_amount(amount)
    currency = parse_currency(currency)
    if not isinstance(received_on, date):
        raise InvalidPayment(_("A payment needs the date it was received."), field="received_on")
    source = PaymentSource(source)
    bank_reference = (bank_reference or "").strip() or None
    if bank_reference and len(bank_reference) > 100:
        raise InvalidPayment(_("The bank reference is longer than 100 characters."), field="bank_reference")
    if bank_reference and check_reference and session.scalar(
        select(Payment.id).where(Payment.source == source, Payment.bank_reference == bank_reference)
    ):
        raise InvalidPayment(_("A payment with bank reference %(reference)s is already recorded.",
                               reference=bank_reference), field="bank_reference")
    customer_id = customer.id if isinstance(customer, Customer) else customer
    payment = Payment(
        received_on=received_on,
        amount=amount,
        currency=currency,
        variable_symbol=clean_symbol(variable_symbol, "variable_symbol", 10),
        constant_symbol=clean_symbol(constant_symbol, "constant_symbol", 4),
        specific_symbol=clean_symbol(specific_symbol, "specific_symbol", 10),
        counterparty_account=(counterparty_account or "").strip()[:50] or None,
        counterparty_name=(counterparty_name or "").strip()[:200] or None,
        message=(message or "").strip()[:300],
        source=source,
        bank_reference=bank_reference,
        statement_import_id=statement_import.id if statement_import is not None else None,
        customer_id=customer_id,
        state=PaymentState.UNMATCHED,
        unallocated=amount,
    )
    session.add(payment)
    session.flush()
    return payment


# ---------------------------------------------------------------- staff corrections


def allocate(session: Session, payment: Payment, invoice: Invoice, amount, *, actor: Actor) -> PaymentAllocation:
    """Staff allocate part of a payment to an invoice. The invoice must be an issued invoice
    (not a credit note) in the payment's currency with at least `amount` still due, the
    payment must have `amount` unallocated, and it must be the invoice customer's payment —
    or unmatched, and then it becomes theirs. The rest keeps its standing: credit stays
    credit, money waiting for staff stays waiting (state partial). Audited."""
    amount = parse_amount(amount)
    _lock_payments(session, [payment.id])
    _refuse_reversed(payment)
    rows = _lock_invoices(session, [invoice.id])
    invoice, credited = rows[0]
    if invoice.type not in PAYABLE_TYPES or invoice.state != InvoiceState.ISSUED:
        raise AllocationNotAllowed(_("Only an issued invoice can be paid."), field="invoice")
    if invoice.currency != payment.currency:
        raise AllocationNotAllowed(
            _("The invoice is in %(invoice_currency)s, the payment in %(payment_currency)s.",
              invoice_currency=invoice.currency.value, payment_currency=payment.currency.value), field="invoice")
    if payment.customer_id is not None and payment.customer_id != invoice.customer_id:
        raise AllocationNotAllowed(_("The invoice belongs to another customer than the payment."), field="invoice")
    if amount > payment.unallocated:
        raise AllocationNotAllowed(
            _("Only %(amount)s of the payment is unallocated.",
              amount=wording.amount(payment.unallocated, payment.currency.value)), field="amount")
    due = invoice_due(invoice, credited)
    if amount > due:
        raise AllocationNotAllowed(_("Only %(amount)s is due on invoice %(number)s.",
                                     amount=wording.amount(due, invoice.currency.value), number=invoice.number),
                                   field="amount")
    was_credit = payment.state == PaymentState.OVERPAID
    before_customer = payment.customer_id
    payment.customer_id = invoice.customer_id
    allocation = _allocate(session, payment, invoice, amount, actor)
    _refresh_paid_at(invoice, credited, payment.received_on)
    payment.state = _state(payment, remainder_is_credit=was_credit)
    session.flush()
    audit.record(
        session, actor, "payment.allocated", "payment", payment.id,
        {"invoice": invoice.number, "invoice_id": invoice.id, "amount": amount,
         "customer_id": [before_customer, payment.customer_id], "state": payment.state,
         "unallocated": payment.unallocated},
        customer_id=payment.customer_id,
    )
    return allocation


def unpair(session: Session, payment: Payment, *, actor: Actor, allocation: PaymentAllocation | None = None) -> Payment:
    """Staff remove one allocation (or all) of a payment: the invoices' paid amounts drop
    (and they are no longer paid), the money goes back to the payment, which waits for staff:
    unmatched when nothing stays allocated, partial otherwise. The customer stays assigned
    (`assign_customer` changes it). Audited."""
    _lock_payments(session, [payment.id])
    _refuse_reversed(payment)
    if allocation is not None:
        if allocation.payment_id != payment.id:
            raise AllocationNotAllowed(_("The allocation belongs to another payment."), field="allocation")
        removed = [allocation]
    else:
        removed = list(payment.allocations)
    if not removed:
        raise AllocationNotAllowed(_("The payment is not paired with any invoice."), field="allocation")
    rows = _lock_invoices(session, [a.invoice_id for a in removed])
    invoices = {inv.id: (inv, credited) for inv, credited in rows}
    detail = []
    for a in removed:
        invoice = invoices[a.invoice_id][0]
        invoice.paid_amount -= a.amount
        payment.unallocated += a.amount
        detail.append({"invoice": invoice.number, "invoice_id": invoice.id, "amount": a.amount})
        session.delete(a)
    for invoice, credited in invoices.values():
        _refresh_paid_at(invoice, credited, None)
    before = payment.state
    payment.state = _state(payment, remainder_is_credit=False)
    session.flush()
    session.expire(payment, ["allocations"])
    for invoice, _credited in invoices.values():
        session.expire(invoice, ["allocations"])
    audit.record(
        session, actor, "payment.unpaired", "payment", payment.id,
        {"removed": detail, "state": [before, payment.state], "unallocated": payment.unallocated},
        customer_id=payment.customer_id,
    )
    return payment


def assign_customer(session: Session, payment: Payment, customer: Customer, *, actor: Actor) -> Payment:
    """Staff say whose payment this is; then it is paired as usual (VS invoice, oldest
    invoices, rest as credit). Refused while it is allocated to another customer's invoices
    (unpair first). Audited."""
    _lock_payments(session, [payment.id])
    _refuse_reversed(payment)
    if payment.customer_id not in (None, customer.id) and payment.allocations:
        raise AllocationNotAllowed(_("The payment is paired with another customer's invoices; unpair it first."),
                                   field="customer")
    before = payment.customer_id
    payment.customer_id = customer.id
    allocations = _pair(session, payment, actor)
    audit.record(
        session, actor, "payment.customer_assigned", "payment", payment.id,
        {"customer_id": [before, customer.id], "state": payment.state, "allocations": _describe(allocations)},
        customer_id=customer.id,
    )
    return payment


def reverse_payment(session: Session, payment: Payment, *, actor: Actor, reason: str, reversed_on: date,
                    reference: str | None = None, statement_import: StatementImport | None = None) -> Payment:
    """The bank took a payment back (a CAMT reversal of the credit): every allocation is
    removed — the invoices it paid are due again (paid amount lowered, no longer paid) — and
    the payment becomes `reversed`, with nothing unallocated, so it is nobody's credit and
    waits in no queue. `reversed_on` is the reversal's booking date, `reference` its bank
    reference (recorded so the same reversal is never applied twice) and `statement_import`
    the import that carried it. Refused (ReversalNotAllowed) for a payment already reversed.
    Audited."""
    _lock_payments(session, [payment.id])
    if payment.state == PaymentState.REVERSED:
        raise ReversalNotAllowed(_("Payment #%(id)s is already reversed.", id=payment.id))
    removed = list(payment.allocations)
    rows = _lock_invoices(session, [a.invoice_id for a in removed]) if removed else []
    invoices = {inv.id: (inv, credited) for inv, credited in rows}
    detail = []
    for a in removed:
        invoice = invoices[a.invoice_id][0]
        invoice.paid_amount -= a.amount
        detail.append({"invoice": invoice.number, "invoice_id": invoice.id, "amount": a.amount})
        session.delete(a)
    for invoice, credited in invoices.values():
        _refresh_paid_at(invoice, credited, None)
    before = payment.state
    payment.state = PaymentState.REVERSED
    payment.unallocated = ZERO
    payment.reversed_on = reversed_on
    payment.reversed_by_reference = (reference or "").strip()[:100] or None
    payment.reversed_by_import_id = statement_import.id if statement_import is not None else None
    session.flush()
    session.expire(payment, ["allocations"])
    for invoice, _credited in invoices.values():
        session.expire(invoice, ["allocations"])
    audit.record(
        session, actor, "payment.reversed", "payment", payment.id,
        {"state": [before, payment.state], "reason": reason, "reversed_on": reversed_on,
         "reference": payment.reversed_by_reference, "statement_import_id": payment.reversed_by_import_id,
         "removed": detail, "amount": payment.amount, "currency": payment.currency},
        customer_id=payment.customer_id,
    )
    return payment
