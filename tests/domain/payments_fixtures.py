"""Invoices made directly (independent of the billing engine) for the payment tests:
issued, one line and one VAT row, totals consistent."""
from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from portal.domain.actors import Actor
from portal.extensions import db
from portal.models import (
    ActorType,
    Currency,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
)

DATA = Path(__file__).resolve().parent.parent / "data"
SYSTEM = Actor.system("test")
STAFF = Actor(ActorType.OPERATOR, 1, "Staff Member")

_sequence = itertools.count(1)


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def make_invoice(
    customer: Customer,
    gross,
    *,
    due_date: date = date(2025, 1, 15),
    issue_date: date | None = None,
    variable_symbol: str | None = None,
    currency: Currency = Currency.CZK,
    vat_rate: Decimal = Decimal("21.00"),
    type: InvoiceType = InvoiceType.INVOICE,  # noqa: A002 — the model's word
    corrects: Invoice | None = None,
    reason: str = "",
    number: str | None = None,
    id: int | None = None,  # noqa: A002 — a chosen id (seeds that tests address by id)
) -> Invoice:
    """An issued invoice (or credit note, gross < 0, correcting `corrects`) with one line
    and one VAT row whose amounts add up to the totals."""
    seq = next(_sequence)
    gross = money(gross)
    net = money(gross / (1 + vat_rate / 100))
    vat = gross - net
    issue_date = issue_date or due_date - timedelta(days=14)
    number = number or f"{issue_date.year}{seq:06d}"
    invoice = Invoice(
        id=id,
        customer_id=customer.id,
        location_id=customer.location_id,
        type=type,
        series="CN" if type == InvoiceType.CREDIT_NOTE else "FV",
        year=issue_date.year,
        sequence=seq,
        number=number,
        variable_symbol=variable_symbol or number,
        constant_symbol="0308",
        issue_date=issue_date,
        taxable_supply_date=issue_date,
        due_date=due_date,
        currency=currency,
        state=InvoiceState.ISSUED,
        corrects_id=corrects.id if corrects is not None else None,
        correction_reason=reason,
        customer_name=customer.display_name,
        customer_address=", ".join(customer.billing_address_lines),
        customer_number=customer.customer_number,
        supplier={"name": "Example Net s.r.o."},
        net_total=net,
        vat_total=vat,
        gross_total=gross,
        paid_amount=Decimal("0.00"),
    )
    invoice.lines = [InvoiceLine(position=1, description="Internet 100 Mbit", quantity=Decimal("1"),
                                 unit="pcs", unit_price=net, vat_rate=vat_rate, net=net, vat=vat, gross=gross)]
    invoice.vat_breakdown = [InvoiceVat(vat_rate=vat_rate, net=net, vat=vat, gross=gross)]
    db.session.add(invoice)
    db.session.flush()
    return invoice


def make_credit_note(invoice: Invoice, gross, *, issue_date: date | None = None, reason: str = "Outage",
                     id: int | None = None) -> Invoice:  # noqa: A002
    return make_invoice(
        invoice.customer, -abs(money(gross)), due_date=issue_date or invoice.due_date,
        issue_date=issue_date or invoice.issue_date, type=InvoiceType.CREDIT_NOTE, corrects=invoice,
        currency=invoice.currency, reason=reason, id=id,
    )


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()
