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


def _second_service(mine, db):
    from decimal import Decimal

    from tests.factories import CustomerServiceFactory, ServiceDefinitionFactory

    tv_plus = ServiceDefinitionFactory(customer_name="TV Plus", price=Decimal("300.00"))
    tv = ServiceDefinitionFactory(customer_name="TV Basic", price=Decimal("200.00"), allowed_targets=[tv_plus])
    service = CustomerServiceFactory(customer=mine.customer, definition=tv)
    db.commit()
    return service, tv_plus


def _new_plan_options(html: str) -> str:
    import re

    m = re.search(r'<select[^>]*name="target_definition_id".*?</select>', html, re.S)
    return m.group(0)


def test_new_plan_lists_only_the_chosen_services_targets(customer_client, mine, db):
    """The "New plan" list offered every plan of every service, whatever service was chosen."""
    tv, tv_plus = _second_service(mine, db)
    nothing_chosen = _new_plan_options(text(customer_client.get("/requests")))
    assert "Internet 1000" not in nothing_chosen and "TV Plus" not in nothing_chosen
    internet = _new_plan_options(text(customer_client.get(f"/requests?service_id={mine.service.id}")))
    assert "Internet 1000" in internet and "TV Plus" not in internet
    television = _new_plan_options(text(customer_client.get(f"/requests?service_id={tv.id}")))
    assert "TV Plus" in television and "Internet 1000" not in television


def test_choosing_the_service_refreshes_the_plan_list_by_htmx(customer_client, mine, db):
    tv, _tv_plus = _second_service(mine, db)
    page = text(customer_client.get("/requests"))
    assert 'hx-get="/requests"' in page and 'hx-target="#target_definition_id-field"' in page
    block = customer_client.get(f"/requests?service_id={tv.id}", headers={"HX-Request": "true"})
    assert block.status_code == 200
    html = text(block)
    assert "<html" not in html and 'id="target_definition_id-field"' in html
    assert "TV Plus" in _new_plan_options(html)


def test_another_services_plan_is_refused_next_to_the_field(customer_client, mine, db):
    _tv, tv_plus = _second_service(mine, db)
    before = _count(db, CustomerRequest)
    resp = customer_client.post("/requests", data={
        "kind": "plan_change", "subject": "Faster", "message": "x",
        "service_id": str(mine.service.id), "target_definition_id": str(tv_plus.id)})
    assert resp.status_code == 422
    html = text(resp)
    assert "Choose one of the plans offered" in field_error(html, "target_definition_id")
    # The form comes back with the plans of the service chosen.
    assert "Internet 1000" in _new_plan_options(html) and "TV Plus" not in _new_plan_options(html)
    assert _count(db, CustomerRequest) == before
