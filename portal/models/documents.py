"""Stored documents, outbound e-mail, and background jobs mirrored for pages."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, StrEnumType, TimestampMixin, UTCDateTime
from .services import ActorType


class DocumentKind(enum.StrEnum):
    AGREEMENT = "agreement"
    ANNEX = "annex"
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    REMINDER = "reminder"
    STATEMENT = "statement"
    CANCELLATION_CONFIRMATION = "cancellation_confirmation"


class EmailState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class StoredDocument(TimestampMixin, Base):
    """A rendered file: stored once, hashed, never silently changed. A changed agreement
    gets a new version; the old one stays."""

    __tablename__ = "stored_document"
    __table_args__ = (UniqueConstraint("owner_type", "owner_id", "kind", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DocumentKind] = mapped_column(StrEnumType(DocumentKind, "document_kind"))
    owner_type: Mapped[str] = mapped_column(String(40))
    owner_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    template_version: Mapped[str] = mapped_column(String(40))
    # Hash of the data the document was rendered from: a change means a new version is due.
    source_hash: Mapped[str | None] = mapped_column(String(64))
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboundEmail(TimestampMixin, Base):
    __tablename__ = "outbound_email"
    __table_args__ = (Index("ix_outbound_email_state", "state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    to: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    template: Mapped[str] = mapped_column(String(100))
    body_path: Mapped[str | None] = mapped_column(String(300))  # the .eml in the outbox
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"), index=True)
    state: Mapped[EmailState] = mapped_column(StrEnumType(EmailState, "email_state"), default=EmailState.QUEUED)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(Text, default="")
    # A staff re-send is a new row pointing at the first send of the message (never at a
    # re-send), so one message's attempts are that row and the rows pointing at it.
    resent_from_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_email.id", ondelete="SET NULL"),
                                                       index=True)


class Job(TimestampMixin, Base):
    """Long work (billing and dunning runs, imports, rendering) as seen by pages; the task
    queue runs it, this row mirrors its progress and result."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[JobState] = mapped_column(StrEnumType(JobState, "job_state"), default=JobState.QUEUED)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lease: the worker running the job renews heartbeat_at while it works; a running job
    # whose lease (JOB_LEASE_SECONDS) has expired lost its worker and is marked interrupted.
    worker_id: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    interrupted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resumed_by_id: Mapped[int | None] = mapped_column(Integer)  # the job that took over
