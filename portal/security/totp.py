"""TOTP second factor (pyotp) with recovery codes. Secrets are encrypted at rest with a
key derived from SECRET_KEY."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import or_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.models import CustomerLogin, Operator
from portal.security.passwords import verify_password


def _fernet() -> Fernet:
    key = hashlib.sha256(("totp:" + str(current_app.config["SECRET_KEY"])).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def new_secret() -> str:
    return pyotp.random_base32()


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(stored: str | None) -> str | None:
    if not stored:
        return None
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def totp_step(secret: str | None, code: str, at: datetime | None = None) -> int | None:
    """The time step (30 s each, counted from the epoch) whose code `code` is, within one step
    of now either way (clock drift), or None."""
    code = (code or "").replace(" ", "")
    if not secret or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(at or datetime.now(UTC))
    for step in (now, now - 1, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def accept_totp(session: Session, principal: CustomerLogin | Operator, code: str,
                secret: str | None = None) -> bool:
    """True when `code` is right for the login's secret (or `secret`, while enrolling) and
    later than the last code it accepted; that step is then recorded, so neither this code
    nor an earlier one works again (RFC 6238 §5.2). The check and the record are one
    conditional UPDATE: of two requests with the same code, only one wins."""
    step = totp_step(secret if secret is not None else decrypt_secret(principal.totp_secret), code)
    if step is None:
        return False
    # The views may hand over Flask-Login's current_user (a proxy): work on the object itself.
    principal = getattr(principal, "_get_current_object", lambda: principal)()
    model = Operator if isinstance(principal, Operator) else CustomerLogin
    result = session.execute(
        update(model)
        .where(model.id == principal.id, or_(model.totp_last_step.is_(None), model.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    set_committed_value(principal, "totp_last_step", step)
    return True


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


def new_recovery_codes(n: int = 10) -> tuple[list[str], list[str]]:
    """(codes to show once, hashes to store)."""
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(n)]
    return codes, [_code_hash(c) for c in codes]


def use_recovery_code(principal, code: str) -> bool:
    """True and the code is spent, or False."""
    wanted = _code_hash(code.strip())
    hashes = list(principal.recovery_code_hashes or [])
    for h in hashes:
        if hmac.compare_digest(h, wanted):
            hashes.remove(h)
            principal.recovery_code_hashes = hashes
            return True
    return False


def proves_owner(session: Session, account: CustomerLogin | Operator, proof: str) -> bool:
    """A current 6-digit code from the account's app (used once), or its password: what
    turning two-factor off or renewing recovery codes asks for, on both faces."""
    proof = (proof or "").strip()
    compact = re.sub(r"\s", "", proof)
    if compact.isdigit() and len(compact) == 6 and accept_totp(session, account, compact):
        return True
    return bool(proof) and verify_password(account.password_hash, proof)
