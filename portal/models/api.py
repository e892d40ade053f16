"""Machine access: API tokens that act for an operator with a subset of the operator's rights
and locations, and the answers kept for Idempotency-Key retries."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import Operator
from .base import Base, TimestampMixin, UTCDateTime


class ApiToken(TimestampMixin, Base):
    """Shown once when created; only its sha256 is stored. Empty `location_ids` means the
    operator's own locations (all, for an operator with none)."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    rights: Mapped[list] = mapped_column(JSON, default=list)
    location_ids: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))

    operator: Mapped[Operator] = relationship(foreign_keys=[operator_id])


class IdempotentAnswer(TimestampMixin, Base):
    """The first answer to a POST with an Idempotency-Key, replayed for the same key and
    body; `status` is None while the first request is still being carried out."""

    __tablename__ = "idempotent_answer"
    # Kept a day (the retry window), then pruned oldest first.
    __table_args__ = (UniqueConstraint("token_id", "key"), Index("ix_idempotent_answer_created", "created_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_token.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # sha256 of method, path and body: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100), default="")
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
