"""Customer requests (the ISP system's "processes") and their conversation."""
from __future__ import annotations

import enum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnumType, TimestampMixin
from .customers import Customer
from .services import ActorType, CustomerService


class RequestKind(enum.StrEnum):
    QUESTION = "question"
    COMPLAINT = "complaint"
    PLAN_CHANGE = "plan_change"
    MOVE = "move"
    CANCELLATION = "cancellation"
    OTHER = "other"


class RequestState(enum.StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CUSTOMER = "waiting_for_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CustomerRequest(TimestampMixin, Base):
    __tablename__ = "customer_request"
    __table_args__ = (
        Index("ix_customer_request_queue", "state", "kind"),
        Index("ix_customer_request_customer", "customer_id", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"))
    kind: Mapped[RequestKind] = mapped_column(StrEnumType(RequestKind, "request_kind"))
    subject: Mapped[str] = mapped_column(String(200))
    state: Mapped[RequestState] = mapped_column(StrEnumType(RequestState, "request_state"), default=RequestState.NEW)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"), index=True)
    customer_service_id: Mapped[int | None] = mapped_column(ForeignKey("customer_service.id", ondelete="SET NULL"))
    # What is needed to carry the request out in one step (target definition, date…).
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    created_by_id: Mapped[int | None] = mapped_column(Integer)

    customer: Mapped[Customer] = relationship()
    customer_service: Mapped[CustomerService | None] = relationship()
    assignee = relationship("Operator")
    comments: Mapped[list[RequestComment]] = relationship(back_populates="request", order_by="RequestComment.id")


class RequestComment(TimestampMixin, Base):
    __tablename__ = "request_comment"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("customer_request.id", ondelete="CASCADE"), index=True)
    author_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, "actor_type"))
    author_id: Mapped[int | None] = mapped_column(Integer)
    author_name: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)  # staff notes never reach selfcare

    request: Mapped[CustomerRequest] = relationship(back_populates="comments")
    attachments: Mapped[list[RequestAttachment]] = relationship(back_populates="comment",
                                                                order_by="RequestAttachment.id")


class RequestAttachment(TimestampMixin, Base):
    """A file sent with a reply, either way. Stored like documents (under DOCUMENTS_DIR, by a
    key naming its hash, hash checked on reading), served only as a download. The customer
    is copied from the request so selfcare finds it through the logged-in customer."""

    __tablename__ = "request_attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("request_comment.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("customer_request.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="RESTRICT"), index=True)
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)

    comment: Mapped[RequestComment] = relationship(back_populates="attachments")
