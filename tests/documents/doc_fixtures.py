"""Rows the document tests render: invoices, credit notes, agreements, reminders, cancelled
services — made directly, independent of the billing and dunning engines."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from portal.documents import supplier_snapshot
from portal.extensions import db
from portal.models import (
    ActorType,
    Agreement,
    AgreementState,
    AgreementType,
    CaseState,
    Currency,
    DebtRecoveryCase,
    Invoice,
    InvoiceLine,
    InvoiceType,
    InvoiceVat,
    Reminder,
    ReminderLevel,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    PartnerFactory,
    ServiceDefinitionFactory,
)

CENT = Decimal("0.01")


def r2(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def make_customer(currency: Currency = Currency.CZK, **kwargs):
    if currency == Currency.EUR:
        partner = PartnerFactory(
            name="Example Net Slovakia s.r.o.", company_id="50123456", vat_id="SK2120123456",
            street="Hlavná 10", city="Bratislava", postal_code="811 01", country="SK",
            iban="SK3112000000198742637541", bic="TATRSKBX", bank_account=None,
        )
        location = LocationFactory(partner=partner, currency=Currency.EUR)
    else:
        location = LocationFactory()
    return CustomerFactory(location=location, **kwargs)


DEFAULT_LINES = [
    ("Internet 250 Mbit", "1", "500.00", "21"),
    ("TV Basic", "1", "250.00", "12"),
    ("Router rental", "1", "99.1736", "21"),
]


def make_invoice(
    customer=None,
    *,
    lines=None,
    number: str = "2026-000123",
    type: InvoiceType = InvoiceType.INVOICE,
    corrects: Invoice | None = None,
    issue_date: date = date(2026, 2, 1),
    due_date: date = date(2026, 2, 15),
    paid: Decimal = Decimal("0.00"),
    currency: Currency | None = None,
    customer_name: str | None = None,
    reason: str = "",
) -> Invoice:
    """An issued invoice with lines, VAT recapitulation and totals. `lines` are tuples of
    (description, quantity, net unit price, VAT rate); credit notes negate them."""
    customer = customer or make_customer()
    currency = currency or customer.location.currency
    sign = Decimal(-1) if type == InvoiceType.CREDIT_NOTE else Decimal(1)
    seq = int(number.rsplit("-", 1)[-1]) if number.rsplit("-", 1)[-1].isdigit() else 1
    invoice = Invoice(
        customer=customer,
        location=customer.location,
        type=type,
        series=number.split("-")[0] + ("D" if type == InvoiceType.CREDIT_NOTE else ""),
        year=issue_date.year,
        sequence=seq,
        number=number,
        variable_symbol="".join(ch for ch in number if ch.isdigit())[:10],
        constant_symbol="0308",
        issue_date=issue_date,
        taxable_supply_date=issue_date,
        due_date=due_date,
        period_start=date(issue_date.year, issue_date.month, 1),
        period_end=date(issue_date.year, issue_date.month, 28),
        currency=currency,
        corrects=corrects,
        correction_reason=reason,
        customer_name=customer_name or customer.display_name,
        customer_address="\n".join(customer.billing_address_lines),
        customer_company_id=customer.company_id,
        customer_vat_id=customer.vat_id,
        customer_number=customer.customer_number,
        supplier=supplier_snapshot(customer.location.partner),
        net_total=Decimal("0"),
        vat_total=Decimal("0"),
        gross_total=Decimal("0"),
        paid_amount=paid,
    )
    db.session.add(invoice)
    per_rate: dict[Decimal, Decimal] = {}
    for pos, (desc, qty, price, rate) in enumerate(lines or DEFAULT_LINES, 1):
        qty, price, rate = Decimal(qty), Decimal(price), Decimal(rate)
        net = r2(qty * price) * sign
        vat = r2(net * rate / 100)
        invoice.lines.append(
            InvoiceLine(
                position=pos, description=desc, quantity=qty, unit="pcs", unit_price=price * sign,
                vat_rate=rate, net=net, vat=vat, gross=net + vat,
                period_start=invoice.period_start, period_end=invoice.period_end,
            )
        )
        per_rate[rate] = per_rate.get(rate, Decimal("0")) + net
    for rate, net in sorted(per_rate.items()):
        vat = r2(net * rate / 100)
        invoice.vat_breakdown.append(InvoiceVat(vat_rate=rate, net=net, vat=vat, gross=net + vat))
    invoice.net_total = sum((v.net for v in invoice.vat_breakdown), Decimal("0"))
    invoice.vat_total = sum((v.vat for v in invoice.vat_breakdown), Decimal("0"))
    invoice.gross_total = invoice.net_total + invoice.vat_total
    db.session.flush()
    return invoice


def make_credit_note(invoice: Invoice, number: str = "2026-000007", reason: str = "Service outage in February") -> Invoice:
    return make_invoice(
        invoice.customer, lines=[("Credit for outage: Internet 250 Mbit", "1", "100.00", "21")],
        number=number, type=InvoiceType.CREDIT_NOTE, corrects=invoice, reason=reason,
    )


def make_agreement_type(template: str = "standard.html", *, code: str = "STD", is_annex: bool = False) -> AgreementType:
    from sqlalchemy import select

    existing = db.session.scalar(select(AgreementType).where(AgreementType.code == code))
    if existing is not None:
        return existing
    atype = AgreementType(
        name=f"Annex ({code})" if is_annex else f"Service agreement ({code})" if code != "STD" else "Service agreement", code=code, template=template, is_annex=is_annex,
        terms="1. The provider delivers the services listed above.\n\n2. The customer pays the invoices by their due date.",
        valid_from=date(2020, 1, 1),
    )
    db.session.add(atype)
    db.session.flush()
    return atype


def make_agreement(customer=None, *, number: str = "2026/00042", parent: Agreement | None = None,
                   atype: AgreementType | None = None, services: int = 2) -> Agreement:
    customer = customer or make_customer()
    atype = atype or make_agreement_type()
    linked = [
        CustomerServiceFactory(
            customer=customer,
            definition=ServiceDefinitionFactory(commitment_months=24, notice_days=30),
            installation_street="Dlouhá 5", installation_city="Brno", installation_postal_code="602 00",
            commitment_until=date(2028, 1, 31),
        )
        for _ in range(services)
    ]
    agreement = Agreement(
        type=atype, customer=customer, number=number, sequence=42, conclusion_date=date(2026, 1, 15),
        valid_from=date(2026, 2, 1), state=AgreementState.ISSUED, issued_at=datetime(2026, 1, 15, tzinfo=UTC),
        parent=parent, customer_services=linked,
        summary="Change of the internet tariff to 500 Mbit from 1 March 2026." if parent else "",
    )
    db.session.add(agreement)
    db.session.flush()
    return agreement


def make_reminder(customer=None, *, level: int = 2, fee: Decimal = Decimal("100.00"), block_on: date | None = None) -> Reminder:
    customer = customer or make_customer()
    invoices = [
        make_invoice(customer, number="2026-000101", issue_date=date(2026, 1, 1), due_date=date(2026, 1, 15)),
        make_invoice(customer, number="2026-000102", issue_date=date(2026, 2, 1), due_date=date(2026, 2, 15)),
    ]
    db.session.add(ReminderLevel(level=level + 1, days_overdue=30, fee=Decimal("0"), blocks=True))
    case = DebtRecoveryCase(customer=customer, state=CaseState.REMINDED, level=level, opened_on=date(2026, 2, 1))
    db.session.add(case)
    reminder = Reminder(
        case=case, customer_id=customer.id, level=level, issued_on=date(2026, 3, 1), pay_by=date(2026, 3, 8),
        block_on=block_on, amount_due=sum((i.gross_total for i in invoices), Decimal("0")), fee=fee,
        invoices=invoices,
    )
    db.session.add(reminder)
    db.session.flush()
    return reminder


def make_cancelled_service(customer=None, *, end: date = date(2026, 4, 30)):
    customer = customer or make_customer()
    service = CustomerServiceFactory(customer=customer, definition=ServiceDefinitionFactory(notice_days=30),
                                     installation_street="Dlouhá 5", installation_city="Brno",
                                     installation_postal_code="602 00")
    db.session.add(ServiceEvent(
        customer_service=service, kind=ServiceEventKind.CANCEL_REQUESTED, from_state=ServiceState.ACTIVE,
        to_state=ServiceState.CANCELLED, effective_on=date(2026, 3, 31), scheduled_for=end,
        reason="Moving abroad", actor_type=ActorType.CUSTOMER,
    ))
    db.session.flush()
    return service


def pdf_text(pdf: bytes) -> str:
    """The PDF's text (pypdf, so no command-line tool is needed), whitespace collapsed, no-break
    spaces as spaces."""
    import io
    import re

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text(extraction_mode="layout") for page in reader.pages)
    return re.sub(r"\s+", " ", text.replace("\u00a0", " "))


def pdf_pages(pdf: bytes) -> int:
    import io

    import pypdf

    return len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
