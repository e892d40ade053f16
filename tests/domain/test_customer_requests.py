"""Staff rules for customer requests: the queue, assignment, comments and notes, state
changes, carrying out plan changes and cancellations (all or nothing), and the dashboard
figures of portal.domain.overview."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from portal.domain import DomainError
from portal.domain import customer_requests as rules
from portal.domain.actors import Actor
from portal.domain.overview import business_overview
from portal.models import (
    ActorType,
    AuditEntry,
    BillingRun,
    BillingRunState,
    CaseState,
    Currency,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Invoice,
    OutboundEmail,
    Payment,
    PaymentSource,
    PaymentState,
    RequestComment,
    RequestKind,
    RequestState,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)

TODAY = date.today()


def _actor(op) -> Actor:
    return Actor.operator(op)


def make_request(customer, *, kind=RequestKind.QUESTION, state=RequestState.NEW, service=None, payload=None,
                 subject="Slow internet", assignee=None) -> CustomerRequest:
    r = CustomerRequest(customer_id=customer.id, kind=kind, subject=subject, state=state,
                        customer_service_id=service.id if service else None, payload=payload or {},
                        assignee_id=assignee.id if assignee else None,
                        created_by_type=ActorType.CUSTOMER, created_by_id=customer.id)
    from portal.extensions import db

    db.session.add(r)
    db.session.flush()
    db.session.add(RequestComment(request_id=r.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                                  author_name=customer.display_name, body="Please help.", internal=False))
    db.session.flush()
    return r


def _audits(db, action):
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _count(db, model):
    return db.scalar(select(func.count()).select_from(model))


@pytest.fixture
def handler(db):
    return OperatorFactory(rights=("requests.handle",))


@pytest.fixture
def customer(db):
    c = CustomerFactory()
    CustomerLoginFactory(customer=c, email="jana@example.com")
    return c


@pytest.fixture
def plan(db, customer):
    """An active service whose definition may change to `target`."""
    target = ServiceDefinitionFactory(name="Internet 1000", customer_name="Internet 1000", price=Decimal("799.00"))
    definition = ServiceDefinitionFactory(name="Internet 300", customer_name="Internet 300", allowed_targets=[target])
    service = CustomerServiceFactory(customer=customer, definition=definition)
    return service, target


# ------------------------------------------------------------------------------------------ queue


def test_queue_filters_and_location_scope(db, handler):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    a, b = CustomerFactory(location=loc_a), CustomerFactory(location=loc_b)
    new = make_request(a, subject="new one")
    mine = make_request(a, kind=RequestKind.COMPLAINT, state=RequestState.IN_PROGRESS, assignee=handler, subject="mine")
    done = make_request(a, state=RequestState.RESOLVED, subject="done")
    other = make_request(b, subject="other location")

    def ids(location_ids, **kw):
        return {r.id for r in db.scalars(rules.staff_requests_query(location_ids, operator_id=handler.id, **kw))}

    assert ids(None) == {new.id, mine.id, other.id}  # open by default
    assert ids(None, state="all") == {new.id, mine.id, done.id, other.id}
    assert ids(None, state="resolved") == {done.id}
    assert ids(None, kind="complaint") == {mine.id}
    assert ids(None, assignee="me") == {mine.id}
    assert ids(None, assignee="unassigned") == {new.id, other.id}
    assert ids(frozenset({loc_a.id}), state="all") == {new.id, mine.id, done.id}
    assert rules.request_for_staff(db, other.id, frozenset({loc_a.id})) is None
    assert rules.request_for_staff(db, other.id, None).id == other.id
    assert rules.request_for_staff(db, "x", None) is None


# ------------------------------------------------------------------------------------------ assign


def test_assign_to_a_handler_in_the_location_and_back(db, handler, customer):
    req = make_request(customer)
    actor = _actor(handler)
    rules.assign(db, req, handler.id, actor)
    assert req.assignee_id == handler.id
    rules.assign(db, req, None, actor)
    assert req.assignee_id is None
    entries = _audits(db, "request.assigned")
    assert [e.changes["assignee_id"] for e in entries] == [[None, handler.id], [handler.id, None]]
    assert entries[0].customer_id == customer.id and entries[0].actor_id == handler.id


def test_assign_refuses_operators_without_the_right_or_the_location(db, handler, customer):
    req = make_request(customer)
    no_right = OperatorFactory(rights=("billing.run",))
    elsewhere = OperatorFactory(rights=("requests.handle",))
    elsewhere.locations = [LocationFactory()]
    inactive = OperatorFactory(rights=("requests.handle",), active=False)
    db.flush()
    for op in (no_right, elsewhere, inactive):
        with pytest.raises(DomainError) as err:
            rules.assign(db, req, op.id, _actor(handler))
        assert err.value.field == "assignee_id"
    assert req.assignee_id is None and _audits(db, "request.assigned") == []
    here = OperatorFactory(rights=("requests.handle",))
    here.locations = [customer.location]
    db.flush()
    assert {op.id for op in rules.assignable_operators(db, customer.location_id)} == {handler.id, here.id}


# ------------------------------------------------------------------------------------------ comments


def test_comment_is_emailed_and_moves_a_new_request_on(db, handler, customer, outbox):
    req = make_request(customer)
    comment = rules.add_staff_comment(db, req, "We are on it.", _actor(handler), internal=False)
    assert comment.internal is False and comment.author_type == ActorType.OPERATOR
    assert comment.author_name == handler.name
    assert req.state == RequestState.IN_PROGRESS
    mails = outbox()
    assert len(mails) == 1 and mails[0]["To"] == "jana@example.com"
    assert "We are on it." in mails[0].text and f"/requests/{req.id}" in mails[0].text
    assert db.scalar(select(OutboundEmail.template)) == "request_comment"
    entry = _audits(db, "request.answered")[0]
    assert entry.changes["state"] == ["new", "in_progress"] and entry.changes["internal"] == [None, False]


def test_note_is_never_sent_nor_shown_to_the_customer(db, handler, customer, outbox):
    req = make_request(customer)
    note = rules.add_staff_comment(db, req, "STAFF: known outage", _actor(handler), internal=True)
    assert note.internal is True
    assert req.state == RequestState.NEW  # a note changes nothing for the customer
    assert outbox() == [] and _count(db, OutboundEmail) == 0
    assert note not in rules.visible_comments(db, req)
    assert note in rules.staff_conversation(db, req)
    assert _audits(db, "request.noted")[0].changes["internal"] == [None, True]


def test_comment_and_wait_for_the_customer(db, handler, customer):
    req = make_request(customer, state=RequestState.IN_PROGRESS)
    rules.add_staff_comment(db, req, "Which router do you have?", _actor(handler), internal=False,
                            wait_for_customer=True)
    assert req.state == RequestState.WAITING_FOR_CUSTOMER
    # The customer's answer puts it back on staff's desk (selfcare rule).
    rules.add_customer_comment(db, req, customer, "A TP-Link.",
                               Actor(ActorType.CUSTOMER, customer.id, "jana@example.com"))
    assert req.state == RequestState.IN_PROGRESS


def test_comment_rules(db, handler, customer):
    req = make_request(customer, state=RequestState.CLOSED)
    with pytest.raises(DomainError) as err:
        rules.add_staff_comment(db, req, "   ", _actor(handler), internal=True)
    assert err.value.field == "body"
    with pytest.raises(DomainError) as err:
        rules.add_staff_comment(db, req, "x" * (rules.MAX_BODY + 1), _actor(handler), internal=True)
    assert err.value.field == "body"
    with pytest.raises(DomainError):
        rules.add_staff_comment(db, req, "Hello?", _actor(handler), internal=False)
    rules.add_staff_comment(db, req, "for the file", _actor(handler), internal=True)  # notes are fine


# ------------------------------------------------------------------------------------------ state


def test_state_actions_follow_the_table(db, handler, customer):
    req = make_request(customer)
    actor = _actor(handler)
    assert rules.allowed_staff_actions(req) == ["start", "wait", "resolve", "reject"]
    rules.change_state(db, req, "start", actor)
    assert req.state == RequestState.IN_PROGRESS
    rules.change_state(db, req, "wait", actor)
    assert req.state == RequestState.WAITING_FOR_CUSTOMER
    with pytest.raises(DomainError) as err:
        rules.change_state(db, req, "close", actor)
    assert err.value.field == "action"
    with pytest.raises(DomainError):
        rules.change_state(db, req, "explode", actor)
    entries = _audits(db, "request.state_changed")
    assert [e.changes["state"] for e in entries] == [["new", "in_progress"], ["in_progress", "waiting_for_customer"]]


def test_resolve_needs_a_text_that_the_customer_gets(db, handler, customer, outbox):
    req = make_request(customer, state=RequestState.IN_PROGRESS)
    with pytest.raises(DomainError) as err:
        rules.change_state(db, req, "resolve", _actor(handler), text=" ")
    assert err.value.field == "text" and req.state == RequestState.IN_PROGRESS
    comment = rules.change_state(db, req, "resolve", _actor(handler), text="Fixed the line card.")
    assert req.state == RequestState.RESOLVED and comment.internal is False
    assert req.payload["resolution"]["outcome"] == "resolved"
    assert "Fixed the line card." in outbox()[-1].text
    assert _audits(db, "request.resolved")[0].changes["state"] == ["in_progress", "resolved"]
    rules.change_state(db, req, "close", _actor(handler))
    assert req.state == RequestState.CLOSED
    rules.change_state(db, req, "reopen", _actor(handler))
    assert req.state == RequestState.IN_PROGRESS


def test_reject_closes_with_the_reason(db, handler, customer, outbox):
    req = make_request(customer)
    rules.change_state(db, req, "reject", _actor(handler), text="We do not offer that.")
    assert req.state == RequestState.CLOSED
    assert req.payload["resolution"]["outcome"] == "rejected"
    assert "We do not offer that." in outbox()[-1].text
    assert _audits(db, "request.rejected")[0].changes["state"] == ["new", "closed"]


# ------------------------------------------------------------------------------------------ carry out


def test_carry_out_a_plan_change(db, handler, customer, plan, outbox):
    service, target = plan
    on = (TODAY.replace(day=1) + timedelta(days=40)).replace(day=1)
    req = make_request(customer, kind=RequestKind.PLAN_CHANGE, service=service,
                       payload={"target_definition_id": target.id, "effective_on": on.isoformat()})
    assert rules.can_carry_out(req)
    assert rules.carry_out_defaults(req)["on"] == on
    comment = rules.carry_out(db, req, _actor(handler))
    assert req.state == RequestState.RESOLVED
    done = req.payload["carried_out"]
    assert done["kind"] == "plan_change" and done["effective_on"] == on.isoformat()
    successor = db.get(CustomerService, done["successor_id"])
    assert successor.definition_id == target.id and db.get(CustomerService, service.id).replaced_by_id == successor.id
    assert "Internet 1000" in comment.body and comment.internal is False
    assert req.payload["resolution"]["outcome"] == "carried_out"
    assert "Internet 1000" in outbox()[-1].text
    entry = _audits(db, "request.carried_out")[0]
    assert entry.changes["state"] == ["new", "resolved"] and entry.customer_id == customer.id
    assert _audits(db, "service.change_scheduled")  # lifecycle audited its own step
    assert not rules.can_carry_out(req)
    with pytest.raises(DomainError):
        rules.carry_out(db, req, _actor(handler))


def test_a_refused_plan_change_leaves_nothing_behind(db, handler, customer, plan, outbox):
    service, target = plan
    req = make_request(customer, kind=RequestKind.PLAN_CHANGE, service=service,
                       payload={"target_definition_id": target.id})
    service.definition.allowed_targets = []  # the catalogue changed since the customer asked
    db.flush()
    services_before, events_before = _count(db, CustomerService), _count(db, ServiceEvent)
    comments_before = _count(db, RequestComment)
    with pytest.raises(DomainError) as err:
        rules.carry_out(db, req, _actor(handler))
    assert "cannot be changed" in str(err.value)
    assert (_count(db, CustomerService), _count(db, ServiceEvent), _count(db, RequestComment)) == (
        services_before, events_before, comments_before)
    db.refresh(req)
    assert req.state == RequestState.NEW and "carried_out" not in req.payload
    assert _audits(db, "request.carried_out") == [] and outbox() == []


def test_carry_out_refuses_a_past_date_and_other_kinds(db, handler, customer, plan):
    service, target = plan
    req = make_request(customer, kind=RequestKind.PLAN_CHANGE, service=service,
                       payload={"target_definition_id": target.id})
    with pytest.raises(DomainError) as err:
        rules.carry_out(db, req, _actor(handler), on=TODAY - timedelta(days=1))
    assert err.value.field == "on"
    question = make_request(customer)
    assert not rules.can_carry_out(question)
    with pytest.raises(DomainError):
        rules.carry_out(db, question, _actor(handler))


def test_carry_out_a_cancellation(db, handler, customer, plan, outbox):
    service, _target = plan
    req = make_request(customer, kind=RequestKind.CANCELLATION, service=service,
                       payload={"requested_by": "customer"})
    earliest = TODAY + timedelta(days=service.definition.notice_days)
    assert rules.carry_out_defaults(req)["on"] == earliest
    with pytest.raises(DomainError) as err:
        rules.carry_out(db, req, _actor(handler), on=TODAY + timedelta(days=3))
    assert err.value.field == "on" and req.state == RequestState.NEW
    comment = rules.carry_out(db, req, _actor(handler), message="Sorry to see you go.")
    assert comment.body == "Sorry to see you go."
    assert req.state == RequestState.RESOLVED
    assert req.payload["carried_out"]["end_date"] == earliest.isoformat()
    pending = db.scalar(select(ServiceEvent).where(ServiceEvent.customer_service_id == service.id,
                                                   ServiceEvent.kind == ServiceEventKind.CANCELLED))
    assert pending.scheduled_for == earliest and pending.done_at is None
    mail = outbox()[-1]
    assert "Sorry to see you go." in mail.text
    assert [p.get_filename() for p in mail.iter_attachments()][0].endswith(".pdf")
    assert _audits(db, "request.carried_out")[0].changes["carried_out"][1]["kind"] == "cancellation"


def test_carry_out_a_cancellation_waiving_the_notice(db, handler, customer, plan):
    service, _target = plan
    req = make_request(customer, kind=RequestKind.CANCELLATION, service=service)
    rules.carry_out(db, req, _actor(handler), on=TODAY, waive_notice=True)
    db.refresh(service)
    assert service.state == ServiceState.CANCELLED and service.cancelled_on == TODAY
    assert req.payload["carried_out"]["waived_notice"] is True


def test_a_cancellation_scheduled_in_selfcare_is_not_carried_out_again(db, handler, customer, plan):
    service, _target = plan
    req = make_request(customer, kind=RequestKind.CANCELLATION, service=service,
                       payload={"scheduled": True, "end_date": TODAY.isoformat()})
    assert not rules.can_carry_out(req)
    with pytest.raises(DomainError):
        rules.carry_out(db, req, _actor(handler))


# ------------------------------------------------------------------------------------------ dashboard


def _invoice(customer, gross, due):
    from tests.domain.lifecycle_fixtures import invoice

    return invoice(customer, issue_date=due - timedelta(days=14), due_date=due, gross=gross)


def test_business_overview_figures_and_scope(db, handler):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    a1, a2, b1 = CustomerFactory(location=loc_a), CustomerFactory(location=loc_a), CustomerFactory(location=loc_b)
    CustomerServiceFactory(customer=a1)
    CustomerServiceFactory(customer=a2, state=ServiceState.BLOCKED)
    CustomerServiceFactory(customer=b1)
    _invoice(a1, "100.00", TODAY + timedelta(days=5))   # due
    _invoice(a1, "200.00", TODAY - timedelta(days=10))  # overdue, no case
    _invoice(a2, "300.00", TODAY - timedelta(days=40))  # overdue, case at level 3
    _invoice(b1, "999.00", TODAY - timedelta(days=40))  # other location
    db.add(DebtRecoveryCase(customer_id=a2.id, state=CaseState.BLOCKED, level=3, opened_on=TODAY))
    db.add(DebtRecoveryCase(customer_id=a1.id, state=CaseState.CLOSED, level=1, opened_on=TODAY))
    make_request(a1)
    make_request(a2, state=RequestState.IN_PROGRESS, assignee=handler)
    make_request(a2, state=RequestState.WAITING_FOR_CUSTOMER)
    make_request(b1)
    run = BillingRun(period_start=TODAY.replace(day=1), period_end=TODAY.replace(day=28), issue_date=TODAY,
                     state=BillingRunState.DONE, started_by_type=ActorType.OPERATOR, started_by_name="Eva",
                     started_at=datetime.now(UTC), finished_at=datetime.now(UTC))
    db.add(run)
    db.add(BillingRun(period_start=TODAY.replace(day=1), period_end=TODAY.replace(day=28), issue_date=TODAY,
                      state=BillingRunState.PREVIEWED, started_by_type=ActorType.SYSTEM,
                      started_at=datetime.now(UTC) + timedelta(hours=1)))
    db.flush()
    # The invoices were "issued by" the run (a column the billing run sets when it issues them).
    db.execute(update(Invoice).values(billing_run_id=run.id).execution_options(synchronize_session=False))
    db.add_all([
        Payment(received_on=TODAY, amount=Decimal("50.00"), currency=Currency.CZK, source=PaymentSource.MANUAL,
                state=PaymentState.UNMATCHED, unallocated=Decimal("50.00")),
        Payment(received_on=TODAY, amount=Decimal("70.00"), currency=Currency.CZK, source=PaymentSource.MANUAL,
                customer_id=b1.id, state=PaymentState.PARTIAL, unallocated=Decimal("20.00")),
        Payment(received_on=TODAY, amount=Decimal("80.00"), currency=Currency.CZK, source=PaymentSource.MANUAL,
                customer_id=a1.id, state=PaymentState.MATCHED, unallocated=Decimal("0.00")),
    ])
    db.flush()

    everything = business_overview(db, None, operator_id=handler.id)
    assert everything.customers == 3
    assert everything.receivables == {"CZK": Decimal("1599.00")}
    assert everything.due == {"CZK": Decimal("100.00")} and everything.overdue == {"CZK": Decimal("1499.00")}
    assert everything.unmatched_payments == 2 and everything.unmatched_amounts == {"CZK": Decimal("70.00")}
    assert everything.last_billing_run.run.id == run.id  # a preview is not a run
    assert everything.last_billing_run.invoices == 4 and everything.last_billing_run.customers == 3

    a = business_overview(db, frozenset({loc_a.id}), operator_id=handler.id)
    assert a.customers == 2
    assert a.services_by_state == {"active": 1, "blocked": 1}
    assert a.receivables == {"CZK": Decimal("600.00")}
    assert a.due == {"CZK": Decimal("100.00")} and a.overdue == {"CZK": Decimal("500.00")}
    assert a.overdue_by_level == {0: {"customers": 1, "amounts": {"CZK": Decimal("200.00")}},
                                  3: {"customers": 1, "amounts": {"CZK": Decimal("300.00")}}}
    assert a.cases_by_state == {"blocked": 1}
    assert (a.requests_new, a.requests_unassigned, a.requests_mine, a.requests_waiting_for_customer) == (1, 2, 1, 1)
    assert a.last_billing_run.invoices == 3 and a.last_billing_run.customers == 2
    assert a.last_billing_run.totals["CZK"]["gross"] == Decimal("600.00")
    # The unidentified payment is nobody's: it shows; location B's customer's payment does not.
    assert a.unmatched_payments == 1 and a.unmatched_amounts == {"CZK": Decimal("50.00")}


def test_business_overview_when_empty(db):
    empty = business_overview(db, None)
    assert empty.receivables == {} and empty.overdue_by_level == {} and empty.last_billing_run is None
    assert empty.unmatched_payments == 0 and empty.requests_mine == 0


def test_request_email_falls_back_to_a_contact(db):
    c = CustomerFactory()
    contact = ContactFactory(customer=c)
    assert rules.request_email(db, c) == contact.value
