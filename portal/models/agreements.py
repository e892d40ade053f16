"""Agreement types, agreements (and annexes), and acceptance evidence."""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
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

from .base import Base, StrEnumType, TimestampMixin, UTCDateTime
from .customers import Customer
from .services import CustomerService


class Numbering(enum.StrEnum):
    GLOBAL = "global"
    PER_TYPE = "per_type"
    PER_CUSTOMER = "per_customer"


class AgreementState(enum.StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    ACCEPTED = "accepted"
    INVALID = "invalid"


class AcceptanceMethod(enum.StrEnum):
    EMAIL_CODE = "email_code"
    STAFF = "staff"


class AgreementType(TimestampMixin, Base):
    __tablename__ = "agreement_type"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    numbering: Mapped[Numbering] = mapped_column(StrEnumType(Numbering, "numbering"), default=Numbering.PER_TYPE)
    number_format: Mapped[str] = mapped_column(String(60), default="{year}/{seq:05d}")
    template: Mapped[str] = mapped_column(String(100), default="standard.html")
    terms: Mapped[str] = mapped_column(Text, default="")
    is_annex: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_confirmation: Mapped[bool] = mapped_column(Boolean, default=True)
    remind_days: Mapped[int | None] = mapped_column(Integer)
    block_days: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


agreement_services = Table(
    "agreement_service",
    Base.metadata,
    Column("agreement_id", ForeignKey("agreement.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_service_id", ForeignKey("customer_service.id", ondelete="CASCADE"), primary_key=True),
)


class Agreement(TimestampMixin, Base):
    """A contract (or an annex, which points to its parent). The number is assigned on
    issue; drafts have none."""

    __tablename__ = "agreement"
    __table_args__ = (
        UniqueConstraint("type_id", "number"),
        Index("ix_agreement_customer_state", "customer_id", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("agreement_type.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    number: Mapped[str | None] = mapped_column(String(40))
    sequence: Mapped[int | None] = mapped_column(Integer)
    conclusion_date: Mapped[date | None] = mapped_column(Date)
    valid_from: Mapped[date | None] = mapped_column(Date)
    state: Mapped[AgreementState] = mapped_column(StrEnumType(AgreementState, "agreement_state"), default=AgreementState.DRAFT)
    invalid_note: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agreement.id", ondelete="RESTRICT"), index=True)
    # What an annex changes (plan change: from/to definition, effective date, prices).
    summary: Mapped[str] = mapped_column(Text, default="")
    current_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("stored_document.id", ondelete="SET NULL")
    )

    type: Mapped[AgreementType] = relationship()
    customer: Mapped[Customer] = relationship()
    parent: Mapped[Agreement | None] = relationship(remote_side=[id], back_populates="annexes")
    annexes: Mapped[list[Agreement]] = relationship(back_populates="parent", order_by="Agreement.id")
    customer_services: Mapped[list[CustomerService]] = relationship(secondary=agreement_services)
    acceptances: Mapped[list[AgreementAcceptance]] = relationship(back_populates="agreement")
    current_document = relationship("StoredDocument", foreign_keys=[current_document_id], post_update=True)


class AgreementAcceptance(TimestampMixin, Base):
    """Evidence of acceptance: who, when, from where, and the hash of the document seen."""

    __tablename__ = "agreement_acceptance"
    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreement.id", ondelete="CASCADE"), index=True)
    customer_login_id: Mapped[int | None] = mapped_column(ForeignKey("customer_login.id", ondelete="SET NULL"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    method: Mapped[AcceptanceMethod] = mapped_column(StrEnumType(AcceptanceMethod, "acceptance_method"))
    document_sha256: Mapped[str] = mapped_column(String(64))

    agreement: Mapped[Agreement] = relationship(back_populates="acceptances")
