"""Dunning: reminder levels, debt recovery cases, reminders, and blocking exceptions."""
from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import ZERO, Base, Money, StrEnumType, TimestampMixin, UTCDateTime
from .billing import Invoice
from .customers import Customer


class CaseState(enum.StrEnum):
    OPEN = "open"
    REMINDED = "reminded"
    BLOCKED = "blocked"
    POSTPONED = "postponed"
    CLOSED = "closed"


class ExceptionKind(enum.StrEnum):
    POSTPONE = "postpone"  # no blocking until `until`
    NEVER_BLOCK = "never_block"


class ReminderLevel(TimestampMixin, Base):
    """A dunning step. Levels with a billing plan apply to that plan's customers; levels
    without one are the default ladder."""

    __tablename__ = "reminder_level"
    __table_args__ = (
        UniqueConstraint("billing_plan_id", "level"),
        CheckConstraint("level >= 1", name="level_positive"),
        CheckConstraint("days_overdue >= 0", name="days_non_negative"),
        CheckConstraint("fee >= 0", name="fee_non_negative"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    billing_plan_id: Mapped[int | None] = mapped_column(ForeignKey("billing_plan.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(Integer)
    days_overdue: Mapped[int] = mapped_column(Integer)
    fee: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    blocks: Mapped[bool] = mapped_column(Boolean, default=False)
    letter_template: Mapped[str] = mapped_column(String(100), default="reminder.html")
    pay_within_days: Mapped[int] = mapped_column(Integer, default=7)


class DebtRecoveryCase(TimestampMixin, Base):
    """One customer's overdue debt followed through the levels to blocking and back."""

    __tablename__ = "debt_recovery_case"
    __table_args__ = (Index("ix_debt_recovery_case_customer_state", "customer_id", "state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    state: Mapped[CaseState] = mapped_column(StrEnumType(CaseState, "case_state"), default=CaseState.OPEN)
    level: Mapped[int] = mapped_column(Integer, default=0)
    opened_on: Mapped[date] = mapped_column(Date)
    blocked_on: Mapped[date | None] = mapped_column(Date)
    postponed_until: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship()
    reminders: Mapped[list[Reminder]] = relationship(back_populates="case", order_by="Reminder.id")


reminder_invoices = Table(
    "reminder_invoice",
    Base.metadata,
    Column("reminder_id", ForeignKey("reminder.id", ondelete="CASCADE"), primary_key=True),
    Column("invoice_id", ForeignKey("invoice.id", ondelete="RESTRICT"), primary_key=True),
)


class Reminder(TimestampMixin, Base):
    __tablename__ = "reminder"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("debt_recovery_case.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    issued_on: Mapped[date] = mapped_column(Date)
    pay_by: Mapped[date] = mapped_column(Date)
    block_on: Mapped[date | None] = mapped_column(Date)  # when blocking follows if unpaid
    amount_due: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    fee_charge_id: Mapped[int | None] = mapped_column(ForeignKey("charge.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("stored_document.id", ondelete="SET NULL"))

    case: Mapped[DebtRecoveryCase] = relationship(back_populates="reminders")
    invoices: Mapped[list[Invoice]] = relationship(secondary=reminder_invoices)


class BlockingException(TimestampMixin, Base):
    """Staff's "postpone blocking until <date>" or "never block", with reason and author."""

    __tablename__ = "blocking_exception"
    __table_args__ = (
        CheckConstraint("kind <> 'postpone' OR until IS NOT NULL", name="postpone_has_until"),
        Index("ix_blocking_exception_customer", "customer_id", "revoked_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    kind: Mapped[ExceptionKind] = mapped_column(StrEnumType(ExceptionKind, "exception_kind"))
    until: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))

    customer: Mapped[Customer] = relationship()
