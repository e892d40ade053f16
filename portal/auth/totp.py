"""TOTP second factor (pyotp) with recovery codes. Secrets are encrypted at rest with a
key derived from SECRET_KEY."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


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


def verify_totp(secret: str | None, code: str) -> bool:
    code = (code or "").replace(" ", "")
    if not secret or not code.isdigit() or len(code) != 6:
        return False
    return pyotp.TOTP(secret).verify(code, valid_window=1)


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
