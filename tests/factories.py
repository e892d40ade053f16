"""factory-boy factories over the shared model; each uses the Flask-SQLAlchemy session."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory
from factory.alchemy import SQLAlchemyModelFactory

from portal.extensions import db
from portal.models import (
    BillingPlan,
    Contact,
    ContactKind,
    ContactPurpose,
    Currency,
    Customer,
    CustomerKind,
    CustomerLogin,
    CustomerService,
    Language,
    Location,
    Operator,
    Partner,
    Period,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
    ServiceState,
)
from portal.security.passwords import hash_password
from tests.conftest import PASSWORD

_hash_cache: dict[str, str] = {}


def password_hash(pw: str = PASSWORD) -> str:
    if pw not in _hash_cache:
        _hash_cache[pw] = hash_password(pw)
    return _hash_cache[pw]


class Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class PartnerFactory(Base):
    class Meta:
        model = Partner

    name = "Example Net s.r.o."
    company_id = "12345679"
    vat_id = "CZ12345679"
    street = "Příkladná 1"
    city = "Praha"
    postal_code = "110 00"
    iban = "CZ6508000000192000145399"
    bank_account = "19-2000145399/0800"


class LocationFactory(Base):
    class Meta:
        model = Location

    name = factory.Sequence(lambda n: f"Location {n}")
    code = factory.Sequence(lambda n: f"L{n:03d}")
    partner = factory.SubFactory(PartnerFactory)
    currency = Currency.CZK
    invoice_series_prefix = factory.Sequence(lambda n: f"{n % 10}")


class BillingPlanFactory(Base):
    class Meta:
        model = BillingPlan

    name = factory.Sequence(lambda n: f"Plan {n}")
    customer_name = "Monthly invoice by e-mail"
    invoice_day = 1
    due_days = 14


class CustomerFactory(Base):
    class Meta:
        model = Customer

    location = factory.SubFactory(LocationFactory)
    customer_number = factory.Sequence(lambda n: f"C{n + 100000}")
    kind = CustomerKind.PERSON
    first_name = "Jana"
    last_name = factory.Sequence(lambda n: f"Nováková{n}")
    company_name = None
    name_key = factory.LazyAttribute(lambda o: (o.last_name or o.company_name or "").lower())
    street = "Dlouhá 5"
    city = "Brno"
    postal_code = "602 00"
    variable_symbol = factory.Sequence(lambda n: f"{n + 7000000}")
    billing_plan = factory.SubFactory(BillingPlanFactory)
    # Tests read English text; a test about Czech sets the language itself.
    language = Language.EN


class ContactFactory(Base):
    class Meta:
        model = Contact

    customer = factory.SubFactory(CustomerFactory)
    kind = ContactKind.EMAIL
    value = factory.Sequence(lambda n: f"contact{n}@example.com")
    value_key = factory.LazyAttribute(lambda o: o.value.lower())
    purpose = ContactPurpose.BILLING
    primary = True


class CustomerLoginFactory(Base):
    class Meta:
        model = CustomerLogin

    customer = factory.SubFactory(CustomerFactory)
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    password_hash = factory.LazyFunction(password_hash)


class OperatorFactory(Base):
    class Meta:
        model = Operator

    email = factory.Sequence(lambda n: f"operator{n}@example.com")
    name = factory.Sequence(lambda n: f"Operator {n}")
    password_hash = factory.LazyFunction(password_hash)

    @classmethod
    def _create(cls, model_class, *args, admin: bool = False, rights: tuple = (), **kwargs):
        """OperatorFactory(admin=True) has every right; OperatorFactory(rights=("billing.run",))
        only those; neither, no right at all."""
        from portal.domain.accounts import ensure_admin_role, ensure_rights
        from portal.models import Role

        obj = super()._create(model_class, *args, **kwargs)
        if admin:
            obj.roles = [ensure_admin_role(db.session)]
        elif rights:
            all_rights = ensure_rights(db.session)
            role = Role(name=f"role-{obj.email}", rights=[all_rights[c] for c in rights])
            db.session.add(role)
            obj.roles = [role]
        db.session.flush()
        return obj


class ServiceGroupFactory(Base):
    class Meta:
        model = ServiceGroup

    name = factory.Sequence(lambda n: f"Internet {n}")
    kind = ServiceGroupKind.INTERNET


class ServiceDefinitionFactory(Base):
    class Meta:
        model = ServiceDefinition

    group = factory.SubFactory(ServiceGroupFactory)
    code = factory.Sequence(lambda n: f"NET{n}")
    name = factory.Sequence(lambda n: f"Internet {n} Mbit")
    customer_name = factory.LazyAttribute(lambda o: o.name)
    price = Decimal("605.00")
    price_includes_vat = True
    vat_rate = Decimal("21.00")
    period = Period.MONTHLY
    commitment_months = 0
    notice_days = 30
    valid_from = date(2020, 1, 1)


class CustomerServiceFactory(Base):
    class Meta:
        model = CustomerService

    customer = factory.SubFactory(CustomerFactory)
    definition = factory.SubFactory(ServiceDefinitionFactory)
    state = ServiceState.ACTIVE
    ordered_on = date(2024, 1, 1)
    activated_on = date(2024, 1, 1)
    billing_from = date(2024, 1, 1)
