"""A selfcare login's own security: TOTP second factor (enrol, confirm, disable), recovery
codes, recent logins and other sessions. Every change is audited.

Enrolment is two steps: a secret is stored (encrypted) while `totp_enabled_at` stays null,
so logging in still asks for the password only; the first right code from the app enables
it. Turning it off or renewing recovery codes needs a current code or the password, so a
session left open on a shared computer cannot silently weaken the account."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import AuthSession, CustomerLogin, LoginEvent
from portal.models.base import utcnow
from portal.security.sessions import end_all_sessions
from portal.security.totp import (
    accept_totp,
    decrypt_secret,
    encrypt_secret,
    new_recovery_codes,
    new_secret,
    proves_owner,
    provisioning_uri,
)

RECENT_LOGINS = 20


def totp_enabled(login: CustomerLogin) -> bool:
    return login.totp_enabled_at is not None


def pending_secret(login: CustomerLogin) -> str | None:
    """The secret of an enrolment not yet confirmed, or None."""
    if totp_enabled(login):
        return None
    return decrypt_secret(login.totp_secret)


def enrolment_uri(login: CustomerLogin, secret: str, issuer: str) -> str:
    return provisioning_uri(secret, login.email, issuer)


def start_totp_enrolment(session: Session, login: CustomerLogin, actor: Actor) -> str:
    """A fresh secret for the authenticator app (replacing an unconfirmed one)."""
    if totp_enabled(login):
        raise DomainError(_("Two-factor authentication is already on."))
    secret = new_secret()
    login.totp_secret = encrypt_secret(secret)
    record(session, actor, "totp.enrolment_started", "customer_login", login.id, customer_id=login.customer_id)
    return secret


def confirm_totp(session: Session, login: CustomerLogin, code: str, actor: Actor) -> list[str]:
    """The first right code turns the second factor on; returns the recovery codes, which
    are shown once (only their hashes are kept)."""
    if totp_enabled(login):
        raise DomainError(_("Two-factor authentication is already on."))
    secret = pending_secret(login)
    if secret is None:
        raise DomainError(_("Start the set-up again."), field="code")
    if not accept_totp(session, login, code, secret=secret):
        raise DomainError(_("That code is not right. Check your device's clock and try the next code."), field="code")
    codes, hashes = new_recovery_codes(10)
    login.totp_enabled_at = utcnow()
    login.recovery_code_hashes = hashes
    record(session, actor, "totp.enabled", "customer_login", login.id,
           {"totp": [False, True]}, customer_id=login.customer_id)
    return codes


def _check_code_or_password(session: Session, login: CustomerLogin, proof: str) -> None:
    if not proves_owner(session, login, proof):
        raise DomainError(_("Enter a current code from your app, or your password."), field="proof")


def disable_totp(session: Session, login: CustomerLogin, proof: str, actor: Actor) -> None:
    if not totp_enabled(login):
        raise DomainError(_("Two-factor authentication is off."))
    _check_code_or_password(session, login, proof)
    login.totp_secret = None
    login.totp_enabled_at = None
    login.recovery_code_hashes = []
    record(session, actor, "totp.disabled", "customer_login", login.id,
           {"totp": [True, False]}, customer_id=login.customer_id)


def regenerate_recovery_codes(session: Session, login: CustomerLogin, proof: str, actor: Actor) -> list[str]:
    """New recovery codes; the old ones stop working."""
    if not totp_enabled(login):
        raise DomainError(_("Two-factor authentication is off."))
    _check_code_or_password(session, login, proof)
    codes, hashes = new_recovery_codes(10)
    login.recovery_code_hashes = hashes
    record(session, actor, "totp.recovery_codes_regenerated", "customer_login", login.id,
           customer_id=login.customer_id)
    return codes


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
