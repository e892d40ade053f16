"""Logins of both faces: authentication, password reset, and creating accounts."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import (
    RIGHTS,
    Customer,
    CustomerLogin,
    Face,
    LoginEvent,
    Operator,
    PasswordResetToken,
    Right,
    Role,
)
from portal.models.base import utcnow
from portal.security.passwords import hash_password, needs_rehash, password_problem, verify_password
from portal.security.sessions import end_all_sessions


def normalise_email(email: str) -> str:
    # PostgreSQL text cannot hold NUL: a NUL would turn a failed login into a 500. U+FFFD
    # keeps the attempt recordable and matches no stored address.
    return (email or "").replace("\x00", "\ufffd").strip().lower()


def find_login(session: Session, face: Face, email: str) -> CustomerLogin | Operator | None:
    model = Operator if face == Face.OPERATOR else CustomerLogin
    return session.scalar(select(model).where(model.email == normalise_email(email)))


def authenticate(session: Session, face: Face, email: str, password: str, *, ip: str | None,
                 user_agent: str | None) -> CustomerLogin | Operator | None:
    """The login if the password is right and the account active, else None. Unknown
    account and wrong password look the same to the caller and take the same time.
    Every attempt is recorded as a login event; failures also in the audit log."""
    principal = find_login(session, face, email)
    ok = verify_password(principal.password_hash if principal else None, password)
    if ok and not principal.active:
        ok = False
    now = utcnow()
    event = LoginEvent(
        face=face,
        customer_login_id=principal.id if isinstance(principal, CustomerLogin) else None,
        operator_id=principal.id if isinstance(principal, Operator) else None,
        email_tried=normalise_email(email)[:254],
        at=now,
        ip=ip,
        user_agent=user_agent,
        success=ok,
        reason="" if ok else ("unknown" if principal is None else ("inactive" if not principal.active else "password")),
    )
    session.add(event)
    actor_type = Actor.operator if face == Face.OPERATOR else Actor.customer
    if principal is not None:
        actor = actor_type(principal, ip=ip)
    else:
        actor = Actor.system(f"login attempt: {normalise_email(email)[:100]}")
    record(session, actor, f"{face.value}.login" if ok else f"{face.value}.login_failed",
           "operator" if face == Face.OPERATOR else "customer_login",
           principal.id if principal else None,
           customer_id=principal.customer_id if isinstance(principal, CustomerLogin) else None)
    if not ok:
        if principal is not None:
            principal.failed_logins += 1
        return None
    principal.failed_logins = 0
    principal.last_login_at = now
    if needs_rehash(principal.password_hash):
        principal.password_hash = hash_password(password)
    return principal


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def spend_reset_tokens(session: Session, principal: CustomerLogin | Operator) -> int:
    """Every outstanding reset (or invitation) link of the login stops working; how many did.
    A new password — changed in the profile or set through a link — ends them all: a link
    mailed before the change must not undo it."""
    column = PasswordResetToken.operator_id if isinstance(principal, Operator) else PasswordResetToken.customer_login_id
    result = session.execute(
        update(PasswordResetToken).where(column == principal.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def create_reset_token(session: Session, principal: CustomerLogin | Operator, max_age: timedelta,
                       ip: str | None = None) -> str:
    """A single-use token for the e-mailed link; only its hash is stored. Older unused
    tokens of the same login stop working."""
    face = Face.OPERATOR if isinstance(principal, Operator) else Face.CUSTOMER
    now = utcnow()
    spend_reset_tokens(session, principal)
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordResetToken(
            token_hash=_token_hash(token),
            face=face,
            customer_login_id=principal.id if face == Face.CUSTOMER else None,
            operator_id=principal.id if face == Face.OPERATOR else None,
            expires_at=now + max_age,
            ip=ip,
        )
    )
    return token


def valid_reset_token(session: Session, face: Face, token: str) -> PasswordResetToken | None:
    row = session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == _token_hash(token or "")))
    if row is None or row.face != face or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def reset_password(session: Session, face: Face, token: str, new_password: str, ip: str | None = None):
    """Spend the token, set the password, and end every session of the login."""
    row = valid_reset_token(session, face, token)
    if row is None:
        raise DomainError(_("This link has expired or was already used. Ask for a new one."))
    principal = session.get(Operator, row.operator_id) if face == Face.OPERATOR else session.get(CustomerLogin, row.customer_login_id)
    problem = password_problem(new_password, principal.email)
    if problem:
        raise DomainError(problem, field="password")
    row.used_at = utcnow()
    set_password(session, principal, new_password, actor=None, ip=ip, action="password.reset")
    return principal


def set_password(session: Session, principal, new_password: str, actor: Actor | None, ip: str | None = None,
                 action: str = "password.changed") -> None:

    problem = password_problem(new_password, principal.email)
    if problem:
        raise DomainError(problem, field="password")
    principal.password_hash = hash_password(new_password)
    principal.failed_logins = 0
    if isinstance(principal, CustomerLogin) and principal.invited_at is not None and principal.activated_at is None:
        principal.activated_at = utcnow()  # an invitee who chose a password by "forgot password" is in too
    end_all_sessions(principal)  # bumps session_version: every old cookie dies
    spend_reset_tokens(session, principal)  # a link asked for before the change dies too
    is_op = isinstance(principal, Operator)
    actor = actor or (Actor.operator(principal, ip=ip) if is_op else Actor.customer(principal, ip=ip))
    record(session, actor, action, "operator" if is_op else "customer_login", principal.id,
           customer_id=None if is_op else principal.customer_id)


def ensure_rights(session: Session) -> dict[str, Right]:
    """The rights catalogue exists in the database (idempotent)."""
    existing = {r.code: r for r in session.scalars(select(Right))}
    for code, description in RIGHTS.items():
        if code not in existing:
            existing[code] = Right(code=code, description=description)
            session.add(existing[code])
    session.flush()
    return existing


def ensure_admin_role(session: Session) -> Role:
    rights = ensure_rights(session)
    role = session.scalar(select(Role).where(Role.name == "Administrator"))
    if role is None:
        role = Role(name="Administrator")
        session.add(role)
    role.rights = list(rights.values())
    session.flush()
    return role


def create_operator(session: Session, email: str, name: str, password: str, roles: list[Role],
                    actor: Actor) -> Operator:
    email = normalise_email(email)
    if session.scalar(select(Operator.id).where(Operator.email == email)):
        raise DomainError(_("An operator with this e-mail already exists."), field="email")
    problem = password_problem(password, email)
    if problem:
        raise DomainError(problem, field="password")
    op = Operator(email=email, name=name, password_hash=hash_password(password), roles=roles)
    session.add(op)
    session.flush()
    record(session, actor, "operator.created", "operator", op.id, {"email": [None, email], "name": [None, name]})
    return op


def create_customer_login(session: Session, customer: Customer, email: str, password: str, actor: Actor) -> CustomerLogin:
    email = normalise_email(email)
    if session.scalar(select(CustomerLogin.id).where(CustomerLogin.email == email)):
        raise DomainError(_("A login with this e-mail already exists."), field="email")
    problem = password_problem(password, email)
    if problem:
        raise DomainError(problem, field="password")
    login = CustomerLogin(customer_id=customer.id, email=email, password_hash=hash_password(password))
    session.add(login)
    session.flush()
    record(session, actor, "customer_login.created", "customer_login", login.id, {"email": [None, email]},
           customer_id=customer.id)
    return login
