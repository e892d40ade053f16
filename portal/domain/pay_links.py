"""Pay links: a signed, expiring link per invoice and per reminder that opens, without
logging in, a page with what is owed and how to pay it (issue 16, item 3).

The rules:
- The link names one invoice or one reminder by an opaque signed token
  (`portal.security.pay_links`); it expires PAY_LINK_DAYS after the invoice's due date or
  the reminder's pay-by date. The same row always has the same link (the one printed on its
  stored PDF is the one in its e-mail and in selfcare).
- What the page shows is read when it is opened: an invoice paid in the meantime says so and
  asks for nothing; a reminder shows every invoice it covers, each with what is still due
  today, and the total of those.
- A token that is not ours, not a pay link, or names a row that is gone or a credit note
  opens nothing, and says nothing about whether such a row exists.
- The page shows the supplier's bank details and payment QR; online payment providers add
  their buttons through `PAYMENT_OPTIONS` (none yet — no button is shown without one).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.documents import customer_supplier, invoice_supplier
from portal.documents.qr import payment_qr
from portal.documents.service import QR_LABELS
from portal.models import Invoice, InvoiceState, InvoiceType, Reminder
from portal.models.base import ZERO
from portal.security.pay_links import Claim, LinkKind, Refusal, read_token, secret_keys


@dataclass(frozen=True)
class OwedInvoice:
    number: str
    variable_symbol: str
    due_date: date
    gross_total: Decimal
    amount_due: Decimal
    cancelled: bool


@dataclass(frozen=True)
class PaymentOption:
    """A button an online payment provider offers for this page (the provider item)."""

    label: str
    url: str


@dataclass(frozen=True)
class PayPage:
    """What a pay link shows, as of the moment it was opened."""

    kind: LinkKind
    invoices: list[OwedInvoice]
    currency: str
    total_due: Decimal
    pay_by: date  # the invoice's due date, the reminder's pay-by date
    variable_symbol: str
    constant_symbol: str | None
    supplier: dict
    qr: dict | None
    expires_on: date
    options: list[PaymentOption] = field(default_factory=list)

    @property
    def nothing_to_pay(self) -> bool:
        return self.total_due <= ZERO


# The provider seam: each callable gets the page and returns its option or None. Empty until
# a payment provider is integrated; the page shows bank transfer details and the QR alone.
PAYMENT_OPTIONS: list[Callable[[PayPage], PaymentOption | None]] = []


def _owed(invoice: Invoice) -> OwedInvoice:
    return OwedInvoice(
        number=invoice.number, variable_symbol=invoice.variable_symbol, due_date=invoice.due_date,
        gross_total=invoice.gross_total, amount_due=invoice.amount_due,
        cancelled=invoice.state == InvoiceState.CANCELLED,
    )


def _qr(currency: str, supplier: dict, amount: Decimal, vs: str, ks: str | None, due: date,
        message: str) -> dict | None:
    found = payment_qr(
        currency=currency, iban=supplier.get("iban"), amount=amount, variable_symbol=vs, constant_symbol=ks,
        due_date=due, message=message, payee_name=supplier.get("name") or "", bic=supplier.get("bic"),
    )
    if found is None:
        return None
    payload, svg = found
    # The label is a msgid ("QR Platba", "EPC QR (SEPA)"): the template translates it.
    return {"payload": payload, "svg": svg, "label": QR_LABELS["CZK" if currency == "CZK" else "EUR"]}


def _invoice_page(invoice: Invoice, claim: Claim) -> PayPage:
    owed = _owed(invoice)
    supplier = invoice_supplier(invoice)
    currency = invoice.currency.value
    return PayPage(
        kind=LinkKind.INVOICE, invoices=[owed], currency=currency, total_due=owed.amount_due,
        pay_by=invoice.due_date, variable_symbol=invoice.variable_symbol,
        constant_symbol=invoice.constant_symbol, supplier=supplier,
        # The same QR as the printed invoice, for what is due now (the selfcare page's too).
        qr=_qr(currency, supplier, owed.amount_due, invoice.variable_symbol, invoice.constant_symbol,
               invoice.due_date, f"Invoice {invoice.number}"),
        expires_on=claim.expires_on,
    )


def _reminder_page(reminder: Reminder, claim: Claim) -> PayPage:
    invoices = sorted(reminder.invoices, key=lambda i: (i.due_date, i.id))
    customer = reminder.case.customer
    supplier = customer_supplier(customer)
    currency = invoices[0].currency.value if invoices else (
        customer.location.currency.value if customer.location else "CZK")
    owed = [_owed(i) for i in invoices]
    total = sum((o.amount_due for o in owed), ZERO)
    still_due = [i for i in invoices if i.amount_due > ZERO]
    # One invoice left: its own symbol; several: the customer's, which pairs to the oldest
    # first (the reminder letter's rule, applied to what is still due today).
    vs = still_due[0].variable_symbol if len(still_due) == 1 else (
        customer.variable_symbol or (invoices[0].variable_symbol if invoices else ""))
    return PayPage(
        kind=LinkKind.REMINDER, invoices=owed, currency=currency, total_due=total, pay_by=reminder.pay_by,
        variable_symbol=vs, constant_symbol=None, supplier=supplier,
        qr=_qr(currency, supplier, total, vs, None, reminder.pay_by, f"Reminder {customer.customer_number}"),
        expires_on=claim.expires_on,
    )


def open_pay_link(session: Session, config, token: str, today: date | None = None) -> PayPage | Refusal:
    """What the pay link `token` shows today, or why it shows nothing (`Refusal`). A credit
    note or a vanished row is UNKNOWN, like a token that was never issued."""
    claim = read_token(secret_keys(config), token, today or date.today())
    if isinstance(claim, Refusal):
        return claim
    if claim.kind == LinkKind.INVOICE:
        invoice = session.get(Invoice, claim.object_id)
        if invoice is None or invoice.type == InvoiceType.CREDIT_NOTE:
            return Refusal.UNKNOWN
        page = _invoice_page(invoice, claim)
    else:
        reminder = session.get(Reminder, claim.object_id)
        if reminder is None:
            return Refusal.UNKNOWN
        page = _reminder_page(reminder, claim)
    if page.nothing_to_pay:
        return page
    options = [o for o in (offer(page) for offer in PAYMENT_OPTIONS) if o is not None]
    return PayPage(**{**page.__dict__, "options": options}) if options else page
