"""Staff requests pages: the queue (filters, HTMX, CSV, scoping, bounded queries) and one
request's page with its actions (assign, comment / note, state, resolve, carry out)."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.models import (
    ActorType,
    AuditEntry,
    CustomerRequest,
    CustomerService,
    OutboundEmail,
    RequestComment,
    RequestKind,
    RequestState,
)
from tests.factories import (
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

RIGHT = ("requests.handle",)
TODAY = date.today()


def make_request(db, customer, *, kind=RequestKind.QUESTION, state=RequestState.NEW, service=None, payload=None,
                 subject="Slow internet", assignee_id=None, note="STAFF-ONLY: overloaded segment"):
    r = CustomerRequest(customer_id=customer.id, kind=kind, subject=subject, state=state,
                        customer_service_id=service.id if service else None, payload=payload or {},
                        assignee_id=assignee_id, created_by_type=ActorType.CUSTOMER, created_by_id=customer.id)
    db.add(r)
    db.flush()
    db.add_all([
        RequestComment(request_id=r.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                       author_name=customer.display_name, body="It is slow after 8 pm.", internal=False),
        RequestComment(request_id=r.id, author_type=ActorType.OPERATOR, author_name="Eva", body=note, internal=True),
    ])
    db.flush()
    return r


def text(resp) -> str:
    return resp.get_data(as_text=True)


def field_error(html: str, field_id: str) -> str:
    m = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>', html, re.S)
    return m.group(1).strip() if m else ""


def _count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def _audit(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


@pytest.fixture
def world(db):
    """Location A with a customer (selfcare login), a service that may change plan and a new
    question; location B with its own customer and request."""
    loc_a, loc_b = LocationFactory(name="Brno"), LocationFactory(name="Praha")
    customer = CustomerFactory(location=loc_a, first_name="Jana", last_name="Dvořáková")
    CustomerLoginFactory(customer=customer, email="jana@example.com")
    target = ServiceDefinitionFactory(name="Internet 1000", customer_name="Internet 1000", price=Decimal("799.00"))
    definition = ServiceDefinitionFactory(name="Internet 300", customer_name="Internet 300", allowed_targets=[target])
    service = CustomerServiceFactory(customer=customer, definition=definition)
    question = make_request(db, customer, subject="Slow internet")
    other = CustomerFactory(location=loc_b, first_name="Petr", last_name="Cizi")
    theirs = make_request(db, other, subject="Other location request")
    db.commit()

    class W:
        pass

    w = W()
    w.loc_a, w.loc_b, w.customer, w.service, w.target = loc_a, loc_b, customer, service, target
    w.question, w.other, w.theirs = question, other, theirs
    return w


# ------------------------------------------------------------------------------------------ queue


def test_queue_lists_open_requests_of_my_locations(operator_client, world):
    client = operator_client(rights=RIGHT, locations=[world.loc_a])
    resp = client.get("/staff/requests")
    assert resp.status_code == 200
    html = text(resp)
    assert "Slow internet" in html and "Dvořáková" in html
    assert "Other location request" not in html


def test_queue_filters_by_kind_state_and_assignee(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    me = client.operator
    make_request(db, world.customer, kind=RequestKind.COMPLAINT, state=RequestState.IN_PROGRESS,
                 subject="Mine to handle", assignee_id=me.id)
    make_request(db, world.customer, state=RequestState.RESOLVED, subject="Long done")
    db.commit()
    html = text(client.get("/staff/requests?assignee=me"))
    assert "Mine to handle" in html and "Slow internet" not in html
    html = text(client.get("/staff/requests?assignee=unassigned"))
    assert "Mine to handle" not in html and "Slow internet" in html
    html = text(client.get("/staff/requests?kind=complaint"))
    assert "Mine to handle" in html and "Slow internet" not in html
    html = text(client.get("/staff/requests"))
    assert "Long done" not in html
    html = text(client.get("/staff/requests?state=resolved"))
    assert "Long done" in html and "Slow internet" not in html
    html = text(client.get("/staff/requests?state=all"))
    assert "Long done" in html and "Slow internet" in html


def test_queue_htmx_gets_the_results_only(operator_client, world):
    client = operator_client(rights=RIGHT)
    resp = client.htmx("GET", "/staff/requests?state=new")
    assert resp.status_code == 200
    html = text(resp)
    assert "<html" not in html and "Slow internet" in html and 'name="kind"' not in html


def test_queue_bad_filter_is_422(operator_client, world):
    client = operator_client(rights=RIGHT)
    resp = client.get("/staff/requests?state=bogus&kind=nope")
    assert resp.status_code == 422
    html = text(resp)
    assert field_error(html, "state") and field_error(html, "kind")
    assert "Slow internet" not in html
    assert client.htmx("GET", "/staff/requests?assignee=everyone").status_code == 422
    assert client.get("/staff/requests?page=abc").status_code == 200


def test_queue_csv_has_the_same_filters_and_scope(operator_client, world, db):
    client = operator_client(rights=RIGHT, locations=[world.loc_a])
    make_request(db, world.customer, kind=RequestKind.COMPLAINT, subject="=HYPERLINK(evil)")
    db.commit()
    resp = client.get("/staff/requests?format=csv&state=open")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    body = text(resp)
    assert body.startswith("\ufeffid,created_at,customer_number")
    assert "Slow internet" in body and "Other location request" not in body
    assert "'=HYPERLINK(evil)" in body  # not a formula in a spreadsheet
    only = text(client.get("/staff/requests?format=csv&kind=complaint"))
    assert "HYPERLINK" in only and "Slow internet" not in only


def test_queue_paginates(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    for i in range(30):
        make_request(db, world.customer, subject=f"Bulk {i:02d}")
    db.commit()
    first = text(client.get("/staff/requests"))
    assert "Page 1 of 2" in first
    second = text(client.get("/staff/requests?page=2"))
    assert "Page 2 of 2" in second


def test_queue_queries_are_bounded(operator_client, world, db, count_queries):
    client = operator_client(rights=RIGHT)
    # Two rows, one with a service and an assignee, so every kind of loader runs already.
    make_request(db, world.customer, subject="Row x", service=world.service, assignee_id=client.operator.id)
    db.commit()
    client.get("/staff/requests")  # warm up (login, session)

    def measure():
        with count_queries() as q:
            assert client.get("/staff/requests?state=all").status_code == 200
        return q.count

    few = measure()
    for i in range(20):
        c = CustomerFactory(location=world.loc_a)
        s = CustomerServiceFactory(customer=c)
        make_request(db, c, subject=f"Row {i}", service=s, assignee_id=client.operator.id)
    db.commit()
    assert measure() == few


def test_queue_forbidden_without_the_right(operator_client, world):
    client = operator_client(rights=("customers.read",))
    assert client.get("/staff/requests").status_code == 403
    assert client.get(f"/staff/requests/{world.question.id}").status_code == 403
    assert client.post(f"/staff/requests/{world.question.id}/comments",
                       data={"body": "x", "visibility": "customer"}).status_code == 403


# ------------------------------------------------------------------------------------------ detail


def test_detail_shows_the_conversation_with_marked_notes(operator_client, world):
    client = operator_client(rights=RIGHT)
    resp = client.get(f"/staff/requests/{world.question.id}")
    assert resp.status_code == 200
    html = text(resp)
    assert "It is slow after 8 pm." in html
    assert "STAFF-ONLY: overloaded segment" in html
    assert "Staff note: not shown to the customer" in html
    assert "Dvořáková" in html


def test_detail_of_another_location_is_404(operator_client, world):
    client = operator_client(rights=RIGHT, locations=[world.loc_a])
    assert client.get(f"/staff/requests/{world.theirs.id}").status_code == 404
    assert client.post(f"/staff/requests/{world.theirs.id}/comments",
                       data={"body": "hello", "visibility": "customer"}).status_code == 404
    assert client.post(f"/staff/requests/{world.theirs.id}/state", data={"action": "start"}).status_code == 404
    assert client.get("/staff/requests/999999").status_code == 404


def test_detail_queries_are_bounded(operator_client, world, db, count_queries):
    client = operator_client(rights=RIGHT)
    url = f"/staff/requests/{world.question.id}"
    client.get(url)

    def measure():
        with count_queries() as q:
            assert client.get(url).status_code == 200
        return q.count

    few = measure()
    for i in range(20):
        db.add(RequestComment(request_id=world.question.id, author_type=ActorType.OPERATOR, author_name=f"Op {i}",
                              body=f"Message {i}", internal=bool(i % 2)))
    db.commit()
    assert measure() == few


def test_comment_to_the_customer_is_emailed_and_audited(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    resp = client.post(f"/staff/requests/{world.question.id}/comments",
                       data={"body": "We replaced the line card.", "visibility": "customer"})
    assert resp.status_code == 302
    db.expire_all()
    req = db.get(CustomerRequest, world.question.id)
    assert req.state == RequestState.IN_PROGRESS
    assert req.comments[-1].body == "We replaced the line card." and req.comments[-1].internal is False
    mails = outbox()
    assert len(mails) == 1 and mails[0]["To"] == "jana@example.com"
    assert "We replaced the line card." in mails[0].text
    assert _audit(db, "request.answered")[0].actor_id == client.operator.id
    page = text(client.get(resp.headers["Location"]))
    assert "The comment is sent to the customer." in page


def test_private_note_is_not_emailed_nor_shown_in_selfcare(operator_client, world, db, outbox, make_client):
    from tests.conftest import login_customer

    client = operator_client(rights=RIGHT)
    resp = client.post(f"/staff/requests/{world.question.id}/comments",
                       data={"body": "PRIVATE: call him on Monday", "visibility": "internal"})
    assert resp.status_code == 302
    assert outbox() == [] and _count(db, OutboundEmail) == 0
    assert _audit(db, "request.noted")
    db.expire_all()
    assert db.get(CustomerRequest, world.question.id).state == RequestState.NEW
    customer = make_client()
    assert login_customer(customer, "jana@example.com").status_code == 302
    html = text(customer.get(f"/requests/{world.question.id}"))
    assert "It is slow after 8 pm." in html
    assert "PRIVATE: call him on Monday" not in html and "STAFF-ONLY" not in html


def test_comment_htmx_returns_the_conversation(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    resp = client.htmx("POST", f"/staff/requests/{world.question.id}/comments",
                       data={"body": "Noted by htmx", "visibility": "internal"})
    assert resp.status_code == 200
    html = text(resp)
    assert "<html" not in html and "Noted by htmx" in html and "The note is saved." in html
    bad = client.htmx("POST", f"/staff/requests/{world.question.id}/comments", data={"body": " ", "visibility": "internal"})
    assert bad.status_code == 422 and "<html" not in text(bad) and field_error(text(bad), "body")


def test_comment_bad_input_is_422_and_saves_nothing(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    before = _count(db, RequestComment)
    resp = client.post(f"/staff/requests/{world.question.id}/comments", data={"body": "", "visibility": "customer"})
    assert resp.status_code == 422 and field_error(text(resp), "body") == "Write the text."
    resp = client.post(f"/staff/requests/{world.question.id}/comments", data={"body": "x", "visibility": "everyone"})
    assert resp.status_code == 422 and field_error(text(resp), "visibility")
    closed = make_request(db, world.customer, state=RequestState.CLOSED)
    db.commit()
    before = _count(db, RequestComment)
    resp = client.post(f"/staff/requests/{closed.id}/comments", data={"body": "Hi", "visibility": "customer"})
    assert resp.status_code == 422 and "reopen it" in field_error(text(resp), "body")
    assert _count(db, RequestComment) == before


def test_assign_to_me_and_to_another_operator(operator_client, make_operator, world, db):
    client = operator_client(rights=RIGHT)
    colleague = make_operator(rights=RIGHT, locations=[world.loc_a])
    url = f"/staff/requests/{world.question.id}/assign"
    assert client.post(url, data={"assignee_id": str(client.operator.id)}).status_code == 302
    db.expire_all()
    assert db.get(CustomerRequest, world.question.id).assignee_id == client.operator.id
    assert client.post(url, data={"assignee_id": str(colleague.id)}).status_code == 302
    db.expire_all()
    assert db.get(CustomerRequest, world.question.id).assignee_id == colleague.id
    assert client.post(url, data={"assignee_id": ""}).status_code == 302
    db.expire_all()
    assert db.get(CustomerRequest, world.question.id).assignee_id is None
    assert len(_audit(db, "request.assigned")) == 3
    html = text(client.get(f"/staff/requests/{world.question.id}"))
    assert colleague.name in html  # offered in the select


def test_assign_refuses_operators_who_cannot_handle_it(operator_client, make_operator, world, db):
    client = operator_client(rights=RIGHT)
    elsewhere = make_operator(rights=RIGHT, locations=[world.loc_b])
    biller = make_operator(rights=("billing.run",))
    url = f"/staff/requests/{world.question.id}/assign"
    for value in (str(elsewhere.id), str(biller.id), "abc", "99999"):
        resp = client.post(url, data={"assignee_id": value})
        assert resp.status_code == 422, value
        assert field_error(text(resp), "assignee_id")
    assert _audit(db, "request.assigned") == []


def test_state_buttons_and_resolve(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    url = f"/staff/requests/{world.question.id}/state"
    assert client.post(url, data={"action": "start"}).status_code == 302
    assert client.post(url, data={"action": "wait"}).status_code == 302
    db.expire_all()
    assert db.get(CustomerRequest, world.question.id).state == RequestState.WAITING_FOR_CUSTOMER
    resp = client.post(url, data={"action": "resolve", "text": ""})
    assert resp.status_code == 422 and field_error(text(resp), "text") == "Write the text."
    resp = client.post(url, data={"action": "close"})
    assert resp.status_code == 422 and "cannot be changed like that" in text(resp)
    resp = client.post(url, data={"action": "fly"})
    assert resp.status_code == 422
    assert outbox() == []
    resp = client.post(url, data={"action": "resolve", "text": "Your line is fixed."})
    assert resp.status_code == 302
    db.expire_all()
    req = db.get(CustomerRequest, world.question.id)
    assert req.state == RequestState.RESOLVED and req.payload["resolution"]["outcome"] == "resolved"
    assert "Your line is fixed." in outbox()[-1].text
    assert [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "customer_request")
                                         .order_by(AuditEntry.id))] == [
        "request.state_changed", "request.state_changed", "request.resolved"]


def test_reject(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    resp = client.post(f"/staff/requests/{world.question.id}/state",
                       data={"action": "reject", "text": "Not something we offer."})
    assert resp.status_code == 302
    db.expire_all()
    req = db.get(CustomerRequest, world.question.id)
    assert req.state == RequestState.CLOSED and req.payload["resolution"]["outcome"] == "rejected"
    assert "Not something we offer." in outbox()[-1].text
    assert _audit(db, "request.rejected")


# ------------------------------------------------------------------------------------------ carry out


def _next_month() -> date:
    return (TODAY.replace(day=1) + timedelta(days=40)).replace(day=1)


def test_carry_out_a_plan_change(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    on = _next_month()
    req = make_request(db, world.customer, kind=RequestKind.PLAN_CHANGE, service=world.service,
                       subject="Faster please",
                       payload={"target_definition_id": world.target.id, "effective_on": on.isoformat()})
    db.commit()
    page = text(client.get(f"/staff/requests/{req.id}"))
    assert "Carry out" in page and "Internet 1000" in page and on.isoformat() in page
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": on.isoformat(), "message": ""})
    assert resp.status_code == 302, text(resp)
    db.expire_all()
    req = db.get(CustomerRequest, req.id)
    assert req.state == RequestState.RESOLVED
    successor = db.get(CustomerService, req.payload["carried_out"]["successor_id"])
    assert successor.definition_id == world.target.id
    assert "Internet 1000" in outbox()[-1].text
    assert _audit(db, "request.carried_out")
    assert f'action="/staff/requests/{req.id}/carry-out"' not in text(client.get(f"/staff/requests/{req.id}"))
    # Carrying out twice is refused.
    again = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": on.isoformat()})
    assert again.status_code == 422


def test_carry_out_refused_target_is_a_message_and_nothing_is_done(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    req = make_request(db, world.customer, kind=RequestKind.PLAN_CHANGE, service=world.service,
                       payload={"target_definition_id": world.target.id})
    world.service.definition.allowed_targets = []
    db.commit()
    services = _count(db, CustomerService)
    comments = _count(db, RequestComment)
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": _next_month().isoformat()})
    assert resp.status_code == 422
    assert "cannot be changed to" in text(resp)
    db.expire_all()
    assert _count(db, CustomerService) == services and _count(db, RequestComment) == comments
    assert db.get(CustomerRequest, req.id).state == RequestState.NEW
    assert outbox() == [] and _audit(db, "request.carried_out") == []


def test_carry_out_bad_date_is_422(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    req = make_request(db, world.customer, kind=RequestKind.CANCELLATION, service=world.service)
    db.commit()
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": "not-a-date"})
    assert resp.status_code == 422 and field_error(text(resp), "on")
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": (TODAY + timedelta(days=2)).isoformat()})
    assert resp.status_code == 422 and "earliest possible end date" in field_error(text(resp), "on")
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": (TODAY - timedelta(days=2)).isoformat()})
    assert resp.status_code == 422 and "past" in field_error(text(resp), "on")
    db.expire_all()
    assert db.get(CustomerRequest, req.id).state == RequestState.NEW


def test_carry_out_a_cancellation(operator_client, world, db, outbox):
    client = operator_client(rights=RIGHT)
    req = make_request(db, world.customer, kind=RequestKind.CANCELLATION, service=world.service,
                       subject="Cancel my internet")
    db.commit()
    end = TODAY + timedelta(days=world.service.definition.notice_days)
    resp = client.post(f"/staff/requests/{req.id}/carry-out", data={"on": end.isoformat()})
    assert resp.status_code == 302, text(resp)
    db.expire_all()
    req = db.get(CustomerRequest, req.id)
    assert req.state == RequestState.RESOLVED and req.payload["carried_out"]["end_date"] == end.isoformat()
    mail = outbox()[-1]
    assert end.isoformat() in mail.text
    assert any(p.get_filename().endswith(".pdf") for p in mail.iter_attachments())


def test_carry_out_is_not_offered_for_other_kinds(operator_client, world, db):
    client = operator_client(rights=RIGHT)
    assert f'action="/staff/requests/{world.question.id}/carry-out"' not in text(
        client.get(f"/staff/requests/{world.question.id}"))
    resp = client.post(f"/staff/requests/{world.question.id}/carry-out", data={})
    assert resp.status_code == 422 and "cannot be carried out" in text(resp)


def test_queue_of_one_customer(operator_client, world, db):
    client = operator_client(rights=RIGHT, locations=[world.loc_a])
    make_request(db, CustomerFactory(location=world.loc_a), subject="Somebody else")
    db.commit()
    html = text(client.get(f"/staff/requests?customer_id={world.customer.id}"))
    assert "Slow internet" in html and "Somebody else" not in html
    assert f'name="customer_id" type="hidden" value="{world.customer.id}"' in html
    # Another location's customer: nothing, as if there were none.
    html = text(client.get(f"/staff/requests?customer_id={world.other.id}"))
    assert "Other location request" not in html and "No requests match the filter." in html
    assert client.get("/staff/requests?customer_id=abc").status_code == 422
