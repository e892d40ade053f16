"""/api/v1/requests: the staff queue's filters, get, the conversation, and the staff steps
(comment or note, state actions, assignment, carrying out) through the same rules as the
staff pages — audit entries naming the token, e-mails to the customer, refusals as 422
naming the field, the token's locations (404 outside), the right `requests.handle`."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.models import (
    RIGHTS,
    AuditEntry,
    CustomerRequest,
    RequestComment,
    RequestKind,
    RequestState,
)
from tests.api.conftest import problem_fields
from tests.factories import (
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)
from tests.staff.test_requests import make_request


@pytest.fixture
def world(db):
    here, there = LocationFactory(), LocationFactory()
    customer = CustomerFactory(location=here, first_name="Jana", last_name="Dvořáková")
    CustomerLoginFactory(customer=customer, email="jana@example.com")
    question = make_request(db, customer, subject="Slow internet")
    other = CustomerFactory(location=there)
    theirs = make_request(db, other, subject="Elsewhere", kind=RequestKind.COMPLAINT)
    db.commit()

    class W:
        pass

    w = W()
    w.here, w.there, w.customer, w.question, w.theirs = here, there, customer, question, theirs
    return w


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [row["id"] for row in response.get_json()["data"]]


def _audit(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


# ------------------------------------------------------------------------------ reading


def test_list_open_by_default_and_filters(db, api, operator, world):
    done = make_request(db, world.customer, subject="Old", state=RequestState.CLOSED)
    mine = make_request(db, world.customer, subject="Mine", kind=RequestKind.OTHER, assignee_id=operator.id)
    db.commit()
    assert _ids(api.get("/api/v1/requests")) == [world.question.id, world.theirs.id, mine.id]
    assert _ids(api.get("/api/v1/requests?state=all")) == [world.question.id, world.theirs.id, done.id, mine.id]
    assert _ids(api.get("/api/v1/requests?state=closed")) == [done.id]
    assert _ids(api.get("/api/v1/requests?kind=complaint")) == [world.theirs.id]
    assert _ids(api.get("/api/v1/requests?assignee=me")) == [mine.id]
    assert _ids(api.get("/api/v1/requests?assignee=unassigned")) == [world.question.id, world.theirs.id]
    assert _ids(api.get(f"/api/v1/requests?customer_id={world.customer.id}")) == [world.question.id, mine.id]


def test_list_pages_by_cursor(db, api, world):
    body = api.get("/api/v1/requests?limit=1").get_json()
    assert [r["id"] for r in body["data"]] == [world.question.id] and body["next_cursor"]
    body = api.get(f"/api/v1/requests?limit=1&cursor={body['next_cursor']}").get_json()
    assert [r["id"] for r in body["data"]] == [world.theirs.id] and body["next_cursor"] is None


def test_get(api, world):
    body = api.get(f"/api/v1/requests/{world.question.id}").get_json()
    assert body["subject"] == "Slow internet" and body["kind"] == "question" and body["state"] == "new"
    assert body["customer_id"] == world.customer.id and body["customer_number"] == world.customer.customer_number
    assert body["allowed_actions"] == ["start", "wait", "resolve", "reject"] and body["can_carry_out"] is False
    assert body["created_by_type"] == "customer" and body["created_at"].endswith("+00:00")


def test_comments_include_staff_notes_marked(api, world):
    body = api.get(f"/api/v1/requests/{world.question.id}/comments").get_json()
    assert [(c["author_type"], c["internal"]) for c in body["data"]] == [("customer", False), ("operator", True)]
    notes = api.get(f"/api/v1/requests/{world.question.id}/comments?internal=true").get_json()["data"]
    assert [c["body"] for c in notes] == ["STAFF-ONLY: overloaded segment"]
    first = body["data"][0]
    one = api.get(f"/api/v1/requests/{world.question.id}/comments/{first['id']}")
    assert one.status_code == 200 and one.get_json() == first
    # A comment of another request is not under this one.
    assert api.get(f"/api/v1/requests/{world.theirs.id}/comments/{first['id']}").status_code == 404


def test_unknown_ids_are_404(api, world):
    for url in ("/api/v1/requests/999999", "/api/v1/requests/999999/comments",
                f"/api/v1/requests/{world.question.id}/comments/999999", "/api/v1/requests/99999999999"):
        response = api.get(url)
        assert response.status_code == 404, url
    assert api.post("/api/v1/requests/999999/comments", json={"body": "Hi"}).status_code == 404


def test_other_locations_are_not_there(db, operator, make_token, make_api, world):
    api = make_api(make_token(operator, locations=[world.here]))
    assert _ids(api.get("/api/v1/requests")) == [world.question.id]
    theirs = world.theirs.id
    for url in (f"/api/v1/requests/{theirs}", f"/api/v1/requests/{theirs}/comments"):
        assert api.get(url).status_code == 404, url
    for path, body in (("comments", {"body": "Hi"}), ("state", {"action": "start"}),
                       ("assign", {"assignee_id": None}), ("carry-out", {})):
        assert api.post(f"/api/v1/requests/{theirs}/{path}", json=body).status_code == 404, path
    db.expire_all()
    assert db.get(CustomerRequest, theirs).state == RequestState.NEW


def test_without_the_right_403(db, operator, make_token, make_api, world):
    api = make_api(make_token(operator, rights=[r for r in RIGHTS if r != "requests.handle"]))
    rid = world.question.id
    for method, url, body in (("GET", "/api/v1/requests", None), ("GET", f"/api/v1/requests/{rid}", None),
                              ("GET", f"/api/v1/requests/{rid}/comments", None),
                              ("POST", f"/api/v1/requests/{rid}/comments", {"body": "Hi"}),
                              ("POST", f"/api/v1/requests/{rid}/state", {"action": "start"}),
                              ("POST", f"/api/v1/requests/{rid}/assign", {"assignee_id": None}),
                              ("POST", f"/api/v1/requests/{rid}/carry-out", {})):
        response = api.open(method, url, json=body)
        assert response.status_code == 403, url
    assert db.scalar(select(AuditEntry).where(AuditEntry.entity_type == "customer_request")) is None


def test_bad_filters_are_422_with_the_field(api):
    for url, field in (("/api/v1/requests?kind=rant", "kind"), ("/api/v1/requests?state=lost", "state"),
                       ("/api/v1/requests?assignee=him", "assignee"), ("/api/v1/requests?customer_id=x", "customer_id"),
                       ("/api/v1/requests?limit=501", "limit")):
        response = api.get(url)
        assert response.status_code == 422, url
        assert problem_fields(response) == {field}, url


def test_list_costs_bounded_statements(db, api, world, count_queries):
    for n in range(20):
        make_request(db, CustomerFactory(), subject=f"R{n}", assignee_id=OperatorFactory().id)
    db.commit()
    api.get("/api/v1/requests?limit=3")
    with count_queries() as small:
        api.get("/api/v1/requests?limit=3")
    with count_queries() as large:
        api.get("/api/v1/requests?limit=20")
    assert large.count == small.count


# ------------------------------------------------------------------------------ writing


def test_comment_to_the_customer_is_emailed_and_audited(db, api, world, outbox):
    rid = world.question.id
    response = api.post(f"/api/v1/requests/{rid}/comments", json={"body": "We are looking at it."})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["body"] == "We are looking at it." and body["internal"] is False and body["author_type"] == "operator"
    assert response.headers["Location"] == f"/api/v1/requests/{rid}/comments/{body['id']}"
    assert api.get(response.headers["Location"]).get_json() == body
    db.expire_all()
    assert db.get(CustomerRequest, rid).state == RequestState.IN_PROGRESS
    [entry] = _audit(db, "request.answered")
    assert entry.entity_id == rid and entry.via.startswith("API token ")
    [mail] = outbox()
    assert mail["To"] == "jana@example.com" and "We are looking at it." in mail.text


def test_a_staff_note_is_not_emailed(db, api, world, outbox):
    rid = world.question.id
    response = api.post(f"/api/v1/requests/{rid}/comments",
                        json={"body": "Check the segment.", "internal": True})
    assert response.status_code == 201 and response.get_json()["internal"] is True
    assert outbox() == [] and len(_audit(db, "request.noted")) == 1
    db.expire_all()
    assert db.get(CustomerRequest, rid).state == RequestState.NEW


def test_comment_and_wait_for_the_customer(db, api, world):
    rid = world.question.id
    response = api.post(f"/api/v1/requests/{rid}/comments", json={"body": "Which router?", "wait_for_customer": True})
    assert response.status_code == 201
    assert api.get(f"/api/v1/requests/{rid}").get_json()["state"] == "waiting_for_customer"


def test_comment_refusals_name_the_field(db, api, world):
    rid = world.question.id
    for body, field in (({"body": "   "}, "body"), ({}, "body"), ({"body": "x" * 5001}, "body"),
                        ({"body": "Hi", "colour": "red"}, "colour"), ({"body": "Hi", "internal": "maybe"}, "internal")):
        response = api.post(f"/api/v1/requests/{rid}/comments", json=body)
        assert response.status_code == 422, body
        assert field in problem_fields(response), body
    closed = make_request(db, world.customer, state=RequestState.CLOSED)
    db.commit()
    response = api.post(f"/api/v1/requests/{closed.id}/comments", json={"body": "Hello?"})
    assert response.status_code == 422 and problem_fields(response) == {"body"}
    assert db.scalar(select(RequestComment).where(RequestComment.body == "Hello?")) is None


def test_comment_idempotency_key_replays(db, api, world, outbox):
    rid = world.question.id
    headers = {"Idempotency-Key": "answer-1"}
    first = api.post(f"/api/v1/requests/{rid}/comments", json={"body": "Once."}, headers=headers)
    again = api.post(f"/api/v1/requests/{rid}/comments", json={"body": "Once."}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(RequestComment).filter_by(body="Once.").count() == 1 and len(outbox()) == 1


def test_state_actions(db, api, world, outbox):
    rid = world.question.id
    response = api.post(f"/api/v1/requests/{rid}/state", json={"action": "start"})
    assert response.status_code == 200 and response.get_json()["state"] == "in_progress"
    response = api.post(f"/api/v1/requests/{rid}/state", json={"action": "resolve", "text": "Fixed the segment."})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "resolved" and body["payload"]["resolution"]["outcome"] == "resolved"
    assert body["allowed_actions"] == ["close", "reopen"]
    assert "Fixed the segment." in outbox()[-1].text
    entries = _audit(db, "request.state_changed") + _audit(db, "request.resolved")
    assert len(entries) == 2 and all(e.via.startswith("API token ") for e in entries)


def test_state_refusals_name_the_field(db, api, world):
    rid = world.question.id
    for body, field in (({"action": "close"}, "action"), ({"action": "resolve"}, "text"),
                        ({"action": "explode"}, "action"), ({}, "action")):
        response = api.post(f"/api/v1/requests/{rid}/state", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, body
    db.expire_all()
    assert db.get(CustomerRequest, rid).state == RequestState.NEW
    assert db.scalar(select(AuditEntry).where(AuditEntry.entity_type == "customer_request")) is None


def test_assign(db, api, operator, world):
    rid = world.question.id
    response = api.post(f"/api/v1/requests/{rid}/assign", json={"assignee_id": operator.id})
    assert response.status_code == 200 and response.get_json()["assignee_id"] == operator.id
    assert _audit(db, "request.assigned")[0].via.startswith("API token ")
    response = api.post(f"/api/v1/requests/{rid}/assign", json={"assignee_id": None})
    assert response.status_code == 200 and response.get_json()["assignee_id"] is None
    outsider = OperatorFactory(rights=("customers.read",))
    db.commit()
    for body, field in (({"assignee_id": outsider.id}, "assignee_id"), ({}, "assignee_id"),
                        ({"assignee_id": "1"}, "assignee_id")):
        response = api.post(f"/api/v1/requests/{rid}/assign", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, body


def test_carry_out_a_cancellation(db, api, world, outbox):
    service = CustomerServiceFactory(customer=world.customer)
    req = make_request(db, world.customer, kind=RequestKind.CANCELLATION, service=service,
                       payload={"requested_by": "customer"})
    db.commit()
    on = date.today() + timedelta(days=40)
    response = api.post(f"/api/v1/requests/{req.id}/carry-out", json={"on": on.isoformat(), "waive_notice": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["state"] == "resolved" and body["payload"]["carried_out"]["kind"] == "cancellation"
    assert body["can_carry_out"] is False
    assert _audit(db, "request.carried_out")[0].via.startswith("API token ")
    assert body["payload"]["carried_out"]["end_date"] == on.isoformat()


def test_carry_out_refusals(db, api, world):
    response = api.post(f"/api/v1/requests/{world.question.id}/carry-out", json={})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    target = ServiceDefinitionFactory(price=Decimal("799.00"))
    definition = ServiceDefinitionFactory(allowed_targets=[target])
    service = CustomerServiceFactory(customer=world.customer, definition=definition)
    req = make_request(db, world.customer, kind=RequestKind.PLAN_CHANGE, service=service,
                       payload={"target_definition_id": target.id})
    db.commit()
    for body, field in (({"on": (date.today() - timedelta(days=1)).isoformat()}, "on"), ({"on": "soon"}, "on"),
                        ({"message": "x" * 5001}, "message")):
        response = api.post(f"/api/v1/requests/{req.id}/carry-out", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, body
    db.expire_all()
    assert db.get(CustomerRequest, req.id).state == RequestState.NEW
