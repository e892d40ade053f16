"""Events for webhooks (portal/domain/events.py): emitted with the change, in its transaction,
as one INSERT; a rolled-back change emits nothing; the payload is thin."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.domain import events
from portal.domain import lifecycle as lc
from portal.domain import webhooks as rules
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.billing import run_billing
from portal.models import AuditEntry, Invoice, ServiceState, WebhookEvent
from tests.domain.billing_fixtures import world_fixture  # noqa: F401
from tests.domain.lifecycle_fixtures import service
from tests.factories import CustomerFactory

SYSTEM = Actor.system("test")
TODAY = date(2026, 12, 4)


def _events(db):
    return list(db.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def test_a_block_emits_service_blocked_with_a_thin_payload(db):
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="stolen router", today=TODAY)
    db.commit()
    [event] = _events(db)
    assert event.type == "service.blocked"
    assert event.subject == f"customer_service:{svc.id}"
    assert event.dispatched_at is None
    assert set(event.payload) == {"type", "timestamp", "data"}
    assert event.payload["type"] == "service.blocked"
    assert event.payload["timestamp"].endswith("Z")
    data = event.payload["data"]
    assert data["id"] == svc.id and data["object"] == "customer_service" and data["customer_id"] == svc.customer_id
    assert data["changes"]["state"] == ["active", "blocked"]


def test_emitting_is_one_insert_in_the_steps_transaction(db, count_queries):
    """The cost a service step pays for webhooks: exactly one INSERT, whatever endpoints exist."""
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    with count_queries() as q:
        lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
        db.flush()
    with_events = [s for s in q.statements if "webhook_event" in s]
    assert len(with_events) == 1 and with_events[0].lstrip().upper().startswith("INSERT")
    db.rollback()

    original = dict(events.AUDIT_EVENTS)
    events.AUDIT_EVENTS.clear()  # the same step without the event
    try:
        with count_queries() as without:
            lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
            db.flush()
    finally:
        events.AUDIT_EVENTS.update(original)
    db.rollback()
    assert q.count - without.count == 1


def test_a_rolled_back_change_emits_nothing(db):
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    db.flush()
    assert db.scalar(select(func.count()).select_from(WebhookEvent)) == 1  # inside the transaction
    db.rollback()
    assert _events(db) == []
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_actions_without_an_event_type_emit_nothing(db):
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    lc.block(db, svc, actor=SYSTEM, on=date(2027, 1, 10), reason="later", today=TODAY)  # scheduled only
    db.commit()
    assert _events(db) == []


def test_customer_events_name_the_fields_not_their_values(db):
    customer = CustomerFactory()
    db.commit()
    record(db, SYSTEM, "customer.updated", "customer", customer.id, {"first_name": ["Zdena", "Zdeňka"]},
           customer_id=customer.id)
    db.commit()
    [event] = _events(db)
    assert event.type == "customer.updated"
    assert event.payload["data"]["fields"] == ["first_name"]
    assert "changes" not in event.payload["data"] and "Zdeňka" not in str(event.payload)


def test_every_type_the_issue_names_can_be_subscribed():
    wanted = {"service.activated", "service.blocked", "service.unblocked", "service.changed", "service.cancelled",
              "invoice.issued", "credit_note.issued", "payment.received", "payment.paired", "reminder.issued",
              "agreement.accepted", "customer.created", "customer.updated", "request.created"}
    assert wanted <= set(events.EVENT_TYPES)


def test_invoices_issued_is_one_multi_row_insert(db, count_queries):
    with count_queries() as q:
        events.invoices_issued(db, [(1, 10, "FV2026-1"), (2, 11, "FV2026-2")])
    assert len(q.statements) == 1
    db.commit()
    assert [(e.type, e.subject, e.payload["data"]["changes"]["number"][1]) for e in _events(db)] == [
        ("invoice.issued", "invoice:1", "FV2026-1"), ("invoice.issued", "invoice:2", "FV2026-2")]


# --------------------------------------------------------------------- endpoint rules

@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://example.com/hook",
                                 "https://user:pw@example.com/", "https:///nohost", "https://example.com:99999/"])
def test_endpoint_urls_must_be_https(db, url):
    with pytest.raises(rules.DomainError) as err:
        rules.check_url(url, allow_http_loopback=True)
    assert err.value.field == "url"


def test_http_only_to_loopback_and_only_when_allowed():
    assert rules.check_url(" https://hooks.example.com/in ") == "https://hooks.example.com/in"
    assert rules.check_url("http://127.0.0.1:8080/in", allow_http_loopback=True)
    with pytest.raises(rules.DomainError):
        rules.check_url("http://127.0.0.1:8080/in")


def test_create_rotate_and_delete_are_audited_without_the_secret(db):
    endpoint = rules.create_endpoint(db, SYSTEM, url="https://hooks.example.com/in", description="CRM",
                                     event_types=["service.blocked", "customer.created"])
    first = endpoint.secret
    assert first.startswith("whsec_")
    new = rules.rotate_secret(db, SYSTEM, endpoint)
    assert new != first and endpoint.previous_secret == first and endpoint.previous_secret_until
    rules.delete_endpoint(db, SYSTEM, endpoint)
    db.commit()
    entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.action for e in entries] == ["webhook_endpoint.created", "webhook_endpoint.secret_rotated",
                                           "webhook_endpoint.deleted"]
    assert first not in str([e.changes for e in entries]) and new not in str([e.changes for e in entries])
    assert _events(db) == []


def test_event_types_are_checked(db):
    with pytest.raises(rules.DomainError) as err:
        rules.create_endpoint(db, SYSTEM, url="https://x.example/", description="", event_types=["nope"])
    assert err.value.field == "event_types"
    with pytest.raises(rules.DomainError):
        rules.create_endpoint(db, SYSTEM, url="https://x.example/", description="", event_types=[])


def test_a_billing_run_emits_invoice_issued_for_each_invoice(db, world):
    for _ in range(3):
        world.service()
    db.commit()
    run_billing(db, "2026-11", actor=SYSTEM, issue_date=date(2026, 12, 1))
    issued = list(db.scalars(select(Invoice).order_by(Invoice.id)))
    assert len(issued) == 3
    got = [(e.type, e.subject, e.payload["data"]["customer_id"], e.payload["data"]["changes"]["number"][1])
           for e in _events(db) if e.type == "invoice.issued"]
    assert got == [("invoice.issued", f"invoice:{i.id}", i.customer_id, i.number) for i in issued]


def test_payloads_carry_no_addresses_or_typed_text(db):
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="the customer told us he moved to Brno", today=TODAY)
    record(db, SYSTEM, "dunning.reminder_issued", "reminder", 7, {"level": [None, 1], "emailed_to": "a@example.com"},
           customer_id=svc.customer_id)
    db.commit()
    blocked, reminded = _events(db)
    assert "Brno" not in str(blocked.payload) and "reason" not in blocked.payload["data"]["changes"]
    assert reminded.type == "reminder.issued" and reminded.payload["data"]["changes"] == {"level": [None, 1]}
