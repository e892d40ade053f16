"""Network identity of a service (credentials, MAC, address), IP pools, and the provisioning
outbox: what the network must look like for a service, written in the same transaction as the
service step that changed it, and applied later by the worker through a driver."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnumType, TimestampMixin, UTCDateTime, utcnow
from .customers import Location
from .services import CustomerService


class IpPool(TimestampMixin, Base):
    """A CIDR range of a location. `first_address`..`last_address` (IPv4 as integers) are the
    usable hosts: the network and broadcast addresses are left out for ranges wider than /31."""

    __tablename__ = "ip_pool"
    __table_args__ = (CheckConstraint("first_address <= last_address", name="range_order"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    cidr: Mapped[str] = mapped_column(String(43))
    first_address: Mapped[int] = mapped_column(BigInteger)
    last_address: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(300), default="")

    location: Mapped[Location] = relationship()


class NetworkState(enum.StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    FAILED = "failed"


class NetworkIdentity(TimestampMixin, Base):
    """How the network knows one service: its RADIUS/PPPoE credentials, optional MAC, and an
    address (static, or taken from a pool). An address is never given twice: `ip_address` is
    unique (NULLs aside). A plan change moves the identity to the successor service.

    The network state says whether the network already looks like the latest desired state
    (`ProvisioningChange`) written for the service."""

    __tablename__ = "network_identity"
    __table_args__ = (Index("ix_network_identity_sync", "network_state", "next_retry_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_service_id: Mapped[int] = mapped_column(
        ForeignKey("customer_service.id", ondelete="CASCADE"), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password: Mapped[str] = mapped_column(String(64))
    mac_address: Mapped[str | None] = mapped_column(String(17))
    ip_address: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    ip_pool_id: Mapped[int | None] = mapped_column(ForeignKey("ip_pool.id", ondelete="RESTRICT"), index=True)
    network_state: Mapped[NetworkState] = mapped_column(StrEnumType(NetworkState, "network_state"),
                                                        default=NetworkState.PENDING)
    network_error: Mapped[str] = mapped_column(String(300), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer_service: Mapped[CustomerService] = relationship()
    ip_pool: Mapped[IpPool | None] = relationship()


class Desired(enum.StrEnum):
    ACCEPT = "accept"
    WALLED_GARDEN = "walled_garden"
    REJECT = "reject"


class ProvisioningChange(Base):
    """The outbox: one row per service step, "the network must now look like this" (desired
    state + attributes: password, address, speeds). Only the newest row of an identity
    matters; the worker applies it and marks the older ones applied with it."""

    __tablename__ = "provisioning_change"
    __table_args__ = (Index("ix_provisioning_change_identity", "identity_id", "applied_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("network_identity.id", ondelete="CASCADE"))
    customer_service_id: Mapped[int] = mapped_column(Integer, index=True)
    username: Mapped[str] = mapped_column(String(64))
    desired: Mapped[Desired] = mapped_column(StrEnumType(Desired, "provisioning_desired"))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(String(60), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    identity: Mapped[NetworkIdentity] = relationship()
