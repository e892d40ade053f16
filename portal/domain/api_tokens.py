"""API tokens: a token acts for its operator with a subset of the operator's rights and
locations. The secret is shown once; only its sha256 is kept. What a token may do is computed
on every request from the operator as they are now (`token_access`), so taking a right or a
location from the operator takes it from their tokens too."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, lazyload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import RIGHTS, ApiToken, Operator
from portal.models.base import utcnow

TOKEN_PREFIX = "ptk_"
MAX_DAYS = 3650
# Reading the token for every request must not write a row every time.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class ApiTokenError(DomainError):
    """A token rule refused the change."""


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def via(token: ApiToken) -> str:
    """How the audit log names the token an operator acted through."""
    return f"API token {token.id} “{token.name}”"[:120]


@dataclass(frozen=True)
class TokenAccess:
    rights: frozenset[str]
    location_ids: frozenset[int] | None  # None: every location


def token_access(token: ApiToken) -> TokenAccess:
    """The token's rights and locations, never more than its operator has now."""
    operator = token.operator
    rights = frozenset(token.rights or ()) & operator.rights
    own = operator.location_ids
    chosen = frozenset(token.location_ids or ())
    if not chosen:
        locations = own
    elif own is None:
        locations = chosen
    else:
        locations = chosen & own  # may be empty: a location taken from the operator
    return TokenAccess(rights, locations)


def _check_grant(operator: Operator, rights: Iterable[str], location_ids: Iterable[int]) -> tuple[list, list]:
    rights = sorted(set(rights))
    if not rights:
        raise ApiTokenError(_("Choose at least one right for the token."), field="rights")
    unknown = [r for r in rights if r not in RIGHTS]
    if unknown:
        raise ApiTokenError(_("Unknown right: %(codes)s.", codes=", ".join(unknown)), field="rights")
    beyond = [r for r in rights if not operator.has_right(r)]
    if beyond:
        raise ApiTokenError(_("A token cannot have rights its operator does not have: %(codes)s.",
                              codes=", ".join(beyond)), field="rights")
    location_ids = sorted(set(location_ids))
    own = operator.location_ids
    if own is not None and not set(location_ids) <= own:
        raise ApiTokenError(_("A token cannot reach locations its operator cannot."), field="locations")
    return rights, location_ids


def create_token(session: Session, actor: Actor, operator: Operator, *, name: str, rights: Iterable[str],
                 location_ids: Iterable[int] = (), expires_in_days: int | None = None,
                 now: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for `operator`; returns it and its secret, which is not kept."""
    name = (name or "").strip()
    if not name:
        raise ApiTokenError(_("Give the token a name."), field="name")
    if len(name) > 100:
        raise ApiTokenError(_("The name is at most 100 characters."), field="name")
    if not operator.active:
        raise ApiTokenError(_("An inactive operator cannot have new tokens."), field="operator")
    rights, location_ids = _check_grant(operator, rights, location_ids)
    now = now or utcnow()
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_DAYS:
            raise ApiTokenError(_("A token expires after 1 to %(max)s days.", max=MAX_DAYS), field="expires")
        expires_at = now + timedelta(days=expires_in_days)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(operator_id=operator.id, operator=operator, name=name, token_hash=hash_token(plain),
                     prefix=plain[:12], rights=rights, location_ids=location_ids, expires_at=expires_at,
                     created_by_id=actor.id if actor.type == "operator" else None)
    session.add(token)
    session.flush()
    record(session, actor, "api_token.created", "api_token", token.id,
           {"operator_id": operator.id, "name": name, "rights": rights, "location_ids": location_ids,
            "expires_at": expires_at})
    return token, plain


def revoke_token(session: Session, actor: Actor, token: ApiToken, *, now: datetime | None = None) -> None:
    if token.revoked_at is not None:
        raise ApiTokenError(_("This token is already revoked."))
    token.revoked_at = now or utcnow()
    record(session, actor, "api_token.revoked", "api_token", token.id,
           {"operator_id": token.operator_id, "name": token.name})


_TOKEN_ROW = (
    select(ApiToken, Operator)
    .join(Operator, ApiToken.operator_id == Operator.id)
    .options(lazyload(Operator.roles), lazyload(Operator.locations))
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def usable_token(session: Session, plain: str, *, now: datetime | None = None) -> tuple[ApiToken | None, str]:
    """The token a request presents, and why it is refused ("" when usable): "invalid",
    "revoked", "expired" or "inactive" (its operator). Reads only: `touch` records the use."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None, "invalid"
    found = session.execute(_TOKEN_ROW, {"token_hash": hash_token(plain)}).first()
    if found is None:
        return None, "invalid"
    token, operator = found
    # The operator came with the token (one statement); its rights and locations are read
    # once, as plain rows (Operator._access), not as role and location objects.
    set_committed_value(token, "operator", operator)
    operator.__dict__.pop("_access_cache", None)
    now = now or utcnow()
    if token.revoked_at is not None:
        return token, "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return token, "expired"
    if not token.operator.active:
        return token, "inactive"
    return token, ""


def needs_touch(token: ApiToken, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY


def touch(session: Session, token_id: int, now: datetime | None = None) -> None:
    """Record a use (a plain UPDATE: whatever else the request loaded stays loaded)."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now or utcnow()))


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """What a list shows: "revoked", "expired" or "active" (the operator's own state aside)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def tokens_of(session: Session, operator: Operator | None = None) -> list[ApiToken]:
    """Newest first; every operator's with `operator` None (administrators)."""
    stmt = select(ApiToken).options(selectinload(ApiToken.operator)).order_by(ApiToken.id.desc())
    if operator is not None:
        stmt = stmt.where(ApiToken.operator_id == operator.id)
    return list(session.scalars(stmt))
