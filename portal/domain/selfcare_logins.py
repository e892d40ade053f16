"""Selfcare logins of a customer: invitations (by staff, or by the customer's own account
owner), their acceptance, roles, disabling. The link is a password-reset token of the login
(hashed, single-use, expiring: portal/domain/accounts.py); a new link kills the old one."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.accounts import (
    create_reset_token,
    normalise_email,
    set_password,
    valid_reset_token,
)
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.mail import send_email
from portal.models import ActorType, Customer, CustomerLogin, Face, LoginRole, LoginState
from portal.models.base import utcnow
from portal.security.passwords import hash_password, password_problem
from portal.security.sessions import end_all_sessions

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# What each role may open in selfcare, by area. The owner opens every area.
AREAS: dict[LoginRole, frozenset[str]] = {
    LoginRole.OWNER: frozenset({"billing", "services", "users"}),
    LoginRole.BILLING: frozenset({"billing"}),
    LoginRole.TECHNICAL: frozenset({"services"}),
}


def role_labels() -> dict[LoginRole, str]:
    return {
        LoginRole.OWNER: _l("Owner (everything)"),
        LoginRole.BILLING: _l("Billing (invoices and payments)"),
        LoginRole.TECHNICAL: _l("Technical (services and requests)"),
    }


def state_labels() -> dict[LoginState, str]:
    return {
        LoginState.INVITED: _l("Invited (pending)"),
        LoginState.ACTIVE: _l("Active"),
        LoginState.DISABLED: _l("Disabled"),
    }


def may_open(login: CustomerLogin, area: str) -> bool:
    """Whether a login's role opens a selfcare area ("billing", "services", "users")."""
    return area in AREAS.get(login.role or LoginRole.OWNER, frozenset())


class LoginError(DomainError):
    pass


def customer_logins(session: Session, customer: Customer) -> list[CustomerLogin]:
    return list(session.scalars(select(CustomerLogin).where(CustomerLogin.customer_id == customer.id)
                                .order_by(CustomerLogin.id)))


def _check_actor(actor: Actor, customer_id: int) -> None:
    # A customer acts only on their own logins (the face checks too; this is the rule).
    if actor.type == ActorType.CUSTOMER and actor.id != customer_id:
        raise LoginError(_("This login belongs to another customer."))


def _role(value) -> LoginRole:
    try:
        return LoginRole(value)
    except ValueError:
        raise LoginError(_("Choose a role."), field="role") from None


def invite_login(session: Session, actor: Actor, customer: Customer, email: str, role,
                 max_age: timedelta) -> tuple[CustomerLogin, str]:
    """A new login of the customer, pending until the invitee chooses a password through the
    returned single-use token (for the caller to e-mail). An address holds one login."""
    _check_actor(actor, customer.id)
    role = _role(role)
    email = normalise_email(email)
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise LoginError(_("Enter an e-mail address."), field="email")
    if session.scalar(select(CustomerLogin.id).where(CustomerLogin.email == email)):
        raise LoginError(_("A login with this e-mail already exists."), field="email")
    now = utcnow()
    # An unusable random password until the invitation is accepted.
    login = CustomerLogin(customer_id=customer.id, email=email, password_hash=hash_password(secrets.token_urlsafe(32)),
                          role=role, invited_at=now, invited_by=actor.name[:200] or None)
    session.add(login)
    session.flush()
    token = create_reset_token(session, login, max_age, ip=actor.ip)
    record(session, actor, "customer_login.invited", "customer_login", login.id,
           {"email": [None, email], "role": [None, role.value]}, customer_id=customer.id)
    return login, token


def resend_invitation(session: Session, actor: Actor, login: CustomerLogin, max_age: timedelta) -> str:
    """A new link for a pending invitation; the old link stops working."""
    _check_actor(actor, login.customer_id)
    if login.state != LoginState.INVITED:
        raise LoginError(_("This login is not waiting for its invitation to be accepted."))
    token = create_reset_token(session, login, max_age, ip=actor.ip)  # spends the older ones
    login.invited_at = utcnow()
    login.invited_by = actor.name[:200] or None
    record(session, actor, "customer_login.invitation_resent", "customer_login", login.id,
           {"email": login.email}, customer_id=login.customer_id)
    return token


def revoke_invitation(session: Session, actor: Actor, login: CustomerLogin) -> None:
    """A pending invitation is withdrawn: the login goes (with its link), the address is free."""
    _check_actor(actor, login.customer_id)
    if login.state != LoginState.INVITED:
        raise LoginError(_("Only a pending invitation can be revoked; disable the login instead."))
    record(session, actor, "customer_login.invitation_revoked", "customer_login", login.id,
           {"email": [login.email, None]}, customer_id=login.customer_id)
    session.delete(login)
    session.flush()


def _other_active_owners(session: Session, login: CustomerLogin) -> int:
    return session.scalar(select(func.count(CustomerLogin.id)).where(
        CustomerLogin.customer_id == login.customer_id, CustomerLogin.id != login.id,
        CustomerLogin.role == LoginRole.OWNER, CustomerLogin.active.is_(True),
        CustomerLogin.activated_at.is_not(None) | CustomerLogin.invited_at.is_(None))) or 0


def _check_owner_stays(session: Session, actor: Actor, login: CustomerLogin) -> None:
    """The customer's own users keep an owner among them (staff may leave none: they can
    always invite one again)."""
    if (actor.type == ActorType.CUSTOMER and login.role == LoginRole.OWNER and login.state == LoginState.ACTIVE
            and not _other_active_owners(session, login)):
        raise LoginError(_("The account needs an active owner; make another login owner first."))


def disable_login(session: Session, actor: Actor, login: CustomerLogin) -> int:
    """The login can no longer log in; its sessions end now. Returns the sessions ended."""
    _check_actor(actor, login.customer_id)
    if not login.active:
        raise LoginError(_("This login is already disabled."))
    if login.state == LoginState.INVITED:
        raise LoginError(_("Revoke the pending invitation instead."))
    _check_owner_stays(session, actor, login)
    login.active = False
    ended = end_all_sessions(login)
    record(session, actor, "customer_login.disabled", "customer_login", login.id,
           {"active": [True, False], "sessions_ended": ended}, customer_id=login.customer_id)
    return ended


def enable_login(session: Session, actor: Actor, login: CustomerLogin) -> None:
    _check_actor(actor, login.customer_id)
    if login.active:
        raise LoginError(_("This login is already enabled."))
    login.active = True
    login.failed_logins = 0
    record(session, actor, "customer_login.enabled", "customer_login", login.id,
           {"active": [False, True]}, customer_id=login.customer_id)


def change_role(session: Session, actor: Actor, login: CustomerLogin, role) -> bool:
    """A login's role; whether it changed. The customer's own users keep an owner."""
    _check_actor(actor, login.customer_id)
    role = _role(role)
    if role == login.role:
        return False
    if role != LoginRole.OWNER:
        _check_owner_stays(session, actor, login)
    before = login.role
    login.role = role
    record(session, actor, "customer_login.role_changed", "customer_login", login.id,
           {"role": [before.value if before else None, role.value]}, customer_id=login.customer_id)
    return True


def invitation_login(session: Session, token: str) -> CustomerLogin | None:
    """The pending login a link invites, or None (unknown, expired, used, revoked, accepted)."""
    row = valid_reset_token(session, Face.CUSTOMER, token)
    if row is None:
        return None
    login = session.get(CustomerLogin, row.customer_login_id)
    if login is None or login.state != LoginState.INVITED:
        return None
    return login


def accept_invitation(session: Session, token: str, password: str, ip: str | None = None) -> CustomerLogin:
    """The invitee chooses a password (the password rules hold); the link is spent, the login
    active. Works once."""
    login = invitation_login(session, token)
    if login is None:
        raise LoginError(_("This invitation link has expired, was already used or was withdrawn."))
    problem = password_problem(password, login.email)
    if problem:
        raise LoginError(problem, field="password")
    login.activated_at = utcnow()
    set_password(session, login, password, actor=None, ip=ip, action="customer_login.invitation_accepted")
    return login


def mail_invitation(login: CustomerLogin, link: str, inviter: str, max_age: timedelta) -> None:
    """The invitation e-mail, in the login's (else the customer's) language."""
    customer = login.customer
    language = login.language or customer.language
    with force_locale(language.value if language else None):
        send_email(login.email, _("Your access to selfcare"), "customer_invitation", customer_id=customer.id,
                   customer=customer, link=link, inviter=inviter, role=str(role_labels()[login.role]),
                   days=max(1, int(max_age.total_seconds() // 86400)))
