"""Server-side login sessions.

The signed Flask cookie carries only a random token; the `auth_session` row it names is
checked on every request (not revoked, not expired, not idle too long, and the login's
session_version unchanged). Logging out revokes the row, so a cookie copied before logout
is refused after it; "log out everywhere" bumps session_version.

"View as customer": the browser has one cookie, so while an operator views selfcare as a
customer the cookie names a read-only customer session (`impersonator_id` set) and keeps the
operator's own token aside under IMPERSONATOR_KEY. The operator's session stays valid (it is
touched with the customer one, so it does not idle out); the customer session is valid only
while that operator session is (same operator, still active, still holding the right).
Ending it revokes the customer session and puts the operator's token back: no new login."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask_login import AnonymousUserMixin
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db, login_manager
from portal.models import AuthSession, Customer, CustomerLogin, Face, Operator
from portal.models.base import utcnow

SESSION_KEY = "auth"
IMPERSONATOR_KEY = "auth_staff"  # the operator's own token while viewing as a customer
IMPERSONATION_LIFETIME = timedelta(hours=2)
IMPERSONATE_RIGHT = "customers.impersonate"
TOUCH_EVERY = timedelta(minutes=1)  # write last_seen_at at most once a minute


class Anonymous(AnonymousUserMixin):
    is_customer = False
    is_operator = False
    impersonator_id = None

    def has_right(self, code: str) -> bool:
        return False


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_ip() -> str | None:
    return request.remote_addr if request else None


def client_agent() -> str | None:
    return (request.user_agent.string or "")[:300] if request else None


def start_session(principal: CustomerLogin | Operator, *, pending_second_factor: bool = False,
                  impersonator_id: int | None = None) -> AuthSession:
    """A fresh session: the old cookie's contents are dropped (no session fixation)."""
    session.clear()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    face = Face.OPERATOR if isinstance(principal, Operator) else Face.CUSTOMER
    row = AuthSession(
        token_hash=_hash(token),
        face=face,
        customer_login_id=principal.id if face == Face.CUSTOMER else None,
        operator_id=principal.id if face == Face.OPERATOR else None,
        session_version=principal.session_version,
        ip=client_ip(),
        user_agent=client_agent(),
        last_seen_at=now,
        expires_at=now + current_app.config["PERMANENT_SESSION_LIFETIME"],
        second_factor_pending=pending_second_factor,
        impersonator_id=impersonator_id,
    )
    db.session.add(row)
    db.session.flush()
    session[SESSION_KEY] = token
    session.permanent = True
    return row


def current_auth_session(include_pending: bool = False) -> AuthSession | None:
    """The valid session row for this request's cookie, cached on `g`."""
    cache_key = "_auth_session_pending" if include_pending else "_auth_session"
    if cache_key in g:
        return g.get(cache_key)
    row = _load_session_row(include_pending)
    setattr(g, cache_key, row)
    return row


def _load_session_row(include_pending: bool) -> AuthSession | None:
    row = _valid_row(session.get(SESSION_KEY), include_pending)
    if row is not None and row.impersonator_id is not None and not _impersonator_still_valid(row):
        return None
    return row


def _impersonator_still_valid(row: AuthSession) -> bool:
    """A view-as session lives only as long as the operator session that opened it."""
    staff_token = session.get(IMPERSONATOR_KEY)
    if staff_token is None:
        # Made outside start_impersonation (tests, tools): the operator must at least be active.
        operator = db.session.get(Operator, row.impersonator_id)
        return operator is not None and operator.active
    staff = _valid_row(staff_token, include_pending=False)
    return (staff is not None and staff.face == Face.OPERATOR and staff.operator_id == row.impersonator_id
            and staff.operator.has_right(IMPERSONATE_RIGHT))


# Built once: constructing the statement and its cache key cost ~65 µs a request. The
# session row and its login come in one statement as plain entities (no eager-load chain:
# an operator's roles and rights with joinedload/selectin cost ~0.7 ms a request); an
# operator's rights and locations are read when first asked for (Operator.rights).
_SESSION_ROW = (
    select(AuthSession, CustomerLogin, Customer, Operator)
    .outerjoin(CustomerLogin, AuthSession.customer_login_id == CustomerLogin.id)
    .outerjoin(Customer, CustomerLogin.customer_id == Customer.id)  # every page shows its name
    .outerjoin(Operator, AuthSession.operator_id == Operator.id)
    .options(lazyload(Operator.roles), lazyload(Operator.locations))
    .where(AuthSession.token_hash == bindparam("token_hash"))
)


def _valid_row(token, include_pending: bool) -> AuthSession | None:
    if not token or not isinstance(token, str):
        return None
    found = db.session.execute(_SESSION_ROW, {"token_hash": _hash(token)}).first()
    if found is None:
        return None
    row, customer_login, customer, operator = found
    now = utcnow()
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > current_app.config["SESSION_IDLE_TIMEOUT"]:
        return None
    principal = customer_login if row.face == Face.CUSTOMER else operator
    # Hand the login loaded with the row to its relationship (else the first access to
    # row.customer_login / row.operator would select it again).
    set_committed_value(row, "customer_login" if row.face == Face.CUSTOMER else "operator", principal)
    if customer_login is not None:
        set_committed_value(customer_login, "customer", customer)
    if operator is not None:
        # Rights and locations are read once per request (an object can outlive a request
        # when the database session does: tests, CLI).
        operator.__dict__.pop("_access_cache", None)
    if principal is None or not principal.active or principal.session_version != row.session_version:
        return None
    if row.second_factor_pending and not include_pending:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        db.session.execute(update(AuthSession).where(AuthSession.id == row.id).values(last_seen_at=now))
        db.session.commit()
    return row


def start_impersonation(login: CustomerLogin, staff_row: AuthSession) -> AuthSession:
    """Open `login`'s selfcare read-only for the operator of `staff_row` (this browser's
    session): a customer session marked with the operator, the operator's token kept aside."""
    staff_token = session.get(SESSION_KEY)
    row = start_session(login, impersonator_id=staff_row.operator_id)
    row.expires_at = min(staff_row.expires_at, row.last_seen_at + IMPERSONATION_LIFETIME)
    session[IMPERSONATOR_KEY] = staff_token
    g.pop("_auth_session", None)
    g.pop("_auth_session_pending", None)
    return row


def end_impersonation() -> AuthSession | None:
    """Revoke this browser's view-as session and give it back the operator's session; that
    session's row, or None when it is no longer valid (then the browser is logged out)."""
    row = _valid_row(session.get(SESSION_KEY), include_pending=False)
    staff_token = session.get(IMPERSONATOR_KEY)
    if row is not None and row.impersonator_id is not None:
        row.revoked_at = utcnow()
    session.clear()
    for key in ("_auth_session", "_auth_session_pending", "_login_user"):
        g.pop(key, None)
    staff = _valid_row(staff_token, include_pending=False)
    if staff is None or staff.face != Face.OPERATOR:
        return None
    session[SESSION_KEY] = staff_token
    session.permanent = True
    return staff


def end_session() -> None:
    """Log out this browser: revoke the row and drop the cookie's contents."""
    row = current_auth_session(include_pending=True)
    if row is not None:
        row.revoked_at = utcnow()
        db.session.commit()
    session.clear()
    g.pop("_auth_session", None)
    g.pop("_auth_session_pending", None)


def end_all_sessions(principal: CustomerLogin | Operator, keep: AuthSession | None = None) -> int:
    """Log out everywhere (or everywhere else, when `keep` is this session)."""
    now = utcnow()
    column = AuthSession.operator_id if isinstance(principal, Operator) else AuthSession.customer_login_id
    stmt = update(AuthSession).where(column == principal.id, AuthSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep.id)
    result = db.session.execute(stmt.values(revoked_at=now))
    if keep is None:
        principal.session_version += 1
    return result.rowcount or 0


def active_sessions(principal: CustomerLogin | Operator) -> list[AuthSession]:
    column = AuthSession.operator_id if isinstance(principal, Operator) else AuthSession.customer_login_id
    now = utcnow()
    return list(
        db.session.scalars(
            select(AuthSession)
            .where(column == principal.id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now,
                   AuthSession.second_factor_pending.is_(False),
                   # Staff viewing as the customer is not one of the customer's devices.
                   AuthSession.impersonator_id.is_(None))
            .order_by(AuthSession.last_seen_at.desc())
            .limit(50)
        )
    )


def init_sessions(app) -> None:
    login_manager.anonymous_user = Anonymous

    @app.before_request
    def _fresh_per_request():
        # An app context can outlive a request (tests, CLI); what we cache on `g` must not.
        for key in ("_auth_session", "_auth_session_pending", "_login_user"):
            g.pop(key, None)
    login_manager.session_protection = None  # our session row is the protection

    @login_manager.request_loader
    def _load(_request):
        row = current_auth_session()
        if row is None:
            return None
        principal = row.customer_login if row.face == Face.CUSTOMER else row.operator
        # Read-only "view as customer" sessions carry who opened them.
        principal.impersonator_id = row.impersonator_id
        return principal

    @login_manager.user_loader
    def _never(_user_id):  # we never store Flask-Login's _user_id
        return None


def is_expired(at: datetime) -> bool:
    return at <= utcnow()
