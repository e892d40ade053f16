"""Requests from selfcare: the new-request form per kind, the conversation, replies."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.models import AuditEntry, CustomerRequest, RequestComment, RequestKind, RequestState
from tests.selfcare.conftest import field_error, make_request, text


def _count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def test_requests_page_lists_and_offers_the_form(customer_client, mine):
    resp = customer_client.get("/requests")
    assert resp.status_code == 200
    html = text(resp)
    assert mine.request.subject in html
    assert 'name="kind"' in html and 'name="subject"' in html and 'name="message"' in html
    assert "Internet 1000" in html  # the allowed plan target is offered


def test_question_is_created_with_its_first_comment_and_audited(customer_client, mine, db):
    resp = customer_client.post("/requests", data={"kind": "question", "subject": "Invoice address",
                                                   "message": "Where do I change it?"})
    assert resp.status_code == 302
    created = db.scalar(select(CustomerRequest).where(CustomerRequest.subject == "Invoice address"))
    assert created.customer_id == mine.customer.id and created.state == RequestState.NEW
    assert resp.headers["Location"].endswith(f"/requests/{created.id}")
    assert [c.body for c in created.comments] == ["Where do I change it?"]
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "request.created",
                                              AuditEntry.entity_id == created.id)).customer_id == mine.customer.id
    page = text(customer_client.get(resp.headers["Location"]))
    assert "Where do I change it?" in page and "Your request has been sent" in page


def test_plan_change_to_an_allowed_target(customer_client, mine, db):
    resp = customer_client.post("/requests", data={
        "kind": "plan_change", "subject": "Faster please", "message": "1000 please",
        "service_id": str(mine.service.id), "target_definition_id": str(mine.target.id)})
    assert resp.status_code == 302
    created = db.scalar(select(CustomerRequest).where(CustomerRequest.kind == RequestKind.PLAN_CHANGE))
    assert created.customer_service_id == mine.service.id
    assert created.payload["target_definition_id"] == mine.target.id


def test_plan_change_to_a_not_allowed_target_is_refused_next_to_the_field(customer_client, mine, db):
    before = (_count(db, CustomerRequest), _count(db, RequestComment))
    resp = customer_client.post("/requests", data={
        "kind": "plan_change", "subject": "Faster", "message": "x",
        "service_id": str(mine.service.id), "target_definition_id": str(mine.service.definition_id)})
    assert resp.status_code == 422
    assert "Choose one of the plans offered" in field_error(text(resp), "target_definition_id")
    assert (_count(db, CustomerRequest), _count(db, RequestComment)) == before


def test_cancellation_needs_a_service(customer_client, mine, db):
    before = _count(db, CustomerRequest)
    resp = customer_client.post("/requests", data={"kind": "cancellation", "subject": "Bye", "message": "Cancel it"})
    assert resp.status_code == 422
    assert field_error(text(resp), "service_id") == "Choose the service."
    assert _count(db, CustomerRequest) == before
    ok = customer_client.post("/requests", data={"kind": "cancellation", "subject": "Bye", "message": "Cancel it",
                                                 "service_id": str(mine.service.id)})
    assert ok.status_code == 302


def test_move_needs_the_new_address(customer_client, mine, db):
    resp = customer_client.post("/requests", data={"kind": "move", "subject": "Moving", "message": "New flat",
                                                   "service_id": str(mine.service.id), "new_street": "Nová 1"})
    assert resp.status_code == 422
    assert field_error(text(resp), "new_city") == "Enter the city."
    ok = customer_client.post("/requests", data={"kind": "move", "subject": "Moving", "message": "New flat",
                                                 "service_id": str(mine.service.id), "new_street": "Nová 1",
                                                 "new_city": "Praha", "new_postal_code": "110 00"})
    assert ok.status_code == 302
    created = db.scalar(select(CustomerRequest).where(CustomerRequest.kind == RequestKind.MOVE))
    assert created.payload["new_address"] == {"street": "Nová 1", "city": "Praha", "postal_code": "110 00"}


def test_missing_subject_and_message(customer_client, mine, db):
    resp = customer_client.post("/requests", data={"kind": "question", "subject": "", "message": ""})
    assert resp.status_code == 422
    html = text(resp)
    assert field_error(html, "subject") == "Enter a subject."
    assert field_error(html, "message") == "Write your message."
    # HTMX gets the form only, also with 422.
    resp = customer_client.htmx("POST", "/requests", data={"kind": "question", "subject": "", "message": ""})
    assert resp.status_code == 422
    assert "<html" not in text(resp) and field_error(text(resp), "subject")


def test_conversation_hides_internal_notes(customer_client, mine):
    html = text(customer_client.get(f"/requests/{mine.request.id}"))
    assert "It is slow after 8 pm." in html
    assert "Could you tell us your router model?" in html
    assert "STAFF-ONLY" not in html


def test_answer_moves_waiting_request_back_to_in_progress(customer_client, mine, db):
    assert mine.request.state == RequestState.WAITING_FOR_CUSTOMER
    resp = customer_client.post(f"/requests/{mine.request.id}/comments", data={"body": "A TP-Link."})
    assert resp.status_code == 302
    db.expire_all()
    req = db.get(CustomerRequest, mine.request.id)
    assert req.state == RequestState.IN_PROGRESS
    assert req.comments[-1].body == "A TP-Link." and req.comments[-1].internal is False
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "request.commented"))
    assert entry.changes["state"] == ["waiting_for_customer", "in_progress"]


def test_empty_reply_and_closed_request(customer_client, mine, db):
    before = _count(db, RequestComment)
    resp = customer_client.post(f"/requests/{mine.request.id}/comments", data={"body": "  "})
    assert resp.status_code == 422
    assert field_error(text(resp), "body") == "Write your message."
    closed = make_request(mine.customer, state=RequestState.CLOSED)
    db.commit()
    before = _count(db, RequestComment)
    resp = customer_client.post(f"/requests/{closed.id}/comments", data={"body": "Hello?"})
    assert resp.status_code == 422
    assert "This request is closed" in text(resp)
    assert _count(db, RequestComment) == before
