"""Events for webhooks: written to the outbox (`webhook_event`) by the rule that made the
change, in its transaction — a change rolled back announces nothing, a committed one is
never lost. Emitting is one INSERT and nothing else: which endpoints want the event, signing
and sending are the delivery job's (portal/integrations/webhooks.py), so a slow or dead
endpoint never slows a page or a billing run.

Every change a rule makes is already recorded in the audit log, so the audit entry is where
events are emitted (`portal.domain.audit.record` calls `from_audit`): the actions below become
event types without any rule knowing about webhooks. The billing run inserts its invoices in
bulk without an audit entry each, and emits `invoice.issued` in bulk the same way.

The payload is thin — what happened to which object — and a receiver that needs more asks
the API: {"type", "timestamp", "data": {"id", "object", "customer_id", "changes"}}. Events
about a customer's personal data (customer.*, request.*) name the changed fields only, and
no payload carries an e-mail address or text somebody typed (a reason, a note)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from portal.models import WebhookEvent
from portal.models.base import utcnow

# Audit action → event type.
AUDIT_EVENTS: dict[str, str] = {
    "service.ordered": "service.ordered",
    "service.activated": "service.activated",
    "service.blocked": "service.blocked",
    "service.unblocked": "service.unblocked",
    "service.changed": "service.changed",
    "service.cancelled": "service.cancelled",
    "invoice.credit_note_issued": "credit_note.issued",
    "invoice.cancelled": "invoice.cancelled",
    "payment.recorded": "payment.received",
    "payment.paired": "payment.paired",
    "payment.allocated": "payment.paired",
    "payment.customer_assigned": "payment.paired",
    "payment.unpaired": "payment.unpaired",
    "payment.reversed": "payment.reversed",
    "dunning.reminder_issued": "reminder.issued",
    "agreement.issued": "agreement.issued",
    "agreement.accepted": "agreement.accepted",
    "customer.created": "customer.created",
    "customer.updated": "customer.updated",
    "request.created": "request.created",
}
INVOICE_ISSUED = "invoice.issued"
# Every provisioning outbox row (portal.domain.network.provision): for networks driven by other
# means than the portal's drivers. The payload has the desired state, never the password.
NETWORK_CHANGED = "network.changed"

# Every type an endpoint can subscribe to, in the order the form lists them.
EVENT_TYPES: tuple[str, ...] = tuple(sorted({*AUDIT_EVENTS.values(), INVOICE_ISSUED, NETWORK_CHANGED}))

# Their payload says which fields changed, not what they hold (personal data).
_FIELDS_ONLY = ("customer.", "request.")
# Left out of every payload: addresses and free text people typed (the audit log keeps them).
_PRIVATE = frozenset({"emailed_to", "to", "email", "user_agent", "login_id", "note", "reason", "message",
                      "counterparty_name", "counterparty_account"})


def payload(event_type: str, at: datetime, object_type: str, object_id: int | None,
            customer_id: int | None, changes: dict | None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": object_id, "object": object_type, "customer_id": customer_id}
    if changes:
        if event_type.startswith(_FIELDS_ONLY):
            data["fields"] = sorted(changes)
        else:
            data["changes"] = {k: v for k, v in changes.items() if k not in _PRIVATE}
    return {"type": event_type, "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "data": data}


def emit(session: Session, event_type: str, object_type: str, object_id: int | None, *,
         customer_id: int | None = None, changes: dict | None = None) -> WebhookEvent:
    """Announce a change: one row in the outbox, inserted with the change (`changes` JSON-plain)."""
    at = utcnow()
    event = WebhookEvent(type=event_type, subject=f"{object_type}:{object_id}", created_at=at,
                         payload=payload(event_type, at, object_type, object_id, customer_id, changes))
    session.add(event)
    return event


def from_audit(session: Session, action: str, entity_type: str, entity_id: int | None,
               customer_id: int | None, changes: dict) -> WebhookEvent | None:
    """The event an audited action announces, if it announces one."""
    event_type = AUDIT_EVENTS.get(action)
    if event_type is None:
        return None
    return emit(session, event_type, entity_type, entity_id, customer_id=customer_id, changes=changes)


def invoices_issued(session: Session, invoices: Iterable[tuple[int, int, str]]) -> None:
    """`invoice.issued` for (invoice id, customer id, number) of a billing run's batch: one
    multi-row INSERT with the batch's own."""
    at = utcnow()
    rows = [{"type": INVOICE_ISSUED, "subject": f"invoice:{invoice_id}", "created_at": at,
             "payload": payload(INVOICE_ISSUED, at, "invoice", invoice_id, customer_id,
                                {"state": [None, "issued"], "number": [None, number]})}
            for invoice_id, customer_id, number in invoices]
    if rows:
        session.execute(insert(WebhookEvent.__table__), rows)
