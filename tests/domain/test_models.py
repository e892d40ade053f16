"""The database itself enforces the model's invariants (domain.md §2, §5)."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from portal.models import (
    Charge,
    ChargeKind,
    Currency,
    Customer,
    CustomerKind,
    CustomerLogin,
    Invoice,
    InvoiceType,
    Payment,
    PaymentSource,
    ServiceDefinition,
)
from tests.factories import (
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)


def _fails(db, fn):
    with pytest.raises((IntegrityError, StatementError)):
        with db.begin_nested():
            fn()
            db.flush()


def test_customer_numbers_and_variable_symbols_are_unique(db):
    c = CustomerFactory()
    _fails(db, lambda: CustomerFactory(customer_number=c.customer_number))
    _fails(db, lambda: CustomerFactory(variable_symbol=c.variable_symbol))


def test_a_customer_has_a_name_for_its_kind(db):
    _fails(db, lambda: CustomerFactory(kind=CustomerKind.COMPANY, company_name=None))
    _fails(db, lambda: CustomerFactory(kind=CustomerKind.PERSON, last_name=None))
    assert CustomerFactory(kind=CustomerKind.COMPANY, company_name="Acme a.s.").display_name == "Acme a.s."


def test_enum_columns_refuse_unknown_values_in_the_database(db):
    c = CustomerFactory()
    db.commit()
    with pytest.raises(IntegrityError):
        with db.begin_nested():
            db.execute(text("UPDATE customer SET kind = 'alien' WHERE id = :id"), {"id": c.id})
    db.rollback()


def test_prices_and_rates_cannot_be_negative(db):
    _fails(db, lambda: ServiceDefinitionFactory(price=Decimal("-1")))
    _fails(db, lambda: ServiceDefinitionFactory(vat_rate=Decimal("100")))
    _fails(db, lambda: CustomerServiceFactory(price_override=Decimal("-5")))


def test_money_round_trips_as_decimal(db):
    d = ServiceDefinitionFactory(price=Decimal("605.1234"))
    db.commit()
    db.expire_all()
    again = db.get(ServiceDefinition, d.id)
    assert isinstance(again.price, Decimal) and again.price == Decimal("605.1234")


def test_timestamps_are_timezone_aware(db):
    c = CustomerFactory()
    db.commit()
    db.expire_all()
    c = db.get(Customer, c.id)
    assert c.created_at.tzinfo is not None and c.created_at.utcoffset().total_seconds() == 0


def test_naive_datetimes_are_refused(db):
    login = CustomerLoginFactory()
    login.last_login_at = datetime(2026, 1, 1, 12, 0)  # naive
    with pytest.raises(StatementError):
        db.flush()
    db.rollback()
    login = CustomerLoginFactory()
    login.last_login_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    db.flush()


def test_login_emails_are_unique(db):
    login = CustomerLoginFactory()
    _fails(db, lambda: CustomerLoginFactory(email=login.email))
    assert db.scalar(select(CustomerLogin).where(CustomerLogin.email == login.email)) is not None


def _charge(service, **kw):
    values = dict(
        customer_id=service.customer_id, customer_service_id=service.id, period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30), kind=ChargeKind.SERVICE, description="Internet", quantity=Decimal(1),
        unit_price=Decimal("500"), vat_rate=Decimal("21"), net=Decimal("500"), vat=Decimal("105"),
        gross=Decimal("605"), currency=Currency.CZK,
    )
    values.update(kw)
    return Charge(**values)


def test_at_most_one_service_charge_per_service_and_period(db):
    service = CustomerServiceFactory()
    db.add(_charge(service))
    db.flush()
    _fails(db, lambda: db.add(_charge(service)))
    # another period, or another kind of charge, is fine
    db.add(_charge(service, period_start=date(2026, 12, 1), period_end=date(2026, 12, 31)))
    db.add(_charge(service, kind=ChargeKind.USAGE, discriminator="item:1"))
    db.flush()


def _invoice(customer, **kw):
    values = dict(
        customer_id=customer.id, location_id=customer.location_id, type=InvoiceType.INVOICE, series="FV",
        year=2026, sequence=1, number="FV-2026-000001", variable_symbol="2600000001", issue_date=date(2026, 11, 1),
        due_date=date(2026, 11, 15), currency=Currency.CZK, customer_name="X", customer_address="Y",
        customer_number=customer.customer_number, net_total=Decimal("100"), vat_total=Decimal("21"),
        gross_total=Decimal("121"),
    )
    values.update(kw)
    return Invoice(**values)


def test_invoice_numbers_are_unique_per_series(db):
    customer = CustomerFactory()
    db.add(_invoice(customer))
    db.flush()
    _fails(db, lambda: db.add(_invoice(customer, sequence=2)))  # same number
    _fails(db, lambda: db.add(_invoice(customer, number="FV-2026-000002")))  # same sequence
    db.add(_invoice(customer, series="DB", number="DB-2026-000001"))
    db.flush()


def test_a_credit_note_must_say_what_it_corrects(db):
    customer = CustomerFactory()
    _fails(db, lambda: db.add(_invoice(customer, type=InvoiceType.CREDIT_NOTE, number="CN-1", series="CN")))


def test_payments_are_positive_and_bank_references_unique(db):
    def payment(**kw):
        values = dict(received_on=date(2026, 11, 3), amount=Decimal("121"), currency=Currency.CZK,
                      source=PaymentSource.BANK_IMPORT, bank_reference="TX1", unallocated=Decimal("121"))
        values.update(kw)
        return Payment(**values)

    db.add(payment())
    db.flush()
    _fails(db, lambda: db.add(payment()))  # re-imported transaction
    _fails(db, lambda: db.add(payment(bank_reference="TX2", amount=Decimal("0"), unallocated=Decimal("0"))))
    _fails(db, lambda: db.add(payment(bank_reference="TX3", unallocated=Decimal("500"))))


def test_locations_have_unique_codes(db):
    loc = LocationFactory()
    _fails(db, lambda: LocationFactory(code=loc.code))
