"""Who may log in: customers' selfcare logins and staff operators, with roles and rights,
server-side sessions, login events and password-reset tokens."""
from __future__ import annotations

import enum
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    cast,
    event,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from .base import Base, StrEnumType, TimestampMixin, UTCDateTime
from .customers import Customer, Language, Location


class Face(enum.StrEnum):
    """Which population a login belongs to."""

    CUSTOMER = "customer"
    OPERATOR = "operator"


# The rights of domain.md §4; roles are sets of them.
RIGHTS: dict[str, str] = {
    "customers.read": "See customers, their services, agreements, invoices and payments",
    "customers.write": "Create and edit customers, contacts and addresses",
    "services.lifecycle": "Order, activate, block, unblock, change and cancel services",
    "agreements.write": "Create, issue and invalidate agreements; edit agreement types",
    "catalogue.write": "Edit service groups, definitions, prices, billing plans and discounts",
    "billing.run": "Preview and run billing; issue credit notes",
    "payments.write": "Import statements, enter, pair and unpair payments",
    "dunning.run": "Run dunning; postpone or exempt blocking",
    "requests.handle": "Handle customer requests",
    "usage.write": "Send usage readings (meters and collectors, through the API)",
    "operators.admin": "Manage operators and roles",
    "audit.read": "Read and export the audit log",
    "customers.impersonate": "View selfcare as a customer (read-only)",
    "integrations.admin": "Manage webhook endpoints and see their deliveries",
}


class LoginRole(enum.StrEnum):
    """What a selfcare login may open: the owner everything; billing the money side
    (invoices, payments, documents); technical the services and requests."""

    OWNER = "owner"
    BILLING = "billing"
    TECHNICAL = "technical"


class LoginState(enum.StrEnum):
    INVITED = "invited"  # the invitation link has not been used yet
    ACTIVE = "active"
    DISABLED = "disabled"


class _Principal:
    """What Flask-Login and templates ask of either kind of login."""

    impersonator_id: int | None = None  # set per request for "view as customer"

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def is_customer(self) -> bool:
        return False

    @property
    def is_operator(self) -> bool:
        return False

    def has_right(self, code: str) -> bool:
        return False

    def get_id(self) -> str:  # the session row, not this object, identifies a login
        raise RuntimeError("logins are identified by their AuthSession token")


class CustomerLogin(_Principal, TimestampMixin, Base):
    """Selfcare credentials. A customer may have several logins, each with a role; an invited
    login has an unusable password until its invitation link is used."""

    __tablename__ = "customer_login"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(255))  # encrypted at rest
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last TOTP time step accepted: that step and earlier ones are refused (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    recovery_code_hashes: Mapped[list] = mapped_column(JSON, default=list)
    language: Mapped[Language | None] = mapped_column(StrEnumType(Language, "language"))
    notify_email: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[LoginRole] = mapped_column(StrEnumType(LoginRole, "login_role"), default=LoginRole.OWNER,
                                            server_default=LoginRole.OWNER.value)
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by: Mapped[str | None] = mapped_column(String(200))  # the inviter as shown; the audit has the id
    # When the invitee chose a password. None with invited_at set: the invitation is pending.
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()

    @property
    def state(self) -> LoginState:
        if not self.active:
            return LoginState.DISABLED
        if self.invited_at is not None and self.activated_at is None:
            return LoginState.INVITED
        return LoginState.ACTIVE

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_customer(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self.customer.display_name


role_rights = Table(
    "role_right",
    Base.metadata,
    Column("role_id", ForeignKey("role.id", ondelete="CASCADE"), primary_key=True),
    Column("right_id", ForeignKey("right.id", ondelete="CASCADE"), primary_key=True),
)

operator_roles = Table(
    "operator_role",
    Base.metadata,
    Column("operator_id", ForeignKey("operator.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("role.id", ondelete="CASCADE"), primary_key=True),
)

operator_locations = Table(
    "operator_location",
    Base.metadata,
    Column("operator_id", ForeignKey("operator.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", ForeignKey("location.id", ondelete="CASCADE"), primary_key=True),
)


class Right(TimestampMixin, Base):
    __tablename__ = "right"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class Role(TimestampMixin, Base):
    __tablename__ = "role"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    rights: Mapped[list[Right]] = relationship(secondary=role_rights, lazy="selectin", order_by=Right.code)


class Operator(_Principal, TimestampMixin, Base):
    """A staff user. No locations means all locations."""

    __tablename__ = "operator"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last TOTP time step accepted: that step and earlier ones are refused (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    recovery_code_hashes: Mapped[list] = mapped_column(JSON, default=list)
    language: Mapped[Language | None] = mapped_column(StrEnumType(Language, "language"))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    roles: Mapped[list[Role]] = relationship(secondary=operator_roles, lazy="selectin")
    locations: Mapped[list[Location]] = relationship(secondary=operator_locations, lazy="selectin")

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_operator(self) -> bool:
        return True

    @property
    def rights(self) -> frozenset[str]:
        return self._access()[0]

    def has_right(self, code: str) -> bool:
        return code in self._access()[0]

    @property
    def location_ids(self) -> frozenset[int] | None:
        """None means every location."""
        return self._access()[1] or None

    def _access(self) -> tuple[frozenset[str], frozenset[int]]:
        """(right codes, location ids), read once: nearly every staff page asks for both."""
        cached = self.__dict__.get("_access_cache")
        if cached is None:
            session = object_session(self)
            if session is None:
                cached = (frozenset(r.code for role in self.roles for r in role.rights),
                          frozenset(loc.id for loc in self.locations))
            else:
                # One statement of plain rows instead of roles, rights and locations as
                # objects (the session lookup leaves them out; a list of operators that
                # loaded them must not change what a page costs).
                rows = session.execute(_access_of(), {"operator_id": self.id}).all()
                cached = (frozenset(code for kind, code in rows if kind == "r"),
                          frozenset(int(code) for kind, code in rows if kind == "l"))
            self.__dict__["_access_cache"] = cached
        return cached


@event.listens_for(Operator, "expire")
def _forget_access(operator, _attrs):
    # What was read for this object is as stale as its expired attributes. (Not on a
    # "refresh" that only fills unloaded attributes: a list that loads this operator as an
    # assignee must not cost the page another statement.)
    if operator is not None:  # None: the object was already garbage-collected
        operator.__dict__.pop("_access_cache", None)


@lru_cache(maxsize=1)
def _access_of():
    operator_id = bindparam("operator_id")
    rights = (select(literal_column("'r'").label("kind"), Right.code.label("value"))
              .join(role_rights, role_rights.c.right_id == Right.id)
              .join(operator_roles, operator_roles.c.role_id == role_rights.c.role_id)
              .where(operator_roles.c.operator_id == operator_id))
    locations = (select(literal_column("'l'"), cast(operator_locations.c.location_id, String))
                 .where(operator_locations.c.operator_id == operator_id))
    return union_all(rights, locations)


class AuthSession(TimestampMixin, Base):
    """A server-side login session. The cookie holds only its random token; logging out
    revokes the row, so a cookie copied before logout is worthless afterwards."""

    __tablename__ = "auth_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the cookie token
    face: Mapped[Face] = mapped_column(StrEnumType(Face, "face"))
    customer_login_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_login.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"), index=True)
    session_version: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while a password is right but the second factor is still to come.
    second_factor_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # Staff "view as customer": the operator who opened this read-only session.
    impersonator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="SET NULL"))

    customer_login: Mapped[CustomerLogin | None] = relationship(foreign_keys=[customer_login_id])
    operator: Mapped[Operator | None] = relationship(foreign_keys=[operator_id])


class LoginEvent(TimestampMixin, Base):
    __tablename__ = "login_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    face: Mapped[Face] = mapped_column(StrEnumType(Face, "face"))
    customer_login_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_login.id", ondelete="CASCADE"), index=True
    )
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"), index=True)
    email_tried: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    success: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40), default="")


class PasswordResetToken(TimestampMixin, Base):
    """Single-use, expiring. Only the token's hash is stored."""

    __tablename__ = "password_reset_token"
    __table_args__ = (UniqueConstraint("token_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    face: Mapped[Face] = mapped_column(StrEnumType(Face, "face"))
    customer_login_id: Mapped[int | None] = mapped_column(ForeignKey("customer_login.id", ondelete="CASCADE"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))


class OneTimeCode(TimestampMixin, Base):
    """A short code e-mailed to confirm an act (agreement acceptance, cancellation link)."""

    __tablename__ = "one_time_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int] = mapped_column(Integer)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    customer_login_id: Mapped[int | None] = mapped_column(ForeignKey("customer_login.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
