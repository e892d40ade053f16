"""The audit log: append-only, written by the rule that made the change."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, StrEnumType, TimestampMixin, UTCDateTime
from .services import ActorType


class AuditEntry(TimestampMixin, Base):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_entity", "entity_type", "entity_id"),
        Index("ix_audit_entry_actor", "actor_type", "actor_id"),
        Index("ix_audit_entry_customer", "customer_id", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(60), index=True)
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    # The customer the change concerns, for the customer page's audit tab.
    customer_id: Mapped[int | None] = mapped_column(Integer)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)  # {"field": [before, after]} or free detail
    ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(40))
    # How the actor acted when not through a page: "API token 3 “billing sync”".
    via: Mapped[str | None] = mapped_column(String(120))
