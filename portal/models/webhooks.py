"""Webhooks: endpoints staff subscribe to event types, the outbox of events written in the
same transaction as the change they announce, and one delivery per event and endpoint."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import Operator
from .base import Base, StrEnumType, TimestampMixin, UTCDateTime, utcnow


class WebhookEndpoint(TimestampMixin, Base):
    """An HTTPS URL that receives the events of `event_types`, signed with `secret` (the
    Standard Webhooks format, "whsec_" + base64). After a rotation the previous secret also
    signs until `previous_secret_until`, so a receiver can switch without losing a message."""

    __tablename__ = "webhook_endpoint"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_types: Mapped[list] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))

    created_by: Mapped[Operator | None] = relationship(foreign_keys=[created_by_id])

    def secrets_at(self, at: datetime) -> list[str]:
        """The secrets that sign a message sent at `at`: the current one, and the previous
        one during its grace period."""
        if self.previous_secret and self.previous_secret_until and at < self.previous_secret_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


class WebhookEvent(Base):
    """The outbox: one row per change worth announcing, inserted by the rule that made the
    change (portal/domain/events.py). `dispatched_at` is set when the delivery job has made
    its deliveries (none when no endpoint subscribes)."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        Index("ix_webhook_event_dispatch", "dispatched_at", "id"),
        Index("ix_webhook_event_subject", "subject", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(60))
    # What the event is about, "customer_service:12": deliveries keep its order per endpoint.
    subject: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(TimestampMixin, Base):
    """One event sent to one endpoint: retried with back-off until `give_up_at`, then failed."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_order", "endpoint_id", "subject", "state", "event_id"),
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_event.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(80))  # the event's, for the order rule's index
    state: Mapped[DeliveryState] = mapped_column(StrEnumType(DeliveryState, "webhook_delivery_state"),
                                                 default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[WebhookEvent] = relationship()
    endpoint: Mapped[WebhookEndpoint] = relationship()
