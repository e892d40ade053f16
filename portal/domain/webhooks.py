"""Webhook endpoints as staff manage them (right `integrations.admin`): subscribe an HTTPS URL
to event types, rotate its secret, delete it, replay a delivery. Every change is audited;
a secret never is (it is shown once, to the operator who made it)."""
from __future__ import annotations

import ipaddress
from datetime import timedelta
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import delete
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.events import EVENT_TYPES
from portal.integrations.webhooks import ROTATION_GRACE, new_secret
from portal.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from portal.models.base import utcnow

REPLAY_RETRIES_FOR = timedelta(days=1)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_http_loopback: bool = False) -> str:
    """An absolute https:// URL with a host, no credentials in it; http:// only to a loopback
    address and only where allowed (WEBHOOKS_ALLOW_HTTP_LOOPBACK). Returns it stripped."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a port that is not a number
    except ValueError as exc:
        raise DomainError(_("This is not a valid URL."), field="url") from exc
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise DomainError(_("Give a full address starting with https://."), field="url")
    if parts.username or parts.password:
        raise DomainError(_("The address must not contain a user name or password."), field="url")
    if parts.scheme == "http" and not (allow_http_loopback and _is_loopback(parts.hostname)):
        raise DomainError(_("Webhooks are sent over HTTPS only: the address must start with https://."),
                          field="url")
    if len(url) > 500:
        raise DomainError(_("The address is longer than 500 characters."), field="url")
    return url


def _check_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise DomainError(_("Unknown event types: %(types)s.", types=", ".join(unknown)), field="event_types")
    if not event_types:
        raise DomainError(_("Choose at least one event type."), field="event_types")
    return [t for t in EVENT_TYPES if t in set(event_types)]


def _values(endpoint: WebhookEndpoint) -> dict:
    return {"url": endpoint.url, "description": endpoint.description, "event_types": list(endpoint.event_types),
            "active": endpoint.active}


def create_endpoint(session: Session, actor: Actor, *, url: str, description: str, event_types: list[str],
                    active: bool = True, allow_http_loopback: bool = False) -> WebhookEndpoint:
    """A new endpoint with a fresh secret (the caller shows `endpoint.secret` once)."""
    endpoint = WebhookEndpoint(url=check_url(url, allow_http_loopback=allow_http_loopback),
                               description=(description or "").strip()[:200], event_types=_check_types(event_types),
                               active=active, secret=new_secret(), created_by_id=actor.id if actor.type == "operator"
                               else None)
    session.add(endpoint)
    session.flush()
    record(session, actor, "webhook_endpoint.created", "webhook_endpoint", endpoint.id,
           {k: [None, v] for k, v in _values(endpoint).items()})
    return endpoint


def update_endpoint(session: Session, actor: Actor, endpoint: WebhookEndpoint, *, url: str, description: str,
                    event_types: list[str], active: bool, allow_http_loopback: bool = False) -> dict:
    """Change the address, description, event types or active flag; returns the changes."""
    before = _values(endpoint)
    endpoint.url = check_url(url, allow_http_loopback=allow_http_loopback)
    endpoint.description = (description or "").strip()[:200]
    endpoint.event_types = _check_types(event_types)
    endpoint.active = active
    after = _values(endpoint)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        session.flush()
        record(session, actor, "webhook_endpoint.updated", "webhook_endpoint", endpoint.id, changes)
    return changes


def rotate_secret(session: Session, actor: Actor, endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one still signs (a second signature) for ROTATION_GRACE, so the
    receiver can switch in its own time. Returns the new secret, to be shown once."""
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + ROTATION_GRACE
    endpoint.secret = new_secret()
    session.flush()
    record(session, actor, "webhook_endpoint.secret_rotated", "webhook_endpoint", endpoint.id,
           {"previous_secret_until": [None, endpoint.previous_secret_until]})
    return endpoint.secret


def delete_endpoint(session: Session, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its deliveries go; the events stay for the other endpoints."""
    record(session, actor, "webhook_endpoint.deleted", "webhook_endpoint", endpoint.id,
           {k: [v, None] for k, v in _values(endpoint).items()})
    # Not left to ON DELETE CASCADE: SQLite enforces it only with its foreign keys switched on.
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()


def replay_delivery(session: Session, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery again at the next pass, with a day of retries from now (same
    webhook-id, so a receiver that has it already can tell)."""
    now = utcnow()
    before = delivery.state
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now
    delivery.give_up_at = now + REPLAY_RETRIES_FOR
    delivery.delivered_at = None
    session.flush()
    record(session, actor, "webhook_delivery.replayed", "webhook_delivery", delivery.id,
           {"state": [before, DeliveryState.PENDING], "endpoint_id": delivery.endpoint_id,
            "event_id": delivery.event_id})
    return delivery
