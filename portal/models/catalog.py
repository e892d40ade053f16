"""The catalogue: service groups and definitions (tariffs) with prices, billing plans,
discounts, and the number sequences that documents draw from."""
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
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Rate, StrEnumType, TimestampMixin, UnitPrice


class ServiceGroupKind(enum.StrEnum):
    INTERNET = "internet"
    TV = "tv"
    VOICE = "voice"
    OTHER = "other"


class Period(enum.StrEnum):
    """Billing cycles, calendar-aligned."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    ONE_OFF = "one_off"  # charged once, in the period the service starts

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "yearly": 12, "one_off": 0}[self.value]


class Delivery(enum.StrEnum):
    EMAIL = "email"
    POST = "post"
    NONE = "none"


class PaymentMethod(enum.StrEnum):
    TRANSFER = "transfer"
    DIRECT_DEBIT = "direct_debit"
    CARD = "card"
    CASH = "cash"


class DiscountKind(enum.StrEnum):
    PERCENT = "percent"
    AMOUNT = "amount"


class ServiceGroup(TimestampMixin, Base):
    __tablename__ = "service_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[ServiceGroupKind] = mapped_column(StrEnumType(ServiceGroupKind, "service_group_kind"))
    position: Mapped[int] = mapped_column(Integer, default=0)


service_definition_targets = Table(
    "service_definition_target",
    Base.metadata,
    Column("definition_id", ForeignKey("service_definition.id", ondelete="CASCADE"), primary_key=True),
    Column("target_id", ForeignKey("service_definition.id", ondelete="CASCADE"), primary_key=True),
)


class ServiceDefinition(TimestampMixin, Base):
    """A sellable tariff. `price` is the current price; future prices wait in PriceChange
    and never apply to issued invoices."""

    __tablename__ = "service_definition"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_non_negative"),
        CheckConstraint("vat_rate >= 0 AND vat_rate < 100", name="vat_rate_range"),
        CheckConstraint("commitment_months >= 0", name="commitment_non_negative"),
        CheckConstraint("notice_days >= 0", name="notice_non_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("service_group.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_name: Mapped[str] = mapped_column(String(200))  # shown in selfcare and on invoices
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(UnitPrice)
    price_includes_vat: Mapped[bool] = mapped_column(Boolean, default=True)
    vat_rate: Mapped[Decimal] = mapped_column(Rate)
    period: Mapped[Period] = mapped_column(StrEnumType(Period, "period"), default=Period.MONTHLY)
    commitment_months: Mapped[int] = mapped_column(Integer, default=0)
    notice_days: Mapped[int] = mapped_column(Integer, default=30)
    selfcare_changeable: Mapped[bool] = mapped_column(Boolean, default=False)
    usage_tracker_id: Mapped[int | None] = mapped_column(ForeignKey("usage_tracker.id", ondelete="SET NULL"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The speed profile of an internet service (kbit/s); none = not an internet service.
    down_kbps: Mapped[int | None] = mapped_column(Integer)
    up_kbps: Mapped[int | None] = mapped_column(Integer)

    group: Mapped[ServiceGroup] = relationship()
    allowed_targets: Mapped[list[ServiceDefinition]] = relationship(
        secondary=service_definition_targets,
        primaryjoin=lambda: ServiceDefinition.id == service_definition_targets.c.definition_id,
        secondaryjoin=lambda: ServiceDefinition.id == service_definition_targets.c.target_id,
        order_by=lambda: ServiceDefinition.price,
    )
    price_changes: Mapped[list[PriceChange]] = relationship(
        back_populates="definition", order_by="PriceChange.effective_from", cascade="all, delete-orphan"
    )
    usage_tracker = relationship("UsageTracker")


class PriceChange(TimestampMixin, Base):
    """A price that applies from a date on (never retroactively)."""

    __tablename__ = "price_change"
    __table_args__ = (
        UniqueConstraint("definition_id", "effective_from"),
        CheckConstraint("new_price >= 0", name="new_price_non_negative"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("service_definition.id", ondelete="CASCADE"))
    new_price: Mapped[Decimal] = mapped_column(UnitPrice)
    effective_from: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(200), default="")

    definition: Mapped[ServiceDefinition] = relationship(back_populates="price_changes")


class BillingPlan(TimestampMixin, Base):
    """How a customer is billed: invoice day, due days, delivery, payment method, and
    whether dunning may block."""

    __tablename__ = "billing_plan"
    __table_args__ = (
        CheckConstraint("invoice_day BETWEEN 1 AND 28", name="invoice_day_range"),
        CheckConstraint("due_days >= 0 AND due_days <= 120", name="due_days_range"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    customer_name: Mapped[str] = mapped_column(String(200))
    invoice_day: Mapped[int] = mapped_column(Integer, default=1)
    due_days: Mapped[int] = mapped_column(Integer, default=14)
    delivery: Mapped[Delivery] = mapped_column(StrEnumType(Delivery, "delivery"), default=Delivery.EMAIL)
    payment_method: Mapped[PaymentMethod] = mapped_column(
        StrEnumType(PaymentMethod, "payment_method"), default=PaymentMethod.TRANSFER
    )
    block_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Invoice number series; a location's prefix may stand before it ("{prefix}{series}").
    series: Mapped[str] = mapped_column(String(10), default="FV")
    constant_symbol: Mapped[str] = mapped_column(String(4), default="0308")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Discount(TimestampMixin, Base):
    """A discount on one customer service, or on all of a customer's services."""

    __tablename__ = "discount"
    __table_args__ = (
        CheckConstraint("value > 0", name="value_positive"),
        CheckConstraint("kind <> 'percent' OR value <= 100", name="percent_max"),
        CheckConstraint(
            "customer_service_id IS NOT NULL OR customer_id IS NOT NULL", name="has_target"
        ),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity_order"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[DiscountKind] = mapped_column(StrEnumType(DiscountKind, "discount_kind"))
    value: Mapped[Decimal] = mapped_column(UnitPrice)
    customer_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_service.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    service_group_id: Mapped[int | None] = mapped_column(ForeignKey("service_group.id", ondelete="SET NULL"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    min_commitment_months: Mapped[int] = mapped_column(Integer, default=0)
    shown_on_invoice: Mapped[bool] = mapped_column(Boolean, default=True)


class NumberSequence(TimestampMixin, Base):
    """Gapless counters: one row per scope and year (invoice series, agreement numbering).
    Callers lock the row (SELECT … FOR UPDATE) inside the transaction that uses the number."""

    __tablename__ = "number_sequence"
    __table_args__ = (UniqueConstraint("scope", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(60))
    year: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[int] = mapped_column(Integer, default=0)
