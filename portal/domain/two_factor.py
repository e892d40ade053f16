"""The second factor (TOTP) of a login, the same rules for a customer's selfcare login and an
operator: enrol, confirm, renew recovery codes, turn off. Every change is audited.

Enrolment is two steps: a secret is stored (encrypted) while `totp_enabled_at` stays null,
so logging in still asks for the password only; the first right code from the app enables
it. Turning it off or renewing recovery codes needs a current code or the password, so a
session left open on a shared computer cannot silently weaken the account. The faces' rules
(`security` for customers, `operators`) call these with their own error type."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import CustomerLogin, Operator
from portal.models.base import utcnow
from portal.security.totp import (
    accept_totp,
    decrypt_secret,
    encrypt_secret,
    new_recovery_codes,
    new_secret,
    proves_owner,
)

Account = CustomerLogin | Operator
RECOVERY_CODES = 10


def _audit(session: Session, actor: Actor, action: str, account: Account, changes: dict | None = None) -> None:
    if isinstance(account, Operator):
        record(session, actor, action, "operator", account.id, changes)
    else:
        record(session, actor, action, "customer_login", account.id, changes, customer_id=account.customer_id)


def enabled(account: Account) -> bool:
    return account.totp_enabled_at is not None


def pending_secret(account: Account) -> str | None:
    """The secret of an enrolment not yet confirmed, or None."""
    return None if enabled(account) else decrypt_secret(account.totp_secret)


def start_enrolment(session: Session, account: Account, actor: Actor, *,
                    error: type[DomainError] = DomainError) -> str:
    """A fresh secret for the authenticator app (replacing one not yet confirmed)."""
    if enabled(account):
        raise error(_("Two-factor authentication is already on."))
    secret = new_secret()
    account.totp_secret = encrypt_secret(secret)
    _audit(session, actor, "totp.enrolment_started", account)
    return secret


def confirm(session: Session, account: Account, code: str, actor: Actor, *,
            error: type[DomainError] = DomainError) -> list[str]:
    """The first right code turns the second factor on; returns the recovery codes, which
    are shown once (only their hashes are kept)."""
    if enabled(account):
        raise error(_("Two-factor authentication is already on."))
    secret = pending_secret(account)
    if secret is None:
        raise error(_("Start the set-up again."), field="code")
    if not accept_totp(session, account, code, secret=secret):
        raise error(_("That code is not right. Check your device's clock and try the next code."), field="code")
    codes, hashes = new_recovery_codes(RECOVERY_CODES)
    account.totp_enabled_at = utcnow()
    account.recovery_code_hashes = hashes
    _audit(session, actor, "totp.enabled", account, {"totp": [False, True]})
    return codes


def check_proof(session: Session, account: Account, proof: str, *, error: type[DomainError] = DomainError) -> None:
    """A current code from the app, or the password, else refused."""
    if not proves_owner(session, account, proof):
        raise error(_("Enter a current code from your app, or your password."), field="proof")


def regenerate_recovery_codes(session: Session, account: Account, proof: str, actor: Actor, *,
                              error: type[DomainError] = DomainError) -> list[str]:
    """New recovery codes; the old ones stop working."""
    if not enabled(account):
        raise error(_("Two-factor authentication is off."))
    check_proof(session, account, proof, error=error)
    codes, hashes = new_recovery_codes(RECOVERY_CODES)
    account.recovery_code_hashes = hashes
    _audit(session, actor, "totp.recovery_codes_regenerated", account)
    return codes


def disable(session: Session, account: Account, proof: str, actor: Actor, *,
            error: type[DomainError] = DomainError) -> None:
    """Turn the second factor off (with a current code or the password)."""
    if not enabled(account):
        raise error(_("Two-factor authentication is off."))
    check_proof(session, account, proof, error=error)
    account.totp_secret = None
    account.totp_enabled_at = None
    account.recovery_code_hashes = []
    _audit(session, actor, "totp.disabled", account, {"totp": [True, False]})
