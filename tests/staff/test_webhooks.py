"""Staff webhook pages (portal/staff/webhooks.py): list, create (secret shown once, no-store),
edit, rotate, delete with confirmation, the endpoint's deliveries and replay; all behind
`integrations.admin`, every change audited."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.domain import webhooks as rules
from portal.domain.actors import Actor
from portal.models import AuditEntry, DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.models.base import utcnow

RIGHT = ("integrations.admin",)
SYSTEM = Actor.system("test")


def body(resp) -> str:
    return resp.get_data(as_text=True)


@pytest.fixture
def admin(operator_client):
    return operator_client(rights=RIGHT)


def _endpoint(db, url="https://hooks.example.com/in", types=("service.blocked",)):
    endpoint = rules.create_endpoint(db, SYSTEM, url=url, description="CRM", event_types=list(types))
    db.commit()
    return endpoint


def _deliveries(db, endpoint, n, state=DeliveryState.FAILED):
    now = utcnow()
    for i in range(n):
        event = WebhookEvent(type="service.blocked", subject=f"customer_service:{i}", created_at=now,
                             payload={"type": "service.blocked"}, dispatched_at=now)
        db.add(event)
        db.flush()
        db.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, subject=event.subject, state=state,
                               attempts=3, last_status_code=500, last_error="HTTP 500",
                               give_up_at=now + timedelta(days=1)))
    db.commit()


def test_without_the_right_every_page_is_forbidden(db, operator_client):
    endpoint = _endpoint(db)
    client = operator_client(rights=("customers.read", "audit.read"))
    for url in ("/staff/webhooks", "/staff/webhooks/new", f"/staff/webhooks/{endpoint.id}",
                f"/staff/webhooks/{endpoint.id}/delete"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/staff/webhooks/{endpoint.id}/rotate").status_code == 403
    assert client.post(f"/staff/webhooks/{endpoint.id}/delete").status_code == 403
    assert "/staff/webhooks" not in body(client.get("/staff/"))


def test_the_nav_shows_webhooks_with_the_right(admin):
    assert 'href="/staff/webhooks"' in body(admin.get("/staff/"))


def test_create_shows_the_secret_once_and_not_in_a_cache(db, admin):
    resp = admin.post("/staff/webhooks/new", data={"url": "https://hooks.example.com/in", "description": "CRM",
                                                   "event_types": ["service.blocked", "invoice.issued"],
                                                   "active": "y"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    endpoint = db.scalar(select(WebhookEndpoint))
    assert endpoint.secret in body(resp)
    assert endpoint.event_types == ["invoice.issued", "service.blocked"]
    assert endpoint.created_by_id == admin.operator.id
    page = body(admin.get(f"/staff/webhooks/{endpoint.id}"))
    assert endpoint.secret not in page and "hooks.example.com" in page
    assert endpoint.secret not in body(admin.get("/staff/webhooks"))
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.created"))
    assert entry.entity_id == endpoint.id and endpoint.secret not in str(entry.changes)


@pytest.mark.parametrize("url, message", [
    ("http://hooks.example.com/in", "HTTPS only"),
    ("not a url", "https://"),
    ("", "This field is required"),
])
def test_a_bad_url_is_refused_next_to_the_field(db, admin, url, message):
    resp = admin.post("/staff/webhooks/new", data={"url": url, "event_types": ["service.blocked"]})
    assert resp.status_code == 422
    assert message in body(resp) and 'id="url-error"' in body(resp)
    assert db.scalar(select(WebhookEndpoint)) is None


def test_no_event_type_is_refused(db, admin):
    resp = admin.post("/staff/webhooks/new", data={"url": "https://hooks.example.com/in"})
    assert resp.status_code == 422 and "Choose at least one event type" in body(resp)


def test_http_to_loopback_only_when_configured(app, db, admin):
    data = {"url": "http://127.0.0.1:9/in", "event_types": ["service.blocked"], "active": "y"}
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = False
    try:
        assert admin.post("/staff/webhooks/new", data=data).status_code == 422
    finally:
        app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    assert admin.post("/staff/webhooks/new", data=data).status_code == 200


def test_edit_is_saved_and_audited(db, admin):
    endpoint = _endpoint(db)
    resp = admin.post(f"/staff/webhooks/{endpoint.id}", data={
        "url": "https://hooks.example.com/v2", "description": "CRM v2",
        "event_types": ["service.blocked", "service.unblocked"]})  # active unticked
    assert resp.status_code == 302
    db.expire_all()
    assert (endpoint.url, endpoint.active, endpoint.event_types) == (
        "https://hooks.example.com/v2", False, ["service.blocked", "service.unblocked"])
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.updated"))
    assert entry.changes["active"] == [True, False] and entry.via is None


def test_edit_refusal_keeps_the_page(db, admin):
    endpoint = _endpoint(db)
    resp = admin.post(f"/staff/webhooks/{endpoint.id}", data={"url": "ftp://x", "event_types": ["service.blocked"]})
    assert resp.status_code == 422 and "https://" in body(resp)


def test_rotate_shows_the_new_secret_and_keeps_the_old_a_day(db, admin):
    endpoint = _endpoint(db)
    old = endpoint.secret
    resp = admin.post(f"/staff/webhooks/{endpoint.id}/rotate")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    db.expire_all()
    assert endpoint.secret != old and endpoint.secret in body(resp) and old not in body(resp)
    assert endpoint.previous_secret == old
    assert timedelta(hours=23) < endpoint.previous_secret_until - utcnow() <= timedelta(hours=24)
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.secret_rotated"))
    assert "Rotated" in body(admin.get(f"/staff/webhooks/{endpoint.id}"))


def test_rotate_needs_the_csrf_token(db, admin):
    endpoint = _endpoint(db)
    assert admin.post(f"/staff/webhooks/{endpoint.id}/rotate", csrf=False).status_code == 400


def test_delete_asks_first_then_deletes(db, admin):
    endpoint = _endpoint(db)
    _deliveries(db, endpoint, 2)
    page = admin.get(f"/staff/webhooks/{endpoint.id}/delete")
    assert page.status_code == 200 and "Delete the endpoint" in body(page)
    assert db.get(WebhookEndpoint, endpoint.id) is not None
    resp = admin.post(f"/staff/webhooks/{endpoint.id}/delete")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/webhooks")
    db.expire_all()
    assert db.scalar(select(WebhookEndpoint)) is None and db.scalar(select(WebhookDelivery)) is None
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.deleted"))


def test_the_endpoint_page_lists_deliveries_paginated(db, admin):
    endpoint = _endpoint(db)
    _deliveries(db, endpoint, 30)
    html = body(admin.get(f"/staff/webhooks/{endpoint.id}"))
    assert html.count("HTTP 500") == 25 and "Page 1 of 2" in html
    assert 'role="region" aria-label="Deliveries"' in html
    fragment = admin.htmx("GET", f"/staff/webhooks/{endpoint.id}?page=2")
    assert body(fragment).count("HTTP 500") == 5 and "<html" not in body(fragment)
    listing = body(admin.get("/staff/webhooks"))
    assert "hooks.example.com" in listing and ">30<" in listing  # failed count


def test_replay_makes_the_delivery_due_now(db, admin):
    endpoint = _endpoint(db)
    _deliveries(db, endpoint, 1)
    delivery = db.scalar(select(WebhookDelivery))
    resp = admin.post(f"/staff/webhooks/{endpoint.id}/deliveries/{delivery.id}/replay")
    assert resp.status_code == 302
    db.expire_all()
    assert delivery.state == DeliveryState.PENDING and delivery.next_attempt_at <= utcnow()
    assert delivery.give_up_at > utcnow() + timedelta(hours=23)
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook_delivery.replayed"))


def test_replay_of_another_endpoints_delivery_is_404(db, admin):
    endpoint, other = _endpoint(db), _endpoint(db, url="https://other.example.com/")
    _deliveries(db, endpoint, 1)
    delivery = db.scalar(select(WebhookDelivery))
    assert admin.post(f"/staff/webhooks/{other.id}/deliveries/{delivery.id}/replay").status_code == 404
    assert admin.post(f"/staff/webhooks/{endpoint.id}/deliveries/{delivery.id}/replay",
                      csrf=False).status_code == 400


def test_unknown_endpoint_is_404(admin):
    assert admin.get("/staff/webhooks/999").status_code == 404
