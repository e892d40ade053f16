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
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from portal.domain import DomainError, audit
from portal.domain.actors import Actor
from portal.models import (
    Currency,
    Customer,
    CustomerService,
    Invoice,
    InvoiceState,
    InvoiceType,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    StatementImport,
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


class InvalidPayment(DomainError):
    """The payment's data is not acceptable (amount, currency, symbols…)."""


class AllocationNotAllowed(DomainError):
    """A manual allocation, unpairing or customer assignment that the rules refuse."""


class ReversalNotAllowed(DomainError):
    """The payment cannot be reversed (already reversed)."""


class CreditNoteNotSettleable(DomainError):
    """The document is not an issued credit note correcting an invoice."""


# ---------------------------------------------------------------- validation helpers


def parse_amount(value, field: str = "amount") -> Decimal:
    """A positive amount with at most two decimals, as a Decimal quantized to cents."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidPayment(f"{value!r} is not an amount.", field=field) from None
    if not amount.is_finite():
        raise InvalidPayment(f"{value!r} is not an amount.", field=field)
    if amount <= 0:
        raise InvalidPayment("The amount must be greater than zero.", field=field)
    if amount != amount.quantize(CENT):
        raise InvalidPayment("The amount may have at most two decimals.", field=field)
    if amount > MAX_AMOUNT:
        raise InvalidPayment("The amount is too large.", field=field)
    return amount.quantize(CENT)


def parse_currency(value) -> Currency:
    try:
        return Currency(str(value).strip().upper())
    except ValueError:
        known = ", ".join(c.value for c in Currency)
        raise InvalidPayment(f"Unknown currency {value!r} (known: {known}).", field="currency") from None


def clean_symbol(value, field: str, max_digits: int) -> str | None:
    """A payment symbol: digits only, at most `max_digits`; blank → None."""
    if value is None:
        return None
    text = str(value).strip().replace(" ", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > max_digits:
        raise InvalidPayment(f"A {field.replace('_', ' ')} has 1–{max_digits} digits.", field=field)
    return text


def vs_candidates(variable_symbol: str | None) -> list[str]:
    """The spellings of a VS that mean the same number: '123' also matches '0000000123'."""
    if not variable_symbol:
        return []
    bare = variable_symbol.lstrip("0") or "0"
    return sorted({bare.zfill(n) for n in range(len(bare), 11)})


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


def unmatched_payments_query(include_partial: bool = True):
    """The staff queue: payments whose money (or its rest) waits for a decision, oldest first."""
    states = STAFF_QUEUE_STATES if include_partial else (PaymentState.UNMATCHED,)
    return select(Payment).where(Payment.state.in_(states)).order_by(Payment.received_on, Payment.id)


def customer_credit(session: Session, customer_id: int) -> dict[str, Decimal]:
    """The customer's credit per currency: Σ unallocated of their overpaid payments."""
    rows = session.execute(
        select(Payment.currency, func.sum(Payment.unallocated))
        .where(Payment.customer_id == customer_id, Payment.state == PaymentState.OVERPAID)
        .group_by(Payment.currency)
    ).all()
    return {_cur(c): _money(total) for c, total in rows if _money(total) > 0}


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
        raise InvalidPayment("A payment needs the date it was received.", field="received_on")
    source = PaymentSource(source)
    bank_reference = (bank_reference or "").strip() or None
    if bank_reference and len(bank_reference) > 100:
        raise InvalidPayment("The bank reference is longer than 100 characters.", field="bank_reference")
    if bank_reference and check_reference and session.scalar(
        select(Payment.id).where(Payment.source == source, Payment.bank_reference == bank_reference)
    ):
        raise InvalidPayment(f"A payment with bank reference {bank_reference} is already recorded.",
                             field="bank_reference")
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


# ---------------------------------------------------------------- pairing


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
        raise AllocationNotAllowed("Only an issued invoice can be paid.", field="invoice")
    if invoice.currency != payment.currency:
        raise AllocationNotAllowed(
            f"The invoice is in {invoice.currency.value}, the payment in {payment.currency.value}.", field="invoice")
    if payment.customer_id is not None and payment.customer_id != invoice.customer_id:
        raise AllocationNotAllowed("The invoice belongs to another customer than the payment.", field="invoice")
    if amount > payment.unallocated:
        raise AllocationNotAllowed(
            f"Only {payment.unallocated} {payment.currency.value} of the payment is unallocated.", field="amount")
    due = invoice_due(invoice, credited)
    if amount > due:
        raise AllocationNotAllowed(f"Only {due} {invoice.currency.value} is due on invoice {invoice.number}.",
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
            raise AllocationNotAllowed("The allocation belongs to another payment.", field="allocation")
        removed = [allocation]
    else:
        removed = list(payment.allocations)
    if not removed:
        raise AllocationNotAllowed("The payment is not paired with any invoice.", field="allocation")
    rows = _lock_invoices(session, [a.invoice_id for a in removed])
    invoices = {inv.id: (inv, credited) for inv, credited in rows}
    detail = []
    for a in removed:
        invoice, _ = invoices[a.invoice_id]
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
    for invoice, _ in invoices.values():
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
        raise AllocationNotAllowed("The payment is paired with another customer's invoices; unpair it first.",
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
        raise ReversalNotAllowed(f"Payment #{payment.id} is already reversed.")
    removed = list(payment.allocations)
    rows = _lock_invoices(session, [a.invoice_id for a in removed]) if removed else []
    invoices = {inv.id: (inv, credited) for inv, credited in rows}
    detail = []
    for a in removed:
        invoice, _ = invoices[a.invoice_id]
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
    for invoice, _ in invoices.values():
        session.expire(invoice, ["allocations"])
    audit.record(
        session, actor, "payment.reversed", "payment", payment.id,
        {"state": [before, payment.state], "reason": reason, "reversed_on": reversed_on,
         "reference": payment.reversed_by_reference, "statement_import_id": payment.reversed_by_import_id,
         "removed": detail, "amount": payment.amount, "currency": payment.currency},
        customer_id=payment.customer_id,
    )
    return payment


# ---------------------------------------------------------------- credit notes


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
        raise CreditNoteNotSettleable("Only a credit note correcting an invoice can be settled.")
    if credit_note.state != InvoiceState.ISSUED or credit_note.gross_total >= 0:
        raise CreditNoteNotSettleable("Only an issued credit note with a negative total can be settled.")
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


# ---------------------------------------------------------------- internals


def _money(value) -> Decimal:
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT)


def _cur(value) -> str:
    return value.value if hasattr(value, "value") else str(value)


def _refuse_reversed(payment: Payment) -> None:
    if payment.state == PaymentState.REVERSED:
        raise AllocationNotAllowed("The payment was reversed by the bank; it pays nothing.", field="payment")


def _state(payment: Payment, *, remainder_is_credit: bool) -> PaymentState:
    if payment.unallocated <= 0:
        return PaymentState.MATCHED
    if payment.customer_id is not None and remainder_is_credit:
        return PaymentState.OVERPAID
    if payment.unallocated < payment.amount:
        return PaymentState.PARTIAL
    return PaymentState.UNMATCHED


def _allocate(session: Session, payment: Payment, invoice: Invoice, amount: Decimal, actor: Actor) -> PaymentAllocation:
    if amount <= 0 or amount > payment.unallocated:  # the invariant, guarded where it is made
        raise AllocationNotAllowed("An allocation must be positive and within the payment's unallocated amount.")
    allocation = PaymentAllocation(
        payment=payment, invoice=invoice, amount=amount, at=utcnow(), actor_type=actor.type, actor_id=actor.id,
    )
    session.add(allocation)
    payment.unallocated -= amount
    invoice.paid_amount += amount
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
