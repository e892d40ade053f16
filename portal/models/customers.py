"""Partners, locations, customers and what belongs to them."""
from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Money, StrEnumType, TimestampMixin, search_key


class Currency(enum.StrEnum):
    CZK = "CZK"
    EUR = "EUR"


class CustomerKind(enum.StrEnum):
    PERSON = "person"
    COMPANY = "company"


class Language(enum.StrEnum):
    CS = "cs"
    EN = "en"


class ContactKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class ContactPurpose(enum.StrEnum):
    BILLING = "billing"
    TECHNICAL = "technical"
    GENERAL = "general"


class AddressKind(enum.StrEnum):
    POSTAL = "postal"
    INSTALLATION = "installation"


class Partner(TimestampMixin, Base):
    """The company that owns locations: the supplier printed on documents."""

    __tablename__ = "partner"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[str | None] = mapped_column(String(20))
    vat_id: Mapped[str | None] = mapped_column(String(20))
    street: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2), default="CZ")
    iban: Mapped[str | None] = mapped_column(String(34))
    bank_account: Mapped[str | None] = mapped_column(String(40))  # local format, e.g. 19-2000145399/0800
    bic: Mapped[str | None] = mapped_column(String(11))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    web: Mapped[str | None] = mapped_column(String(200))
    logo_path: Mapped[str | None] = mapped_column(String(300))

    locations: Mapped[list[Location]] = relationship(back_populates="partner")


class Location(TimestampMixin, Base):
    """A branch or installation of the operator ("CT" in the ISP system)."""

    __tablename__ = "location"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(20), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="RESTRICT"), index=True)
    currency: Mapped[Currency] = mapped_column(StrEnumType(Currency, "currency"), default=Currency.CZK)
    invoice_series_prefix: Mapped[str] = mapped_column(String(10))

    partner: Mapped[Partner] = relationship(back_populates="locations")


customer_group_membership = Table(
    "customer_group_membership",
    Base.metadata,
    Column("customer_id", ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("customer_group.id", ondelete="CASCADE"), primary_key=True),
)


class CustomerGroup(TimestampMixin, Base):
    __tablename__ = "customer_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class Customer(TimestampMixin, Base):
    """A person or company buying services. Billing identity is copied onto each invoice
    at issue, so editing it here never changes an issued invoice."""

    __tablename__ = "customer"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'person' AND last_name IS NOT NULL) OR (kind = 'company' AND company_name IS NOT NULL)",
            name="has_name",
        ),
        CheckConstraint("credit_limit >= 0", name="credit_limit_non_negative"),
        Index("ix_customer_location_active", "location_id", "active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="RESTRICT"))
    customer_number: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[CustomerKind] = mapped_column(StrEnumType(CustomerKind, "customer_kind"))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[str | None] = mapped_column(String(20), index=True)
    vat_id: Mapped[str | None] = mapped_column(String(20))
    # The customer's bank account (direct debit, refunds, recognising their payments).
    iban: Mapped[str | None] = mapped_column(String(34))
    birth_date: Mapped[date | None] = mapped_column(Date)
    street: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2), default="CZ")
    language: Mapped[Language] = mapped_column(StrEnumType(Language, "language"), default=Language.CS)
    billing_plan_id: Mapped[int | None] = mapped_column(ForeignKey("billing_plan.id", ondelete="RESTRICT"))
    variable_symbol: Mapped[str] = mapped_column(String(10), unique=True)
    credit_limit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    dunning_exempt: Mapped[bool] = mapped_column(Boolean, default=False)  # "never block"
    note: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower-cased, accent-free name for indexed prefix search ("novak" finds "Novák").
    name_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    # The street the same way ("dlouha 5" finds "Dlouhá 5"); kept by _keep_street_key.
    street_key: Mapped[str] = mapped_column(String(200), default="", server_default="", index=True)

    location: Mapped[Location] = relationship()
    billing_plan = relationship("BillingPlan")
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Contact.id"
    )
    addresses: Mapped[list[CustomerAddress]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerAddress.id"
    )
    groups: Mapped[list[CustomerGroup]] = relationship(secondary=customer_group_membership)

    @property
    def display_name(self) -> str:
        if self.kind == CustomerKind.COMPANY:
            return self.company_name or ""
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @property
    def billing_address_lines(self) -> list[str]:
        return [line for line in (self.street, f"{self.postal_code} {self.city}".strip(), self.country) if line]


class Contact(TimestampMixin, Base):
    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(StrEnumType(ContactKind, "contact_kind"))
    value: Mapped[str] = mapped_column(String(254))
    # Normalised for search: lower-cased e-mail, digits-only phone.
    value_key: Mapped[str] = mapped_column(String(254), default="", index=True)
    purpose: Mapped[ContactPurpose] = mapped_column(
        StrEnumType(ContactPurpose, "contact_purpose"), default=ContactPurpose.GENERAL
    )
    primary: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


class CustomerAddress(TimestampMixin, Base):
    """Further addresses: postal (if not the billing one) and installation places."""

    __tablename__ = "customer_address"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AddressKind] = mapped_column(StrEnumType(AddressKind, "address_kind"))
    street: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2), default="CZ")
    note: Mapped[str] = mapped_column(String(200), default="")
    street_key: Mapped[str] = mapped_column(String(200), default="", server_default="", index=True)  # see Customer

    customer: Mapped[Customer] = relationship(back_populates="addresses")

    @property
    def one_line(self) -> str:
        return ", ".join(p for p in (self.street, f"{self.postal_code} {self.city}".strip()) if p)


@event.listens_for(Customer, "before_insert")
@event.listens_for(Customer, "before_update")
@event.listens_for(CustomerAddress, "before_insert")
@event.listens_for(CustomerAddress, "before_update")
def _keep_street_key(_mapper, _connection, target) -> None:
    # Every ORM write keeps the search key in step with the street (bulk Core inserts — the
    # benchmarks' datasets — set it themselves).
    target.street_key = search_key(target.street)
