"""A customer's balance and account statement: the one query path selfcare and staff share.

The rule: balance = Σ issued invoices (and advances) − Σ issued credit notes − Σ payments
received from the customer, per currency, as of a date (invoices by issue date, payments by
the date received). A payment the bank reversed (state `reversed`) was never the customer's
money: it counts nowhere, neither in the balance nor on the statement. Positive: the customer owes; negative: the customer has credit. A cancelled
invoice counts for nothing, and neither do the credit notes correcting it (cancelling issues a
full credit note: the pair is void); payments not yet identified (no customer) are nobody's. Every
function here issues a fixed number of SQL statements, however many rows there are.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased

from portal.documents.statement_lines import SOURCE_LABEL, describe_entry
from portal.domain import DomainError
from portal.domain.invoice_state import PAYABLE_TYPES, _cur, _money
from portal.models import Invoice, InvoiceState, InvoiceType, Payment, PaymentSource, PaymentState
from portal.models.base import ZERO

BALANCE_TYPES = (*PAYABLE_TYPES, InvoiceType.CREDIT_NOTE)
# Within a day: documents first, then the money that paid them.
_KIND_ORDER = {"invoice": 0, "credit_note": 1, "payment": 2}
# The corrected invoice of a credit note, aliased once: an alias builds proxies of all the
# table's columns, which cost about a millisecond a page when made per call.
_CORRECTED = aliased(Invoice, name="corrected")


def customer_balance(session: Session, customer_id: int, *, as_of: date | None = None) -> dict[str, Decimal]:
    """{currency: balance} — positive = the customer owes — as of the end of `as_of` (default:
    everything). Two SQL statements. Currencies the customer never dealt in are absent."""
    invoices, paid = _balance_statements(as_of is not None)
    params = {"customer_id": customer_id, "as_of": as_of} if as_of is not None else {"customer_id": customer_id}
    balance: dict[str, Decimal] = {}
    for currency, total in session.execute(invoices, params):
        balance[_cur(currency)] = balance.get(_cur(currency), ZERO) + _money(total)
    for currency, total in session.execute(paid, params):
        balance[_cur(currency)] = balance.get(_cur(currency), ZERO) - _money(total)
    return dict(sorted(balance.items()))


@functools.cache
def _balance_statements(with_as_of: bool):
    """customer_balance's two statements, built once with bound parameters (building them and
    their cache keys cost ~0.2 ms a call)."""
    corrected = _CORRECTED
    customer_id = bindparam("customer_id")
    invoices = (
        select(Invoice.currency, func.sum(Invoice.gross_total))
        .outerjoin(corrected, corrected.id == Invoice.corrects_id)
        .where(Invoice.customer_id == customer_id, *_counted(corrected))
    )
    paid = select(Payment.currency, func.sum(Payment.amount)).where(Payment.customer_id == customer_id,
                                                                     Payment.state != PaymentState.REVERSED)
    if with_as_of:
        invoices = invoices.where(Invoice.issue_date <= bindparam("as_of"))
        paid = paid.where(Payment.received_on <= bindparam("as_of"))
    return invoices.group_by(Invoice.currency), paid.group_by(Payment.currency)


def _counted(corrected) -> tuple:
    """Issued invoices, advances and credit notes — not those correcting a cancelled invoice."""
    return (
        Invoice.state == InvoiceState.ISSUED,
        Invoice.type.in_(BALANCE_TYPES),
        or_(Invoice.corrects_id.is_(None), corrected.state == InvoiceState.ISSUED),
    )


@dataclass
class StatementEntry:
    on: date
    kind: str  # "invoice" | "credit_note" | "payment"
    reference: str  # invoice number; payment's VS or bank reference
    description: str
    currency: str
    debit: Decimal  # what the customer was charged
    credit: Decimal  # what was paid or credited
    balance: Decimal  # running balance in this currency after the entry
    invoice_id: int | None = None
    payment_id: int | None = None
    due_date: date | None = None
    variable_symbol: str | None = None
    # What the line says, as parts: worded by describe_entry (portal.documents.statement_lines)
    # in the reader's language (the page in the request's, the PDF in the customer's).
    # `description` is the English text.
    parts: dict = field(default_factory=dict)


@dataclass
class Statement:
    customer_id: int
    start: date
    end: date
    opening: dict[str, Decimal]  # balance at the start of `start`
    entries: list[StatementEntry]
    debit_total: dict[str, Decimal] = field(default_factory=dict)
    credit_total: dict[str, Decimal] = field(default_factory=dict)
    closing: dict[str, Decimal] = field(default_factory=dict)  # balance at the end of `end`

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.opening) | set(self.closing))

    def entries_in(self, currency: str) -> list[StatementEntry]:
        return [e for e in self.entries if e.currency == currency]


def customer_statement(session: Session, customer_id: int, start: date, end: date) -> Statement:
    """The customer's account statement for [start, end]: opening balance per currency,
    every invoice, credit note and payment in date order (documents before payments on the
    same day) with a running balance, totals and the closing balance (= opening + debits −
    credits). Four SQL statements, whatever the number of entries."""
    if start > end:
        raise DomainError(_("The statement must start before it ends."), field="start")
    opening = customer_balance(session, customer_id, as_of=start - timedelta(days=1))
    corrected = _CORRECTED
    invoice_rows = session.execute(
        select(Invoice, corrected.number)
        .outerjoin(corrected, corrected.id == Invoice.corrects_id)
        .where(Invoice.customer_id == customer_id, *_counted(corrected),
               Invoice.issue_date >= start, Invoice.issue_date <= end)
    ).all()
    payment_rows = session.scalars(
        select(Payment).where(Payment.customer_id == customer_id, Payment.received_on >= start,
                              Payment.received_on <= end, Payment.state != PaymentState.REVERSED)
    ).all()

    raw: list[tuple] = []
    for invoice, corrected_number in invoice_rows:
        amount = _money(invoice.gross_total)
        if invoice.type == InvoiceType.CREDIT_NOTE:
            entry = StatementEntry(invoice.issue_date, "credit_note", invoice.number, "",
                                   _cur(invoice.currency), ZERO, -amount, ZERO, invoice_id=invoice.id,
                                   variable_symbol=invoice.variable_symbol,
                                   parts={"corrected": corrected_number, "reason": invoice.correction_reason})
        else:
            period = ((invoice.period_start, invoice.period_end)
                      if invoice.period_start and invoice.period_end else None)
            entry = StatementEntry(invoice.issue_date, "invoice", invoice.number, "",
                                   _cur(invoice.currency), amount, ZERO, ZERO, invoice_id=invoice.id,
                                   due_date=invoice.due_date, variable_symbol=invoice.variable_symbol,
                                   parts={"advance": invoice.type == InvoiceType.ADVANCE, "period": period})
        entry.description = describe_entry(entry)
        raw.append((entry.on, _KIND_ORDER[entry.kind], invoice.id, entry))
    for payment in payment_rows:
        details = ", ".join(p for p in (payment.counterparty_name, payment.message) if p)
        entry = StatementEntry(
            payment.received_on, "payment", payment.variable_symbol or payment.bank_reference or f"#{payment.id}",
            "", _cur(payment.currency), ZERO, _money(payment.amount), ZERO,
            payment_id=payment.id, variable_symbol=payment.variable_symbol,
            parts={"source": SOURCE_LABEL.get(payment.source, SOURCE_LABEL[PaymentSource.MANUAL]), "details": details},
        )
        entry.description = describe_entry(entry)
        raw.append((entry.on, _KIND_ORDER["payment"], payment.id, entry))
    raw.sort(key=lambda r: r[:3])

    running = dict(opening)
    debit_total: dict[str, Decimal] = {}
    credit_total: dict[str, Decimal] = {}
    entries = []
    for *_key, entry in raw:
        c = entry.currency
        running[c] = running.get(c, ZERO) + entry.debit - entry.credit
        entry.balance = running[c]
        debit_total[c] = debit_total.get(c, ZERO) + entry.debit
        credit_total[c] = credit_total.get(c, ZERO) + entry.credit
        entries.append(entry)
    for c in running:
        debit_total.setdefault(c, ZERO)
        credit_total.setdefault(c, ZERO)
        opening.setdefault(c, ZERO)
    return Statement(customer_id, start, end, dict(sorted(opening.items())), entries,
                     dict(sorted(debit_total.items())), dict(sorted(credit_total.items())),
                     dict(sorted(running.items())))
