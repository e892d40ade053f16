"""The audit log is written by the rule that made the change, in the same transaction; so is
the webhook event the change announces (portal/domain/events.py), if any."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from portal.domain import events
from portal.domain.actors import Actor
from portal.models import AuditEntry
from portal.models.base import utcnow


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{"field": [before, after]} for the fields that changed."""
    return {k: [_plain(before.get(k)), _plain(after.get(k))] for k in after if before.get(k) != after.get(k)}


def snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}


def record(session: Session, actor: Actor, action: str, entity_type: str, entity_id: int | None,
           changes: dict | None = None, customer_id: int | None = None) -> AuditEntry:
    entry = AuditEntry(
        at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name[:200],
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        customer_id=customer_id,
        changes=_plain(changes or {}),
        ip=actor.ip,
        request_id=actor.request_id,
        via=actor.via,
    )
    session.add(entry)
    events.from_audit(session, action, entity_type, entity_id, customer_id, entry.changes)
    return entry
