"""Bearer tokens: who an API request acts for, and what it may do. A token acts as its
operator narrowed to the token's rights and locations (never more: see
portal.domain.api_tokens.token_access); the request is that narrowed operator for every
rule and scope the staff face applies. Cookies never authenticate the API (no CSRF there)."""
from __future__ import annotations

import hashlib
from functools import wraps

from flask import abort, g, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.domain.actors import Actor
from portal.domain.api_tokens import needs_touch, token_access, touch, usable_token, via
from portal.extensions import db
from portal.models import ApiToken
from portal.security.sessions import Anonymous
from portal.web.problems import problem

BEARER = "bearer"


class TokenPrincipal:
    """What views, `in_operator_locations` and the rules ask of `current_user`."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_operator = True
    is_customer = False
    impersonator_id = None

    def __init__(self, token: ApiToken):
        access = token_access(token)
        self.token = token
        self.operator = token.operator
        self.id = token.operator_id
        self.name = token.operator.name
        self.email = token.operator.email
        self.rights = access.rights
        self.location_ids = access.location_ids

    def has_right(self, code: str) -> bool:
        return code in self.rights

    def get_id(self) -> str:
        raise RuntimeError("API requests are identified by their token")


class Unauthorized(Exception):
    def __init__(self, reason: str):
        self.reason = reason


_REFUSALS = {
    "missing": _l("Send the token as “Authorization: Bearer …”."),
    "invalid": _l("The token is not valid."),
    "revoked": _l("The token was revoked."),
    "expired": _l("The token has expired."),
    "inactive": _l("The token's operator is deactivated."),
}


def presented_token() -> str | None:
    kind, _sep, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if kind.lower() == BEARER and value.strip() else None


def rate_limit_key() -> str:
    """Per token, without reading the database (the limit is checked before anything else);
    per client address for requests without one."""
    plain = presented_token()
    if plain:
        return "api-token:" + hashlib.sha256(plain.encode()).hexdigest()[:32]
    return "api-ip:" + (request.remote_addr or "")


def authenticate() -> None:
    """Blueprint hook: the request's principal, or 401 (problem+json, WWW-Authenticate)."""
    g._login_user = Anonymous()
    plain = presented_token()
    if plain is None:
        raise Unauthorized("missing")
    token, reason = usable_token(db.session, plain)
    if reason:
        raise Unauthorized(reason)
    if needs_touch(token):
        g.api_token_touch = token.id
    principal = TokenPrincipal(token)
    g.api_token = token
    g._login_user = principal


def record_use(response):
    """After the view (committed or rolled back): the token's last use, in its own short
    transaction — at most once a minute per token."""
    token_id = g.pop("api_token_touch", None)
    if token_id is not None:
        db.session.rollback()
        touch(db.session, token_id)
        db.session.commit()
    return response


def unauthorized(error: Unauthorized):
    error_code = "invalid_request" if error.reason == "missing" else "invalid_token"
    return problem(401, str(_REFUSALS[error.reason]),
                   headers=[("WWW-Authenticate", f'Bearer realm="portal", error="{error_code}"')])


def requires(*rights: str):
    """`@requires("customers.read")`: 403 unless the token (within its operator) has them all."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            principal = g._login_user
            missing = [r for r in rights if not principal.has_right(r)]
            if missing:
                abort(403, _("This token lacks the right: %(rights)s.", rights=", ".join(missing)))
            return view(*args, **kwargs)

        wrapped.required_rights = rights
        return wrapped

    return decorator


def api_actor() -> Actor:
    """The token's operator as the actor of a change; the audit entry names the token."""
    token = g.api_token
    return Actor.operator(token.operator, ip=request.remote_addr, request_id=g.get("request_id"),
                          via=via(token))
