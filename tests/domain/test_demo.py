"""The demo data: deterministic for a seed, and it tells the story the README promises."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from stdnum.cz import dic as cz_dic

from portal.demo import (
    DEMO_BILLING_EMAIL,
    DEMO_BILLING_PASSWORD,
    DEMO_CUSTOMER_EMAIL,
    DEMO_CUSTOMER_PASSWORD,
    DEMO_OPERATOR_EMAIL,
    DEMO_OPERATOR_PASSWORD,
    company_id_with_checksum,
    load_demo_data,
    name_key,
)
from portal.models import (
    Agreement,
    AgreementState,
    Contact,
    ContactKind,
    Customer,
    CustomerKind,
    CustomerLogin,
    CustomerService,
    Invoice,
    Location,
    Operator,
    Payment,
    PaymentState,
    Reminder,
    ServiceDefinition,
    ServiceState,
)
from tests.conftest import clean_tables

TODAY = date(2026, 11, 26)
SIZE = 12  # small and short, to keep the test quick; the CLI default is 200 customers, 24 months
MONTHS = 6


def snapshot(db) -> dict:
    """The key columns of what the demo made, in a canonical order (no ids or timestamps)."""
    return {
        "customers": db.execute(
            select(Customer.customer_number, Customer.kind, Customer.first_name, Customer.last_name,
                   Customer.company_name, Customer.company_id, Customer.street, Customer.variable_symbol)
            .order_by(Customer.customer_number)
        ).all(),
        "services": db.execute(
            select(Customer.customer_number, ServiceDefinition.code, CustomerService.state, CustomerService.ordered_on,
                   CustomerService.activated_on, CustomerService.billing_to, CustomerService.price_override)
            .join(Customer, CustomerService.customer_id == Customer.id)
            .join(ServiceDefinition, CustomerService.definition_id == ServiceDefinition.id)
            .order_by(Customer.customer_number, CustomerService.ordered_on, ServiceDefinition.code,
                      CustomerService.state)
        ).all(),
        "invoices": db.execute(
            select(Invoice.number, Invoice.customer_number, Invoice.issue_date, Invoice.due_date, Invoice.gross_total,
                   Invoice.paid_amount).order_by(Invoice.series, Invoice.number)
        ).all(),
        "payments": db.execute(
            select(Payment.received_on, Payment.amount, Payment.variable_symbol, Payment.state)
            .order_by(Payment.received_on, Payment.bank_reference, Payment.amount)
        ).all(),
        "reminders": db.execute(
            select(Reminder.issued_on, Reminder.level, Reminder.amount_due).order_by(Reminder.issued_on, Reminder.level,
                                                                                      Reminder.amount_due)
        ).all(),
        "agreements": db.execute(select(Agreement.number, Agreement.state).order_by(Agreement.number)).all(),
    }


def test_demo_tells_its_story_and_is_the_same_every_time(app, db, client):
    summary = load_demo_data(db, customers=SIZE, seed=7, today=TODAY, months=MONTHS)
    db.commit()
    assert "customer@example.com" in summary

    # Three locations, one of them invoicing in EUR; people and companies with valid IČO.
    assert {loc.currency.value for loc in db.scalars(select(Location))} == {"CZK", "EUR"}
    customers = db.scalars(select(Customer)).all()
    assert len(customers) == SIZE
    for c in customers:
        assert c.name_key == name_key(c.last_name or c.company_name)
        assert c.name_key.isascii()
        if c.kind == CustomerKind.COMPANY:
            assert cz_dic.is_valid(c.company_id)
    assert len({c.variable_symbol for c in customers}) == SIZE
    phones = db.scalars(select(Contact).where(Contact.kind == ContactKind.PHONE)).all()
    assert all(p.value_key.isdigit() for p in phones)

    # Every service state occurs.
    states = set(db.scalars(select(CustomerService.state).distinct()))
    assert states == set(ServiceState)

    # The demo customer: the README's login, one overdue invoice with a reminder, one
    # agreement awaiting acceptance, the promised services.
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.email == DEMO_CUSTOMER_EMAIL))
    demo = login.customer
    codes = {s.definition.code: s.state for s in db.scalars(
        select(CustomerService).where(CustomerService.customer_id == demo.id))}
    assert codes["NET500"] == ServiceState.ACTIVE
    assert {"TVPLUS", "PUBLICIP", "VOICEFLEX"} <= set(codes)
    overdue = db.scalars(select(Invoice).where(
        Invoice.customer_id == demo.id, Invoice.due_date < TODAY - timedelta(days=7),
        Invoice.paid_amount < Invoice.gross_total)).all()
    assert len(overdue) == 1
    assert db.scalar(select(Reminder.id).where(Reminder.customer_id == demo.id))
    assert db.scalar(select(Payment.id).where(Payment.customer_id == demo.id))
    assert db.scalar(select(Agreement.id).where(Agreement.customer_id == demo.id,
                                               Agreement.state == AgreementState.ISSUED))

    # Invoices for the past months, each adding up.
    invoices = db.scalars(select(Invoice)).all()
    months = {inv.issue_date.replace(day=1) for inv in invoices}
    assert len(months) == MONTHS
    for inv in invoices:
        assert sum((line.gross for line in inv.lines), Decimal(0)) == inv.gross_total
        assert sum((line.net for line in inv.lines), Decimal(0)) == inv.net_total
        assert sum((row.gross for row in inv.vat_breakdown), Decimal(0)) == inv.gross_total
    assert db.scalar(select(Payment.id).where(Payment.state == PaymentState.UNMATCHED))

    # The demo logins work on both faces; the billing clerk is limited to Brno.
    assert client.post("/login", data={"email": DEMO_CUSTOMER_EMAIL, "password": DEMO_CUSTOMER_PASSWORD}
                       ).status_code == 302
    for email, password in ((DEMO_OPERATOR_EMAIL, DEMO_OPERATOR_PASSWORD), (DEMO_BILLING_EMAIL, DEMO_BILLING_PASSWORD)):
        staff = app.test_client()
        assert staff.post("/staff/login", data={"email": email, "password": password}).status_code == 302
    clerk = db.scalar(select(Operator).where(Operator.email == DEMO_BILLING_EMAIL))
    assert [loc.code for loc in clerk.locations] == ["BRN"]
    assert clerk.rights == {"billing.run", "payments.write", "customers.read"}

    # Same seed, same today, fresh tables: the same world.
    first = snapshot(db)
    db.remove()  # a fresh session: the next run reuses the ids
    clean_tables(db.get_bind())
    load_demo_data(db, customers=SIZE, seed=7, today=TODAY, months=MONTHS)
    db.commit()
    assert snapshot(db) == first


def test_another_seed_gives_other_people(db):
    load_demo_data(db, customers=SIZE, seed=1, today=TODAY, history=False)
    one = snapshot(db)["customers"]
    db.remove()
    clean_tables(db.get_bind())
    load_demo_data(db, customers=SIZE, seed=2, today=TODAY, history=False)
    two = snapshot(db)["customers"]
    assert one != two
    assert [c.customer_number for c in one] == [c.customer_number for c in two]


def test_company_id_checksum():
    assert company_id_with_checksum("1234567") == "12345679"  # the well-known example
    assert cz_dic.is_valid(company_id_with_checksum("2596001"))
