"""Data for the selfcare tests: builders for what tests/factories.py does not cover yet
(invoices, payments, agreements, requests, history, usage), and a second customer who owns
one of everything, for the isolation matrix."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.domain.actors import Actor
from portal.extensions import db as _db
from portal.models import (
    ActorType,
    Aggregation,
    Agreement,
    AgreementState,
    AgreementType,
    CaseState,
    Contact,
    ContactKind,
    ContactPurpose,
    Currency,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Invoice,
    InvoiceLine,
    InvoiceType,
    InvoiceVat,
    Language,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    Reminder,
    RequestAttachment,
    RequestComment,
    RequestKind,
    RequestState,
    ServiceEvent,
    ServiceEventKind,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from portal.models.base import utcnow
from tests.factories import CustomerFactory, CustomerServiceFactory, ServiceDefinitionFactory

_seq = {"n": 0}


def _next() -> int:
    _seq["n"] += 1
    return _seq["n"]


SUPPLIER = {"name": "Example Net s.r.o.", "company_id": "12345679", "vat_id": "CZ12345679",
            "iban": "CZ6508000000192000145399", "bank_account": "19-2000145399/0800"}


def make_invoice(customer, *, gross: Decimal = Decimal("121.00"), paid: Decimal = Decimal("0.00"),
                 issue_date: date = date(2026, 3, 1), due_days: int = 14, lines: int = 1,
                 type: InvoiceType = InvoiceType.INVOICE, corrects=None, service=None) -> Invoice:
    n = _next()
    net = (gross / Decimal("1.21")).quantize(Decimal("0.01"))
    vat = gross - net
    inv = Invoice(
        customer_id=customer.id, location_id=customer.location_id, type=type, series="FV",
        year=issue_date.year, sequence=n, number=f"FV{issue_date.year}{n:05d}", variable_symbol=f"{issue_date.year}{n:05d}"[-10:],
        constant_symbol="0308", issue_date=issue_date, taxable_supply_date=issue_date,
        due_date=issue_date + timedelta(days=due_days), currency=Currency.CZK,
        corrects_id=corrects.id if corrects is not None else None,
        customer_name=customer.display_name, customer_address="Dlouhá 5\n602 00 Brno\nCZ",
        customer_number=customer.customer_number, supplier=dict(SUPPLIER),
        net_total=net, vat_total=vat, gross_total=gross, paid_amount=paid,
    )
    # Lines and VAT rows go in with the invoice, in one flush: an issued invoice takes none later.
    for i in range(lines):
        share = Decimal(1) if i == 0 else Decimal(0)
        inv.lines.append(InvoiceLine(
            position=i + 1, description=f"Internet line {i + 1}",
            period_start=issue_date.replace(day=1), period_end=issue_date.replace(day=28),
            quantity=Decimal("1"), unit="pcs", unit_price=net * share, vat_rate=Decimal("21.00"),
            net=net * share, vat=vat * share, gross=gross * share,
            customer_service_id=service.id if service is not None else None,
        ))
    inv.vat_breakdown.append(InvoiceVat(vat_rate=Decimal("21.00"), net=net, vat=vat, gross=gross))
    _db.session.add(inv)
    _db.session.flush()
    return inv


def make_payment(customer, amount: Decimal, allocations: list[tuple[Invoice, Decimal]] = (),
                 received_on: date = date(2026, 3, 10)) -> Payment:
    allocated = sum((a for _i, a in allocations), Decimal("0.00"))
    payment = Payment(
        received_on=received_on, amount=amount, currency=Currency.CZK, variable_symbol=customer.variable_symbol,
        source=PaymentSource.BANK_IMPORT, bank_reference=f"ref-{_next()}", customer_id=customer.id,
        state=PaymentState.MATCHED if allocated == amount else PaymentState.OVERPAID,
        unallocated=amount - allocated,
    )
    _db.session.add(payment)
    _db.session.flush()
    for invoice, part in allocations:
        _db.session.add(PaymentAllocation(payment_id=payment.id, invoice_id=invoice.id, amount=part, at=utcnow(),
                                          actor_type=ActorType.SYSTEM))
    _db.session.flush()
    return payment


def agreement_type() -> AgreementType:
    n = _next()
    t = AgreementType(name=f"Service agreement {n}", code=f"SA{n}", valid_from=date(2020, 1, 1))
    _db.session.add(t)
    _db.session.flush()
    return t


def make_agreement(customer, services=(), *, state=AgreementState.ISSUED, parent=None, type_=None) -> Agreement:
    n = _next()
    a = Agreement(type_id=(type_ or agreement_type()).id, customer_id=customer.id,
                  number=None if state == AgreementState.DRAFT else f"2026/{n:05d}",
                  conclusion_date=date(2026, 1, 15), state=state, parent_id=parent.id if parent else None,
                  customer_services=list(services))
    _db.session.add(a)
    _db.session.flush()
    return a


def make_request(customer, *, state=RequestState.IN_PROGRESS, kind=RequestKind.QUESTION,
                 subject="Slow internet in the evening", service=None) -> CustomerRequest:
    r = CustomerRequest(customer_id=customer.id, kind=kind, subject=subject, state=state,
                        customer_service_id=service.id if service else None,
                        created_by_type=ActorType.CUSTOMER, created_by_id=customer.id)
    _db.session.add(r)
    _db.session.flush()
    _db.session.add_all([
        RequestComment(request_id=r.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                       author_name=customer.display_name, body="It is slow after 8 pm.", internal=False),
        RequestComment(request_id=r.id, author_type=ActorType.OPERATOR, author_id=1, author_name="Eva",
                       body="STAFF-ONLY: customer is on an overloaded segment", internal=True),
        RequestComment(request_id=r.id, author_type=ActorType.OPERATOR, author_id=1, author_name="Eva",
                       body="Could you tell us your router model?", internal=False),
    ])
    _db.session.flush()
    return r


def make_event(service, kind: ServiceEventKind, effective_on: date, *, reason: str = "",
               scheduled: bool = False, visible: bool = True) -> ServiceEvent:
    e = ServiceEvent(customer_service_id=service.id, kind=kind, effective_on=effective_on,
                     scheduled_for=effective_on if scheduled else None,
                     done_at=None if scheduled else datetime(effective_on.year, effective_on.month, effective_on.day, tzinfo=UTC),
                     reason=reason, actor_type=ActorType.OPERATOR, visible_to_customer=visible)
    _db.session.add(e)
    _db.session.flush()
    return e


def make_usage(service, today: date | None = None) -> UsageItem:
    today = today or date.today()
    tracker = UsageTracker(name=f"Calls {_next()}", vat_rate=Decimal("21.00"))
    _db.session.add(tracker)
    _db.session.flush()
    item = UsageItem(tracker_id=tracker.id, metric="minutes", name="Call minutes", unit="min",
                     aggregation=Aggregation.SUM, step=Decimal("1"), amount_per_step=Decimal("1.5"))
    _db.session.add(item)
    instance = UsageInstance(tracker_id=tracker.id, customer_service_id=service.id)
    _db.session.add(instance)
    _db.session.flush()
    this_month = datetime(today.year, today.month, 2, 10, tzinfo=UTC)
    _db.session.add_all([
        UsageReading(instance_id=instance.id, item_id=item.id, measured_at=this_month, value=Decimal("40")),
        UsageReading(instance_id=instance.id, item_id=item.id, measured_at=this_month + timedelta(hours=5), value=Decimal("2")),
        # Older than 12 months: not on the chart.
        UsageReading(instance_id=instance.id, item_id=item.id, measured_at=this_month - timedelta(days=500), value=Decimal("999")),
    ])
    _db.session.flush()
    return item


def make_reminder(customer, invoices, *, level: int = 1, state: CaseState = CaseState.REMINDED,
                  issued_on: date = date(2026, 4, 25)) -> Reminder:
    case = DebtRecoveryCase(customer_id=customer.id, state=state, level=level, opened_on=issued_on)
    _db.session.add(case)
    _db.session.flush()
    reminder = Reminder(case_id=case.id, customer_id=customer.id, level=level, issued_on=issued_on,
                        pay_by=issued_on + timedelta(days=7), block_on=None, amount_due=Decimal("655.00"),
                        fee=Decimal("50.00"), invoices=list(invoices))
    _db.session.add(reminder)
    _db.session.flush()
    return reminder


def make_attachment(request: CustomerRequest, data: bytes = b"%PDF-1.4\n%%EOF\n") -> RequestAttachment:
    """A file on the request's last reply the customer sees, stored like the portal stores one."""
    from portal.domain.request_attachments import Upload, attach

    comment = _db.session.scalars(select(RequestComment).where(RequestComment.request_id == request.id,
                                                               RequestComment.internal.is_(False))
                                  .order_by(RequestComment.id.desc())).first()
    [row] = attach(_db.session, comment, [Upload("router-guide.pdf", data, "application/pdf")], Actor.system())
    return row


@dataclass
class World:
    """One of everything for a customer."""

    customer: object
    service: CustomerService
    target: object
    agreement: Agreement
    draft: Agreement
    invoice: Invoice
    paid_invoice: Invoice
    payment: Payment
    request: CustomerRequest
    contact: Contact
    reminder: Reminder
    attachment: RequestAttachment


def build_world(customer) -> World:
    target = ServiceDefinitionFactory(customer_name="Internet 1000", price=Decimal("799.00"))
    definition = ServiceDefinitionFactory(customer_name="Internet 300", price=Decimal("605.00"),
                                          selfcare_changeable=True, allowed_targets=[target])
    service = CustomerServiceFactory(customer=customer, definition=definition, installation_street="Krátká 7",
                                     installation_city="Brno", installation_postal_code="602 00",
                                     commitment_until=date(2026, 12, 31))
    agreement = make_agreement(customer, [service])
    draft = make_agreement(customer, [service], state=AgreementState.DRAFT)
    invoice = make_invoice(customer, gross=Decimal("605.00"), issue_date=date(2026, 4, 1), service=service)
    paid_invoice = make_invoice(customer, gross=Decimal("605.00"), paid=Decimal("605.00"),
                                issue_date=date(2025, 4, 1), service=service)
    payment = make_payment(customer, Decimal("700.00"), [(paid_invoice, Decimal("605.00"))])
    request = make_request(customer, state=RequestState.WAITING_FOR_CUSTOMER, service=service)
    contact = Contact(customer_id=customer.id, kind=ContactKind.EMAIL, value=f"{customer.customer_number}@example.com",
                      value_key=f"{customer.customer_number}@example.com".lower(),
                      purpose=ContactPurpose.BILLING, primary=True)
    _db.session.add(contact)
    _db.session.flush()
    # A reminder of a settled debt (its case closed): listed and downloadable, not announced.
    reminder = make_reminder(customer, [invoice], state=CaseState.CLOSED)
    attachment = make_attachment(request)
    return World(customer, service, target, agreement, draft, invoice, paid_invoice, payment, request, contact,
                 reminder, attachment)


@pytest.fixture
def mine(db, customer_login) -> World:
    # English pages and dates, so tests can read them.
    customer_login.language = Language.EN
    world = build_world(customer_login.customer)
    db.commit()
    return world


@pytest.fixture
def theirs(db) -> World:
    world = build_world(CustomerFactory(first_name="Petr", last_name="Cizi"))
    db.commit()
    return world


def field_error(html: str, field_id: str) -> str:
    """The error text shown next to the field `field_id` ("" when none)."""
    m = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>', html, re.S)
    return m.group(1).strip() if m else ""


def text(resp) -> str:
    return resp.get_data(as_text=True)



@pytest.fixture
def staff_client_for_reminders(make_client, db):
    """A second client, logged in as an admin operator (the staff side of a shared document)."""
    from tests.conftest import login_operator
    from tests.factories import OperatorFactory

    op = OperatorFactory(admin=True)
    db.commit()
    client = make_client()
    assert login_operator(client, op.email).status_code == 302
    return client
