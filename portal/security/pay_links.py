"""The signed token of a pay link: which invoice or reminder it opens, and until when.

The token is `URLSafeSerializer(secret, salt).dumps([kind, id, expires_on])`: an HMAC over a
tiny JSON list, no timestamp of its own. So the same invoice always gets the same token
(deterministic), which matters because an invoice or reminder PDF is rendered once and
stored: the link printed on it, the one in its e-mail and the one in selfcare are one and
the same link, whenever each was made. The expiry travels inside the signed payload, so a
change of PAY_LINK_DAYS never breaks a link already printed; only a new SECRET_KEY does
(SECRET_KEY_FALLBACKS keeps old links working through a rotation, as it does for sessions).

The payload names a row by its id and nothing else: no name, no amount, no e-mail address.
What the page shows is read from the database when it is opened.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

# A salt of its own: a token signed for another purpose (cancellation links, CSRF, the
# session) never verifies as a pay link, and a pay link as nothing else.
SALT = "portal.pay-link.v1"
DEFAULT_DAYS = 90


class LinkKind(enum.StrEnum):
    INVOICE = "i"
    REMINDER = "r"


class Refusal(enum.StrEnum):
    """Why a token opens nothing. The page answers the same for all but EXPIRED."""

    TAMPERED = "tampered"  # not signed by us for this purpose, or not a pay link's payload
    EXPIRED = "expired"  # genuine, but past its expiry date
    UNKNOWN = "unknown"  # genuine and current, but the row is gone or is not payable


@dataclass(frozen=True)
class Claim:
    kind: LinkKind
    object_id: int
    expires_on: date


def expiry(base: date, days: int = DEFAULT_DAYS) -> date:
    """The last day a link works: `days` after the invoice's due date or the reminder's
    pay-by date (fixed data of the row, so the token stays the same)."""
    return base + timedelta(days=days)


def _serializer(secret_keys: str | list[str]) -> URLSafeSerializer:
    # itsdangerous signs with the last key and accepts any: [*fallbacks, current].
    return URLSafeSerializer(secret_keys, salt=SALT)


def make_token(secret_keys: str | list[str], kind: LinkKind, object_id: int, expires_on: date) -> str:
    return _serializer(secret_keys).dumps([kind.value, int(object_id), expires_on.isoformat()])


def read_token(secret_keys: str | list[str], token: str, today: date) -> Claim | Refusal:
    """The claim of a genuine, unexpired token; else TAMPERED or EXPIRED."""
    try:
        payload = _serializer(secret_keys).loads(token or "")
    except BadSignature:
        return Refusal.TAMPERED
    try:
        kind, object_id, expires_text = payload
        claim = Claim(LinkKind(kind), object_id, date.fromisoformat(expires_text))
    except (TypeError, ValueError):
        return Refusal.TAMPERED
    if not isinstance(object_id, int) or isinstance(object_id, bool) or object_id <= 0:
        return Refusal.TAMPERED
    if today > claim.expires_on:
        return Refusal.EXPIRED
    return claim


def secret_keys(config) -> list[str]:
    """The keys a token may be signed with, newest last (Flask's SECRET_KEY_FALLBACKS)."""
    return [*(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]


def token_for(config, kind: LinkKind, object_id: int, base: date) -> str:
    """The token of the row's pay link under this configuration."""
    days = int(config.get("PAY_LINK_DAYS") or DEFAULT_DAYS)
    return make_token(secret_keys(config), kind, object_id, expiry(base, days))
