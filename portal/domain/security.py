"""A selfcare login's own security: the TOTP second factor (the rules are
`domain/two_factor.py`, shared with operators), recent logins and other sessions. Every
change is audited."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import two_factor
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import AuthSession, CustomerLogin, LoginEvent
from portal.security.sessions import end_all_sessions
from portal.security.totp import (
    provisioning_uri,
)

RECENT_LOGINS = 20


def totp_enabled(login: CustomerLogin) -> bool:
    return two_factor.enabled(login)


def pending_secret(login: CustomerLogin) -> str | None:
    """The secret of an enrolment not yet confirmed, or None."""
    return two_factor.pending_secret(login)


def enrolment_uri(login: CustomerLogin, secret: str, issuer: str) -> str:
    return provisioning_uri(secret, login.email, issuer)


def start_totp_enrolment(session: Session, login: CustomerLogin, actor: Actor) -> str:
    """A fresh secret for the authenticator app (replacing an unconfirmed one)."""
    return two_factor.start_enrolment(session, login, actor)


def confirm_totp(session: Session, login: CustomerLogin, code: str, actor: Actor) -> list[str]:
    """The first right code turns the second factor on; returns the recovery codes, which
    are shown once (only their hashes are kept)."""
    return two_factor.confirm(session, login, code, actor)


def disable_totp(session: Session, login: CustomerLogin, proof: str, actor: Actor) -> None:
    two_factor.disable(session, login, proof, actor)


def regenerate_recovery_codes(session: Session, login: CustomerLogin, proof: str, actor: Actor) -> list[str]:
    """New recovery codes; the old ones stop working."""
    return two_factor.regenerate_recovery_codes(session, login, proof, actor)


def recent_logins(session: Session, login: CustomerLogin, limit: int = RECENT_LOGINS) -> list[LoginEvent]:
    """This login's last attempts, successful or not, newest first."""
    return list(session.scalars(
        select(LoginEvent).where(LoginEvent.customer_login_id == login.id)
        .order_by(LoginEvent.at.desc(), LoginEvent.id.desc()).limit(limit)
    ))


def log_out_other_sessions(session: Session, login: CustomerLogin, keep: AuthSession | None, actor: Actor) -> int:
    """End every session of this login except the current one; returns how many ended."""

    count = end_all_sessions(login, keep=keep)
    record(session, actor, "customer.logout_other_sessions", "customer_login", login.id,
           {"sessions": count}, customer_id=login.customer_id)
    return count


_BROWSERS = (
    ("Edge", r"Edg(?:e|A|iOS)?/"),
    ("Opera", r"OPR/|Opera"),
    ("Samsung Internet", r"SamsungBrowser/"),
    ("Firefox", r"Firefox/|FxiOS/"),
    ("Chrome", r"Chrome/|CriOS/|Chromium/"),
    ("Safari", r"Safari/"),
)
_SYSTEMS = (
    ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("ChromeOS", r"CrOS"),
    ("Linux", r"Linux"),
)


def describe_browser(user_agent: str | None) -> str:
    """"Firefox on Linux" from a User-Agent string; good enough to recognise one's devices."""
    ua = user_agent or ""
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, ua)), None)
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, ua)), None)
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    if browser or system:
        return browser or system
    return _("Unknown browser")
