"""Staff bulk steps: choose by ticks or by filter → preview (affected, skipped and why) →
dry run (nothing saved) → apply; what is applied is what was previewed, or nothing."""
from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import func, select

from portal.models import AuditEntry, CustomerService, ServiceEvent, ServiceState
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

TODAY = date.today()


def _service(state=ServiceState.ACTIVE, **kw):
    kw.setdefault("customer", CustomerFactory())
    kw.setdefault("definition", ServiceDefinitionFactory())
    return CustomerServiceFactory(state=state, **kw)


def _preview(client, *services, action="block", **params):
    query = "&".join([f"action={action}"] + [f"ids={s.id}" for s in services]
                     + [f"{k}={v}" for k, v in params.items()])
    resp = client.get(f"/staff/services/bulk?{query}")
    return resp, resp.get_data(as_text=True)


def _signature(html: str) -> str:
    return re.search(r'name="signature" value="([0-9a-f]{64})"', html).group(1)


def _states(db, *services):
    db.expire_all()
    return [db.get(CustomerService, s.id).state for s in services]


def _changes(db) -> int:
    return db.scalar(select(func.count()).select_from(ServiceEvent))


def test_preview_lists_affected_and_skipped_rows(staff_client, db):
    a, b = _service(), _service(ServiceState.BLOCKED)
    db.commit()
    resp, html = _preview(staff_client, a, b)
    assert resp.status_code == 200
    assert "1 service affected" in html and "1 skipped" in html and "The service is blocked." in html
    assert f'name="ids" value="{a.id}"' in html and f'name="ids" value="{b.id}"' in html
    assert _signature(html)
    assert _changes(db) == 0  # a preview writes nothing


def test_preview_by_filter(staff_client, db):
    loc = LocationFactory()
    a = _service(customer=CustomerFactory(location=loc))
    b = _service(customer=CustomerFactory(location=loc))
    other = _service()
    db.commit()
    resp = staff_client.get(f"/staff/services/bulk?action=block&select=filter&location={loc.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "2 services affected" in html
    assert f"/staff/services/{a.id}" in html and f"/staff/services/{b.id}" in html
    assert f"/staff/services/{other.id}" not in html
    # an empty filter would mean every service: refused
    resp = staff_client.get("/staff/services/bulk?action=block&select=filter")
    assert resp.status_code == 422 and "never applies to every service" in resp.get_data(as_text=True)


def test_preview_bad_input_is_422(staff_client, db):
    a = _service()
    db.commit()
    resp, html = _preview(staff_client, a, action="explode")
    assert resp.status_code == 422 and "Choose block, unblock or cancel." in html
    resp, html = _preview(staff_client)
    assert resp.status_code == 422 and "No services are chosen." in html
    resp, html = _preview(staff_client, a, on="2025-02-30")
    assert resp.status_code == 422 and "Not a valid date value." in html
    resp, html = _preview(staff_client, a, on="9999-12-31")
    assert resp.status_code == 422 and "Choose a date between" in html


def test_dry_run_saves_nothing_then_apply(staff_client, db):
    a, b, skipped = _service(), _service(), _service(ServiceState.CANCELLED)
    db.commit()
    _, html = _preview(staff_client, a, b, skipped)
    data = {"ids": [a.id, b.id, skipped.id], "action": "block", "on": TODAY.isoformat(), "reason": "Outage",
            "signature": _signature(html)}
    resp = staff_client.post("/staff/services/bulk", data={**data, "mode": "dry_run"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Dry run: 2 services would change" in text and "Nothing was saved." in text
    assert _states(db, a, b) == [ServiceState.ACTIVE, ServiceState.ACTIVE]
    assert _changes(db) == 0
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "services.bulk")) == 0

    resp = staff_client.post("/staff/services/bulk", data={**data, "mode": "apply"})
    assert resp.status_code == 302
    assert _states(db, a, b, skipped) == [ServiceState.BLOCKED, ServiceState.BLOCKED, ServiceState.CANCELLED]
    [summary] = db.scalars(select(AuditEntry).where(AuditEntry.action == "services.bulk")).all()
    assert summary.changes["service_ids"] == [a.id, b.id] and summary.changes["skipped_ids"] == [skipped.id]
    assert summary.actor_type.value == "operator"
    per_service = db.scalars(select(AuditEntry).where(AuditEntry.action == "service.blocked")).all()
    assert sorted(e.entity_id for e in per_service) == [a.id, b.id]


def test_apply_refuses_when_the_set_changed_since_the_preview(staff_client, db):
    a, b = _service(), _service()
    db.commit()
    _, html = _preview(staff_client, a, b)
    signature = _signature(html)
    # meanwhile someone blocks b on its own page
    assert staff_client.post(f"/staff/services/{b.id}/block", data={"reason": "single"}).status_code == 302
    events_before = _changes(db)
    resp = staff_client.post("/staff/services/bulk", data={
        "ids": [a.id, b.id], "action": "block", "on": TODAY.isoformat(), "reason": "Outage",
        "signature": signature, "mode": "apply"})
    assert resp.status_code == 409 and "changed since the preview" in resp.get_data(as_text=True)
    assert _states(db, a) == [ServiceState.ACTIVE] and _changes(db) == events_before


def test_apply_refuses_changed_parameters_or_ids(staff_client, db):
    a, b = _service(), _service()
    db.commit()
    _, html = _preview(staff_client, a)
    base = {"ids": [a.id], "action": "block", "on": TODAY.isoformat(), "reason": "Outage",
            "signature": _signature(html), "mode": "apply"}
    for tampered in ({"ids": [a.id, b.id]}, {"on": (TODAY + timedelta(days=1)).isoformat()},
                     {"signature": "f" * 64}, {"action": "cancel", "waive_notice": "y"}):
        resp = staff_client.post("/staff/services/bulk", data={**base, **tampered})
        assert resp.status_code == 409, tampered
    assert _states(db, a, b) == [ServiceState.ACTIVE, ServiceState.ACTIVE] and _changes(db) == 0


def test_apply_without_a_reason_is_422(staff_client, db):
    a = _service()
    db.commit()
    _, html = _preview(staff_client, a)
    resp = staff_client.post("/staff/services/bulk", data={
        "ids": [a.id], "action": "block", "on": TODAY.isoformat(), "reason": "", "signature": _signature(html),
        "mode": "apply"})
    assert resp.status_code == 422 and "Give a reason." in resp.get_data(as_text=True)
    assert _changes(db) == 0


def test_bulk_cancel_scheduled_in_the_future(staff_client, db):
    a = _service()
    db.commit()
    on = (TODAY + timedelta(days=45)).isoformat()
    _, html = _preview(staff_client, a, action="cancel", on=on)
    assert "scheduled for" in html
    resp = staff_client.post("/staff/services/bulk", data={
        "ids": [a.id], "action": "cancel", "on": on, "reason": "Area closed", "signature": _signature(html),
        "mode": "apply"})
    assert resp.status_code == 302
    pending = db.scalars(select(ServiceEvent).where(ServiceEvent.done_at.is_(None))).all()
    assert [(e.customer_service_id, e.kind.value, e.scheduled_for.isoformat()) for e in pending] == \
        [(a.id, "cancelled", on)]


def test_other_locations_services_are_left_out(operator_client, db):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    mine = _service(customer=CustomerFactory(location=loc_a))
    theirs = _service(customer=CustomerFactory(location=loc_b))
    db.commit()
    client = operator_client(rights=("customers.read", "services.lifecycle"), locations=[loc_a])
    resp, html = _preview(client, mine, theirs)
    assert resp.status_code == 200 and "1 service affected" in html
    assert f"/staff/services/{theirs.id}" not in html
    resp = client.post("/staff/services/bulk", data={
        "ids": [mine.id, theirs.id], "action": "block", "on": TODAY.isoformat(), "reason": "x",
        "signature": _signature(html), "mode": "apply"})
    assert resp.status_code == 302
    assert _states(db, mine, theirs) == [ServiceState.BLOCKED, ServiceState.ACTIVE]


def test_bulk_is_forbidden_without_the_right(operator_client, db):
    a = _service()
    db.commit()
    client = operator_client(rights=("customers.read",))
    assert client.get(f"/staff/services/bulk?action=block&ids={a.id}").status_code == 403
    resp = client.post("/staff/services/bulk", data={"ids": [a.id], "action": "block", "on": TODAY.isoformat(),
                                                     "reason": "x", "signature": "0" * 64, "mode": "apply"})
    assert resp.status_code == 403
    assert _changes(db) == 0
    # the list hides the bulk controls from operators who may not use them
    assert 'name="ids"' not in client.get("/staff/services").get_data(as_text=True)


def test_opening_the_bulk_page_is_not_a_validation_error(staff_client, db):
    """Opening the page (no step, no services chosen yet) is 200 with nothing refused;
    only a submitted choice is validated."""
    from tests.web.standalone import assert_standalone

    resp = staff_client.get("/staff/services/bulk")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in html
    assert "Choose services in the list first." in html and 'href="/staff/services"' in html
    assert "No services are chosen." not in html and 'role="alert"' not in html
    assert_standalone(html, "/staff/services/bulk")
    resp, html = _preview(staff_client)  # a submitted step without services is still refused
    assert resp.status_code == 422 and "No services are chosen." in html
