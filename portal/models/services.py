"""Customer services, their history, and usage trackers with readings."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Quantity, Rate, StrEnumType, TimestampMixin, UnitPrice, UTCDateTime
from .catalog import BillingPlan, ServiceDefinition
from .customers import Customer


class ServiceState(enum.StrEnum):
    ORDERED = "ordered"
    ACTIVE = "active"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class ServiceEventKind(enum.StrEnum):
    ORDERED = "ordered"
    ACTIVATED = "activated"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    CHANGED = "changed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    PRICE_CHANGED = "price_changed"


class ActorType(enum.StrEnum):
    OPERATOR = "operator"
    CUSTOMER = "customer"
    SYSTEM = "system"


class Aggregation(enum.StrEnum):
    SUM = "sum"
    MAX = "max"
    LAST = "last"
    AVERAGE = "average"


class Rounding(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    NEAREST = "nearest"


class CustomerService(TimestampMixin, Base):
    """One service definition delivered to one customer at one place."""

    __tablename__ = "customer_service"
    __table_args__ = (
        CheckConstraint("price_override IS NULL OR price_override >= 0", name="price_override_non_negative"),
        CheckConstraint("billing_to IS NULL OR billing_from IS NULL OR billing_to >= billing_from", name="billing_order"),
        Index("ix_customer_service_customer_state", "customer_id", "state"),
        Index("ix_customer_service_state", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    definition_id: Mapped[int] = mapped_column(ForeignKey("service_definition.id", ondelete="RESTRICT"), index=True)
    billing_plan_id: Mapped[int | None] = mapped_column(ForeignKey("billing_plan.id", ondelete="RESTRICT"))
    state: Mapped[ServiceState] = mapped_column(StrEnumType(ServiceState, "service_state"), default=ServiceState.ORDERED)
    ordered_on: Mapped[date] = mapped_column(Date)
    activated_on: Mapped[date | None] = mapped_column(Date)
    billing_from: Mapped[date | None] = mapped_column(Date)
    billing_to: Mapped[date | None] = mapped_column(Date)  # last billed day; null = open
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    commitment_until: Mapped[date | None] = mapped_column(Date)
    price_override: Mapped[Decimal | None] = mapped_column(UnitPrice)
    variable_symbol: Mapped[str | None] = mapped_column(String(10), index=True)
    installation_street: Mapped[str] = mapped_column(String(200), default="")
    installation_city: Mapped[str] = mapped_column(String(100), default="")
    installation_postal_code: Mapped[str] = mapped_column(String(20), default="")
    # A plan change closes this service and opens its successor.
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("customer_service.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship()
    definition: Mapped[ServiceDefinition] = relationship()
    billing_plan: Mapped[BillingPlan | None] = relationship()
    events: Mapped[list[ServiceEvent]] = relationship(
        back_populates="customer_service", order_by="ServiceEvent.id", cascade="all, delete-orphan"
    )

    @property
    def installation_address(self) -> str:
        return ", ".join(
            p for p in (self.installation_street, f"{self.installation_postal_code} {self.installation_city}".strip()) if p
        )


class ServiceEvent(TimestampMixin, Base):
    """One step in a service's life. `scheduled_for` set and `done_at` null = pending."""

    __tablename__ = "service_event"
    __table_args__ = (
        Index("ix_service_event_pending", "scheduled_for", "done_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_service_id: Mapped[int] = mapped_column(ForeignKey("customer_service.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ServiceEventKind] = mapped_column(StrEnumType(ServiceEventKind, "service_event_kind"))
    from_state: Mapped[ServiceState | None] = mapped_column(StrEnumType(ServiceState, "from_state"))
    to_state: Mapped[ServiceState | None] = mapped_column(StrEnumType(ServiceState, "to_state"))
    effective_on: Mapped[date] = mapped_column(Date)
    scheduled_for: Mapped[date | None] = mapped_column(Date)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    debt_recovery_case_id: Mapped[int | None] = mapped_column(
        ForeignKey("debt_recovery_case.id", ondelete="SET NULL"), index=True
    )
    # What the event carries out (plan change target, price, invoice that caused a block…).
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    visible_to_customer: Mapped[bool] = mapped_column(Boolean, default=True)

    customer_service: Mapped[CustomerService] = relationship(back_populates="events")


class UsageTracker(TimestampMixin, Base):
    """A metered product (the usage-billing system's tracker)."""

    __tablename__ = "usage_tracker"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    vat_rate: Mapped[Decimal] = mapped_column(Rate)

    items: Mapped[list[UsageItem]] = relationship(back_populates="tracker", order_by="UsageItem.id")


class UsageItem(TimestampMixin, Base):
    """Prices one metric: aggregate readings, round to whole steps, × amount per step."""

    __tablename__ = "usage_item"
    __table_args__ = (
        CheckConstraint("step > 0", name="step_positive"),
        CheckConstraint("amount_per_step >= 0", name="amount_non_negative"),
        UniqueConstraint("tracker_id", "metric"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tracker_id: Mapped[int] = mapped_column(ForeignKey("usage_tracker.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(20))
    aggregation: Mapped[Aggregation] = mapped_column(StrEnumType(Aggregation, "aggregation"), default=Aggregation.SUM)
    step: Mapped[Decimal] = mapped_column(Quantity)
    rounding: Mapped[Rounding] = mapped_column(StrEnumType(Rounding, "rounding"), default=Rounding.UP)
    amount_per_step: Mapped[Decimal] = mapped_column(UnitPrice)
    included_steps: Mapped[int] = mapped_column(Integer, default=0)  # free allowance per period

    tracker: Mapped[UsageTracker] = relationship(back_populates="items")


class UsageInstance(TimestampMixin, Base):
    """A tracker attached to one customer service."""

    __tablename__ = "usage_instance"
    __table_args__ = (UniqueConstraint("tracker_id", "customer_service_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tracker_id: Mapped[int] = mapped_column(ForeignKey("usage_tracker.id", ondelete="RESTRICT"))
    customer_service_id: Mapped[int] = mapped_column(ForeignKey("customer_service.id", ondelete="CASCADE"), index=True)

    tracker: Mapped[UsageTracker] = relationship()
    customer_service: Mapped[CustomerService] = relationship()


class UsageReading(TimestampMixin, Base):
    __tablename__ = "usage_reading"
    __table_args__ = (UniqueConstraint("instance_id", "item_id", "measured_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("usage_instance.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("usage_item.id", ondelete="CASCADE"))
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[Decimal] = mapped_column(Quantity)
