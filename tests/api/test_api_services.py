"""/api/v1/services: the list with the staff list's filters, a service, its history, an order,
and each lifecycle step through the same rules as the staff action form (refusals as 422
naming the field, the audit entry naming the token, Idempotency-Key retries)."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from portal.models import AuditEntry, CustomerService, PriceChange, ServiceEvent, ServiceState
from tests.api.conftest import problem_fields
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)

TODAY = date.today()


def _service(state=ServiceState.ACTIVE, customer=None, definition=None, **kw):
    if state == ServiceState.ORDERED:
        kw.update(activated_on=None, billing_from=None)
    return CustomerServiceFactory(state=state, customer=customer or CustomerFactory(),
                                  definition=definition or ServiceDefinitionFactory(), **kw)


def _audit(db, service_id, action) -> list[AuditEntry]:
    return db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "customer_service",
                                               AuditEntry.entity_id == service_id,
                                               AuditEntry.action == action)).all()


def _events(db, service_id) -> list[ServiceEvent]:
    return db.scalars(select(ServiceEvent).where(ServiceEvent.customer_service_id == service_id)).all()


# -- reads -------------------------------------------------------------------------------------


def test_list_filters_as_the_staff_list(db, api):
    fibre = ServiceDefinitionFactory(name="Fibre")
    here = LocationFactory()
    zeleny = CustomerFactory(last_name="Zelený", name_key="zeleny", location=here)
    a = _service(customer=zeleny, definition=fibre)
    b = _service(ServiceState.BLOCKED)
    c = _service(ServiceState.ORDERED, customer=zeleny)
    db.commit()

    def ids(query):
        response = api.get("/api/v1/services" + query)
        assert response.status_code == 200, response.get_json()
        return [s["id"] for s in response.get_json()["data"]]

    assert ids("") == [a.id, b.id, c.id]
    assert ids("?state=blocked") == [b.id]
    assert ids(f"?definition_id={fibre.id}") == [a.id]
    assert ids(f"?location_id={here.id}") == [a.id, c.id]
    assert ids(f"?customer_id={zeleny.id}") == [a.id, c.id]
    assert ids("?q=zelen") == [a.id, c.id]
    assert ids(f"?q={zeleny.customer_number}&state=ordered") == [c.id]
    first = api.get("/api/v1/services?limit=2").get_json()
    rest = api.get(f"/api/v1/services?limit=2&cursor={first['next_cursor']}").get_json()
    assert [s["id"] for s in first["data"] + rest["data"]] == [a.id, b.id, c.id] and rest["next_cursor"] is None
    for query, field in (("?state=sleeping", "state"), ("?definition_id=0", "definition_id"),
                         ("?limit=501", "limit"), ("?cursor=%%", "cursor")):
        response = api.get("/api/v1/services" + query)
        assert response.status_code == 422 and problem_fields(response) == {field}, query


def test_get_shows_state_definition_price_dates_and_pending_steps(db, api):
    definition = ServiceDefinitionFactory(code="FIB1", name="Fibre", price=Decimal("605.00"))
    db.add(PriceChange(definition=definition, new_price=Decimal("650.00"), effective_from=TODAY - timedelta(days=1)))
    s = _service(definition=definition, commitment_until=date(2026, 1, 1))
    db.commit()
    assert api.post(f"/api/v1/services/{s.id}/block",
                    json={"reason": "Planned", "effective_on": (TODAY + timedelta(days=5)).isoformat()}).status_code == 200
    body = api.get(f"/api/v1/services/{s.id}").get_json()
    assert body["state"] == "active" and body["customer_id"] == s.customer_id
    assert body["definition"] == {"id": definition.id, "code": "FIB1", "name": "Fibre"}
    assert body["price"] == "650.0000" and body["price_override"] is None
    assert body["ordered_on"] == "2024-01-01" and body["billing_from"] == "2024-01-01"
    assert body["commitment_until"] == "2026-01-01" and body["billing_to"] is None
    assert body["allowed_actions"] == ["block", "change-plan", "cancel"]
    [pending] = body["pending"]
    assert pending["kind"] == "blocked" and pending["scheduled_for"] == (TODAY + timedelta(days=5)).isoformat()
    assert pending["done_at"] is None and pending["reason"] == "Planned"


def test_history_lists_the_services_events(db, api):
    s = _service()
    other = _service()
    db.commit()
    api.post(f"/api/v1/services/{s.id}/block", json={"reason": "Fault"})
    api.post(f"/api/v1/services/{s.id}/unblock", json={"reason": "Fixed"})
    api.post(f"/api/v1/services/{other.id}/block", json={"reason": "Other"})
    body = api.get(f"/api/v1/services/{s.id}/history").get_json()
    assert [(e["kind"], e["reason"], e["service_id"]) for e in body["data"]] == [
        ("blocked", "Fault", s.id), ("unblocked", "Fixed", s.id)]
    assert body["data"][0]["from_state"] == "active" and body["data"][0]["to_state"] == "blocked"
    assert body["data"][0]["actor_type"] == "operator"
    page = api.get(f"/api/v1/services/{s.id}/history?limit=1").get_json()
    assert len(page["data"]) == 1 and page["next_cursor"]


def test_unknown_and_other_location_services_are_404(db, operator, make_token, make_api, api):
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = _service(customer=CustomerFactory(location=here)), _service(customer=CustomerFactory(location=there))
    db.commit()
    assert api.get("/api/v1/services/999999").status_code == 404
    assert api.get("/api/v1/services/999999/history").status_code == 404
    assert api.post("/api/v1/services/999999/block", json={"reason": "x"}).status_code == 404
    local = make_api(make_token(operator, locations=[here]))
    assert [s["id"] for s in local.get("/api/v1/services").get_json()["data"]] == [mine.id]
    for response in (local.get(f"/api/v1/services/{theirs.id}"), local.get(f"/api/v1/services/{theirs.id}/history"),
                     local.post(f"/api/v1/services/{theirs.id}/block", json={"reason": "x"}),
                     local.post(f"/api/v1/customers/{theirs.customer_id}/services",
                                json={"definition_id": theirs.definition_id})):
        assert response.status_code == 404
    assert _events(db, theirs.id) == []


def test_rights_as_the_staff_pages(db, make_token, make_api):
    s = _service()
    db.commit()
    reader = make_api(make_token(OperatorFactory(rights=("customers.read",))))
    assert reader.get(f"/api/v1/services/{s.id}").status_code == 200
    assert reader.get(f"/api/v1/services/{s.id}/history").status_code == 200
    for slug in ("activate", "block", "unblock", "cancel"):
        assert reader.post(f"/api/v1/services/{s.id}/{slug}", json={"reason": "x"}).status_code == 403
    assert reader.post(f"/api/v1/services/{s.id}/change-plan", json={"reason": "x", "target_id": 1}).status_code == 403
    assert reader.post(f"/api/v1/customers/{s.customer_id}/services",
                       json={"definition_id": s.definition_id}).status_code == 403
    stepper = make_api(make_token(OperatorFactory(rights=("services.lifecycle",))))
    assert stepper.get("/api/v1/services").status_code == 403
    assert _events(db, s.id) == []


# -- steps -------------------------------------------------------------------------------------


def test_block_now_returns_the_new_state_and_audits_via_the_token(db, api):
    s = _service()
    db.commit()
    response = api.post(f"/api/v1/services/{s.id}/block", json={"reason": "Line fault"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "blocked" and response.get_json()["allowed_actions"] == [
        "unblock", "change-plan", "cancel"]
    [entry] = _audit(db, s.id, "service.blocked")
    assert entry.changes["reason"] == "Line fault" and entry.via.startswith("API token ")


def test_unblock_with_credit_and_activate_on_a_date(db, api):
    blocked, ordered = _service(ServiceState.BLOCKED), _service(ServiceState.ORDERED)
    db.commit()
    response = api.post(f"/api/v1/services/{blocked.id}/unblock", json={"reason": "Paid", "credit_blocked_days": True})
    assert response.status_code == 200 and response.get_json()["state"] == "active"
    response = api.post(f"/api/v1/services/{ordered.id}/activate",
                        json={"reason": "Installed", "effective_on": TODAY.isoformat()})
    body = response.get_json()
    assert response.status_code == 200 and body["state"] == "active" and body["billing_from"] == TODAY.isoformat()
    assert _audit(db, ordered.id, "service.activated")


def test_future_date_schedules_the_step(db, api):
    s = _service()
    db.commit()
    on = (TODAY + timedelta(days=40)).isoformat()
    response = api.post(f"/api/v1/services/{s.id}/cancel", json={"reason": "Moving abroad", "effective_on": on})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "active" and [e["kind"] for e in body["pending"]] == ["cancelled"]
    assert body["pending"][0]["scheduled_for"] == on
    assert _audit(db, s.id, "service.cancel_requested") and _audit(db, s.id, "service.cancelled_scheduled")


def test_cancel_before_the_notice_period_is_refused_unless_waived(db, api):
    s = _service()
    db.commit()
    body = {"reason": "Unhappy", "effective_on": TODAY.isoformat()}
    response = api.post(f"/api/v1/services/{s.id}/cancel", json=body)
    assert response.status_code == 422 and problem_fields(response) == {"effective_on"}
    assert "earliest possible end date" in response.get_json()["detail"]
    assert _events(db, s.id) == []
    response = api.post(f"/api/v1/services/{s.id}/cancel", json={**body, "waive_notice": True})
    assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
    assert response.get_json()["billing_to"] == TODAY.isoformat()


def test_a_step_the_state_does_not_allow_is_422(db, api):
    s = _service(ServiceState.CANCELLED, cancelled_on=TODAY, billing_to=TODAY)
    db.commit()
    for slug in ("activate", "block", "unblock", "cancel"):
        response = api.post(f"/api/v1/services/{s.id}/{slug}", json={"reason": "Try"})
        assert response.status_code == 422, slug
        assert "cancelled" in response.get_json()["detail"]
    assert _events(db, s.id) == []


def test_bad_bodies_name_the_field(db, api):
    s = _service()
    db.commit()
    far = date(TODAY.year + 30, 1, 1).isoformat()
    for slug, body, field in (("block", {}, "reason"), ("block", {"reason": "   "}, "reason"),
                              ("block", {"reason": "x" * 2001}, "reason"),
                              ("block", {"reason": "x", "effective_on": "tomorrow"}, "effective_on"),
                              ("block", {"reason": "x", "effective_on": far}, "effective_on"),
                              ("block", {"reason": "x", "waive_notice": True}, "waive_notice"),
                              ("unblock", {"reason": "x", "credit_blocked_days": "maybe"}, "credit_blocked_days"),
                              ("change-plan", {"reason": "x"}, "target_id"),
                              ("change-plan", {"reason": "x", "target_id": "1"}, "target_id")):
        response = api.post(f"/api/v1/services/{s.id}/{slug}", json=body)
        assert response.status_code == 422, (slug, body)
        assert problem_fields(response) == {field}, (slug, body)
    assert _events(db, s.id) == []


def test_change_plan_only_to_allowed_targets(db, api):
    target, other = ServiceDefinitionFactory(name="Giga"), ServiceDefinitionFactory(name="Other")
    definition = ServiceDefinitionFactory(name="Mega")
    definition.allowed_targets = [target]
    s = _service(definition=definition)
    db.commit()
    response = api.post(f"/api/v1/services/{s.id}/change-plan", json={"reason": "Upgrade", "target_id": other.id})
    assert response.status_code == 422 and problem_fields(response) == {"target_id"}
    response = api.post(f"/api/v1/services/{s.id}/change-plan",
                        json={"reason": "Upgrade", "target_id": target.id, "effective_on": "2024-01-01"})
    assert response.status_code == 422 and problem_fields(response) == {"effective_on"}
    assert db.query(CustomerService).count() == 1
    response = api.post(f"/api/v1/services/{s.id}/change-plan", json={"reason": "Upgrade", "target_id": target.id})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == s.id and body["replaced_by_id"] is not None
    successor = db.get(CustomerService, body["replaced_by_id"])
    assert successor.definition_id == target.id
    entries = _audit(db, s.id, "service.change_scheduled") or _audit(db, s.id, "service.changed")
    assert entries and entries[0].via.startswith("API token ")


def test_step_idempotency_key_replays_the_first_answer(db, api):
    s = _service()
    db.commit()
    headers = {"Idempotency-Key": "block-1"}
    first = api.post(f"/api/v1/services/{s.id}/block", json={"reason": "Fault"}, headers=headers)
    again = api.post(f"/api/v1/services/{s.id}/block", json={"reason": "Fault"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert len(_events(db, s.id)) == 1
    # Without the key the same step again is refused by the rules (the service is blocked).
    assert api.post(f"/api/v1/services/{s.id}/block", json={"reason": "Fault"}).status_code == 422


# -- order -------------------------------------------------------------------------------------


def test_order_a_service(db, api):
    customer = CustomerFactory()
    definition = ServiceDefinitionFactory(name="Fibre 500")
    db.commit()
    response = api.post(f"/api/v1/customers/{customer.id}/services", json={
        "definition_id": definition.id, "price_override": "450.5", "installation_street": "Lipová 3",
        "installation_city": "Brno", "reason": "Phone order"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["state"] == "ordered" and body["ordered_on"] == TODAY.isoformat()
    assert body["price_override"] == "450.5000" and body["price"] == "450.5000"
    assert body["customer_id"] == customer.id and body["allowed_actions"] == ["activate", "cancel"]
    assert response.headers["Location"] == f"/api/v1/services/{body['id']}"
    [entry] = _audit(db, body["id"], "service.ordered")
    assert entry.customer_id == customer.id and entry.via.startswith("API token ")


def test_order_refusals_name_the_field(db, api):
    customer = CustomerFactory()
    definition, old = ServiceDefinitionFactory(), ServiceDefinitionFactory(active=False)
    future = ServiceDefinitionFactory(valid_from=TODAY + timedelta(days=10))
    db.commit()
    url = f"/api/v1/customers/{customer.id}/services"
    for body, field in (({}, "definition_id"), ({"definition_id": 999999}, "definition_id"),
                        ({"definition_id": old.id}, "definition_id"),
                        ({"definition_id": future.id}, "definition_id"),
                        ({"definition_id": definition.id, "price_override": "-1"}, "price_override"),
                        ({"definition_id": definition.id, "price_override": "NaN"}, "price_override"),
                        ({"definition_id": definition.id, "price_override": "123456789012"}, "price_override"),
                        ({"definition_id": definition.id, "variable_symbol": "12ab"}, "variable_symbol"),
                        ({"definition_id": definition.id, "ordered_on": "1900-01-01"}, "ordered_on"),
                        ({"definition_id": definition.id, "colour": "red"}, "colour")):
        response = api.post(url, json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, body
    assert api.post("/api/v1/customers/999999/services", json={"definition_id": definition.id}).status_code == 404
    assert db.query(CustomerService).count() == 0


def test_order_idempotency_key_replays(db, api):
    customer = CustomerFactory()
    definition = ServiceDefinitionFactory()
    db.commit()
    url, body = f"/api/v1/customers/{customer.id}/services", {"definition_id": definition.id}
    first = api.post(url, json=body, headers={"Idempotency-Key": "order-1"})
    again = api.post(url, json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"]
    assert db.query(CustomerService).count() == 1


def test_list_costs_bounded_statements(db, api, count_queries):
    for _ in range(12):
        s = _service()
        db.add(PriceChange(definition=s.definition, new_price=Decimal("1"), effective_from=date(2030, 1, 1)))
    db.commit()
    api.get("/api/v1/services?limit=2")
    with count_queries() as small:
        api.get("/api/v1/services?limit=2")
    with count_queries() as large:
        api.get("/api/v1/services?limit=12")
    assert large.count == small.count
