"""Declarative base: a constraint naming convention (stable migrations on SQLite and
PostgreSQL), Money types, timezone-aware timestamps and string enums."""
from __future__ import annotations

import enum
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, Enum, MetaData, Numeric, TypeDecorator, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on both databases (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Money: 12 digits, 2 decimals; unit prices carry 4 decimals.
Money = Numeric(12, 2, asdecimal=True)
UnitPrice = Numeric(12, 4, asdecimal=True)
Rate = Numeric(5, 2, asdecimal=True)
Quantity = Numeric(14, 4, asdecimal=True)

ZERO = Decimal("0.00")


def StrEnumType(enum_cls: type[enum.StrEnum], name: str) -> Enum:  # noqa: N802 — reads as a type
    """A string enum stored as VARCHAR with a CHECK constraint (no native PG enum:
    adding a value stays a one-line migration)."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls) + 4,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )


def positive(column: str, name: str | None = None) -> CheckConstraint:
    return CheckConstraint(f"{column} > 0", name=name or f"{column}_positive")


def non_negative(column: str, name: str | None = None) -> CheckConstraint:
    return CheckConstraint(f"{column} >= 0", name=name or f"{column}_non_negative")


def search_key(text: str | None) -> str:
    """Lower-cased, accent-free, single-spaced ("  Nováková " → "novakova"): how the search
    keys (Customer.name_key, street_key) are stored and how a query is compared with them."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(plain.split())
