"""Billing runs, charges, invoices (and credit notes), payments and their allocation."""
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
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import (
    ZERO,
    Base,
    Money,
    Quantity,
    Rate,
    StrEnumType,
    TimestampMixin,
    UnitPrice,
    UTCDateTime,
)
from .customers import Currency, Customer, Location
from .services import ActorType, CustomerService


class BillingRunState(enum.StrEnum):
    PREVIEWED = "previewed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ChargeKind(enum.StrEnum):
    SERVICE = "service"
    USAGE = "usage"
    FEE = "fee"
    ONE_OFF = "one_off"
    DISCOUNT = "discount"
    CREDIT = "credit"  # e.g. blocked days credited on unblock


class InvoiceType(enum.StrEnum):
    INVOICE = "invoice"
    ADVANCE = "advance"  # a request for payment, not a tax document
    CREDIT_NOTE = "credit_note"


class InvoiceState(enum.StrEnum):
    ISSUED = "issued"
    CANCELLED = "cancelled"


class PaymentSource(enum.StrEnum):
    BANK_IMPORT = "bank_import"
    MANUAL = "manual"
    CARD = "card"
    CASH = "cash"


class PaymentState(enum.StrEnum):
    UNMATCHED = "unmatched"
    PARTIAL = "partial"
    MATCHED = "matched"
    OVERPAID = "overpaid"
    # The bank took the money back (a CAMT reversal): nothing of it is allocated and it
    # counts in no balance, credit or queue.
    REVERSED = "reversed"


class StatementFormat(enum.StrEnum):
    CSV = "csv"
    CAMT053 = "camt053"
    CAMT054 = "camt054"  # debit/credit notifications: the same entries as a CAMT.053
    ABO = "abo"  # the Czech banks' fixed-width GPC export (074/075 records)
    MT940 = "mt940"
    FIO_CSV = "fio_csv"  # Fio banka's CSV export (ID pohybu;Datum;Objem;…)


class BillingRun(TimestampMixin, Base):
    __tablename__ = "billing_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, index=True)
    period_end: Mapped[date] = mapped_column(Date)
    issue_date: Mapped[date] = mapped_column(Date)
    state: Mapped[BillingRunState] = mapped_column(StrEnumType(BillingRunState, "billing_run_state"))
    started_by_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    started_by_id: Mapped[int | None] = mapped_column(Integer)
    started_by_name: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    charges_count: Mapped[int] = mapped_column(Integer, default=0)
    invoices_count: Mapped[int] = mapped_column(Integer, default=0)
    customers_count: Mapped[int] = mapped_column(Integer, default=0)
    net_total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    vat_total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    gross_total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    totals_by_currency: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))


class Invoice(TimestampMixin, Base):
    """A tax document. Once issued its lines and totals never change; a credit note
    (type credit_note, `corrects_id` set, negative amounts) is the only correction."""

    __tablename__ = "invoice"
    __table_args__ = (
        UniqueConstraint("series", "number"),
        UniqueConstraint("series", "year", "sequence"),
        Index("ix_invoice_customer_issue", "customer_id", "issue_date"),
        Index("ix_invoice_open_due", "state", "due_date"),
        CheckConstraint("type <> 'credit_note' OR corrects_id IS NOT NULL", name="credit_note_corrects"),
        CheckConstraint("paid_amount >= 0", name="paid_non_negative"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="RESTRICT"), index=True)
    billing_plan_id: Mapped[int | None] = mapped_column(ForeignKey("billing_plan.id", ondelete="RESTRICT"))
    type: Mapped[InvoiceType] = mapped_column(StrEnumType(InvoiceType, "invoice_type"), default=InvoiceType.INVOICE)
    series: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(40))
    variable_symbol: Mapped[str] = mapped_column(String(10), index=True)
    constant_symbol: Mapped[str | None] = mapped_column(String(4))
    issue_date: Mapped[date] = mapped_column(Date)
    taxable_supply_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[Currency] = mapped_column(StrEnumType(Currency, "currency"))
    state: Mapped[InvoiceState] = mapped_column(StrEnumType(InvoiceState, "invoice_state"), default=InvoiceState.ISSUED)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    correction_reason: Mapped[str] = mapped_column(Text, default="")
    billing_run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id", ondelete="SET NULL"), index=True)
    # Identities copied at issue: editing the customer later never changes this invoice.
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_address: Mapped[str] = mapped_column(Text)
    customer_company_id: Mapped[str | None] = mapped_column(String(20))
    customer_vat_id: Mapped[str | None] = mapped_column(String(20))
    customer_number: Mapped[str] = mapped_column(String(20))
    supplier: Mapped[dict] = mapped_column(JSON, default=dict)
    net_total: Mapped[Decimal] = mapped_column(Money)
    vat_total: Mapped[Decimal] = mapped_column(Money)
    gross_total: Mapped[Decimal] = mapped_column(Money)
    rounding: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    # Cached Σ of allocations (for credit notes: Σ of what they settled), kept by the payment rules.
    paid_amount: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    paid_at: Mapped[date | None] = mapped_column(Date)
    # Cached −Σ gross of the issued credit notes correcting this invoice (kept by
    # payments.settle_credit_note), so what is due reads without another query.
    credited_amount: Mapped[Decimal] = mapped_column(Money, default=ZERO, server_default="0")
    document_id: Mapped[int | None] = mapped_column(ForeignKey("stored_document.id", ondelete="SET NULL"))

    customer: Mapped[Customer] = relationship()
    location: Mapped[Location] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(back_populates="invoice", order_by="InvoiceLine.position")
    vat_breakdown: Mapped[list[InvoiceVat]] = relationship(back_populates="invoice", order_by="InvoiceVat.vat_rate")
    corrects: Mapped[Invoice | None] = relationship(remote_side=[id])
    allocations: Mapped[list[PaymentAllocation]] = relationship(back_populates="invoice")
    document = relationship("StoredDocument", foreign_keys=[document_id], post_update=True)

    @property
    def amount_due(self) -> Decimal:
        if self.type == InvoiceType.CREDIT_NOTE or self.state == InvoiceState.CANCELLED:
            return ZERO
        return max(self.gross_total - self.paid_amount - (self.credited_amount or ZERO), ZERO)


class InvoiceLine(TimestampMixin, Base):
    __tablename__ = "invoice_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(300))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    unit_price: Mapped[Decimal] = mapped_column(UnitPrice)
    vat_rate: Mapped[Decimal] = mapped_column(Rate)
    net: Mapped[Decimal] = mapped_column(Money)
    vat: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)
    customer_service_id: Mapped[int | None] = mapped_column(ForeignKey("customer_service.id", ondelete="SET NULL"), index=True)
    corrects_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_line.id", ondelete="RESTRICT"))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    customer_service: Mapped[CustomerService | None] = relationship()


class InvoiceVat(TimestampMixin, Base):
    """VAT recapitulation: one row per rate."""

    __tablename__ = "invoice_vat"
    __table_args__ = (UniqueConstraint("invoice_id", "vat_rate"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="RESTRICT"))
    vat_rate: Mapped[Decimal] = mapped_column(Rate)
    net: Mapped[Decimal] = mapped_column(Money)
    vat: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)

    invoice: Mapped[Invoice] = relationship(back_populates="vat_breakdown")


class Charge(TimestampMixin, Base):
    """What one customer service costs for one period (a "billing prescription").
    The unique constraint is the database's own guard against billing a period twice."""

    __tablename__ = "charge"
    __table_args__ = (
        UniqueConstraint("customer_service_id", "period_start", "kind", "discriminator"),
        Index("ix_charge_uninvoiced", "customer_id", "invoice_line_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    customer_service_id: Mapped[int | None] = mapped_column(ForeignKey("customer_service.id", ondelete="RESTRICT"))
    billing_plan_id: Mapped[int | None] = mapped_column(ForeignKey("billing_plan.id", ondelete="RESTRICT"))
    billing_run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id", ondelete="SET NULL"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    kind: Mapped[ChargeKind] = mapped_column(StrEnumType(ChargeKind, "charge_kind"))
    # Tells apart several charges of one kind in a period (usage item id, discount id,
    # reminder id); "" for the one service charge, so the uniqueness above holds for it.
    discriminator: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    unit_price: Mapped[Decimal] = mapped_column(UnitPrice)
    vat_rate: Mapped[Decimal] = mapped_column(Rate)
    net: Mapped[Decimal] = mapped_column(Money)
    vat: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)
    # Which side of the amount is fixed: the gross (a price including VAT, as promised to
    # consumers) or the net. The invoice's VAT recapitulation keeps that side of the line.
    price_includes_vat: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    currency: Mapped[Currency] = mapped_column(StrEnumType(Currency, "currency"))
    invoice_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_line.id", ondelete="SET NULL"), unique=True)

    customer_service: Mapped[CustomerService | None] = relationship()


class StatementImport(TimestampMixin, Base):
    __tablename__ = "statement_import"
    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    format: Mapped[StatementFormat] = mapped_column(StrEnumType(StatementFormat, "statement_format"))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    payments_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_count: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    unmatched_count: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Money, default=ZERO)


class Payment(TimestampMixin, Base):
    """Money received. `unallocated` is what is left after pairing: customer credit when
    the customer is known, the staff queue when not."""

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("source", "bank_reference"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("unallocated >= 0 AND unallocated <= amount", name="unallocated_range"),
        Index("ix_payment_customer_received", "customer_id", "received_on"),
        Index("ix_payment_state", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    received_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[Currency] = mapped_column(StrEnumType(Currency, "currency"))
    variable_symbol: Mapped[str | None] = mapped_column(String(10), index=True)
    constant_symbol: Mapped[str | None] = mapped_column(String(4))
    specific_symbol: Mapped[str | None] = mapped_column(String(10))
    counterparty_account: Mapped[str | None] = mapped_column(String(50))
    counterparty_name: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[PaymentSource] = mapped_column(StrEnumType(PaymentSource, "payment_source"))
    bank_reference: Mapped[str | None] = mapped_column(String(100))
    statement_import_id: Mapped[int | None] = mapped_column(ForeignKey("statement_import.id", ondelete="RESTRICT"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    state: Mapped[PaymentState] = mapped_column(StrEnumType(PaymentState, "payment_state"), default=PaymentState.UNMATCHED)
    unallocated: Mapped[Decimal] = mapped_column(Money)
    note: Mapped[str] = mapped_column(Text, default="")
    # A reversed payment: the booking date of the reversal, its bank reference (so the same
    # reversal is never applied twice) and the statement import that carried it.
    reversed_on: Mapped[date | None] = mapped_column(Date)
    reversed_by_reference: Mapped[str | None] = mapped_column(String(100))
    reversed_by_import_id: Mapped[int | None] = mapped_column(ForeignKey("statement_import.id", ondelete="RESTRICT"))

    customer: Mapped[Customer | None] = relationship()
    reversed_by_import: Mapped[StatementImport | None] = relationship(foreign_keys=[reversed_by_import_id])
    allocations: Mapped[list[PaymentAllocation]] = relationship(back_populates="payment", order_by="PaymentAllocation.id")


class PaymentAllocation(TimestampMixin, Base):
    __tablename__ = "payment_allocation"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id", ondelete="RESTRICT"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    actor_id: Mapped[int | None] = mapped_column(Integer)

    payment: Mapped[Payment] = relationship(back_populates="allocations")
    invoice: Mapped[Invoice] = relationship(back_populates="allocations")
