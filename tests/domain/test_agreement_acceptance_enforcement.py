"""The acceptance rule (portal/domain/agreements.py `enforce_acceptance`; domain.md §3
"Agreement lifecycle"): a reminder remind_days after issue and blocking after block_days for
agreements of a type that requires confirmation, and acceptance unblocking exactly what the
rule blocked."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.domain import agreements as rules
from portal.domain import lifecycle as lc
from portal.domain.actors import Actor
from portal.domain.dunning import run_dunning, services_blocked_by
from portal.models import (
    AgreementState,
    AgreementType,
    AuditEntry,
    DebtRecoveryCase,
    OutboundEmail,
    ServiceEventKind,
    ServiceState,
)
from tests.domain.lifecycle_fixtures import SYSTEM, default_ladder, invoice, pay, service
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)

# Issued at 10:00 UTC on 1 March 2025 = 11:00 in Prague: issue day 1 March.
ISSUED_AT = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
ISSUE_DAY = date(2025, 3, 1)
REMIND, BLOCK = 7, 14
REMIND_ON = ISSUE_DAY + timedelta(days=REMIND)   # 8 March
BLOCK_ON = ISSUE_DAY + timedelta(days=BLOCK)     # 15 March


def make_type(db, code="SA", *, requires=True, remind=REMIND, block=BLOCK, is_annex=False) -> AgreementType:
    t = AgreementType(name=f"Type {code}", code=code, is_annex=is_annex, requires_confirmation=requires,
                      remind_days=remind, block_days=block,
                      template="annex.html" if is_annex else "standard.html", valid_from=date(2020, 1, 1))
    db.add(t)
    db.flush()
    return t


def issue(db, atype, customer, services, *, issued_at=ISSUED_AT, parent=None):
    a = rules.create_agreement(db, atype, customer, services, actor=SYSTEM, parent=parent)
    rules.issue_agreement(db, a, actor=SYSTEM, on=issued_at.date())
    a.issued_at = issued_at  # issue_agreement stamps the real clock; the rule counts from this
    db.flush()
    return a


def enforce(db, today):
    return rules.enforce_acceptance(db, today=today, actor=SYSTEM)


def actions(db, agreement, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "agreement",
                                               AuditEntry.entity_id == agreement.id,
                                               AuditEntry.action == action).order_by(AuditEntry.id)).all()


@pytest.fixture
def world(db):
    """A customer with a selfcare login, two active services and an issued agreement of a
    type that reminds after 7 and blocks after 14 days."""
    login = CustomerLoginFactory()
    customer = login.customer
    svcs = [service(customer), service(customer)]
    agreement = issue(db, make_type(db), customer, svcs)
    return login, customer, svcs, agreement


def accept_by_code(db, outbox, agreement, login):
    rules.mark_document_opened(db, agreement, login)
    rules.request_acceptance_code(db, agreement, login)
    code = re.search(r"\b(\d{6})\b", outbox()[-1].text).group(1)
    return rules.accept_with_code(db, agreement, login, code, ip="203.0.113.9", user_agent="test")


# --- dates -----------------------------------------------------------------------------------

def test_days_count_from_the_local_issue_day(db, world):
    _, customer, svcs, _ = world
    # 23:30 UTC on 1 March is 00:30 on 2 March in Prague.
    late = issue(db, make_type(db, "L"), customer, svcs, issued_at=datetime(2025, 3, 1, 23, 30, tzinfo=UTC))
    assert rules.issue_date(late) == date(2025, 3, 2)
    assert rules.reminder_date(late) == date(2025, 3, 9)
    assert rules.blocking_date(late) == date(2025, 3, 16)
    assert rules.acceptance_deadline(late) == date(2025, 3, 15)
    enforce(db, date(2025, 3, 8))
    assert actions(db, late, rules.REMINDED_ACTION) == []
    enforce(db, date(2025, 3, 9))
    assert len(actions(db, late, rules.REMINDED_ACTION)) == 1


def test_no_dates_when_the_rule_does_not_apply(db, world):
    _, customer, svcs, agreement = world
    assert rules.acceptance_deadline(issue(db, make_type(db, "N", requires=False), customer, svcs)) is None
    assert rules.acceptance_deadline(issue(db, make_type(db, "R", block=None), customer, svcs)) is None
    assert rules.reminder_date(issue(db, make_type(db, "B", remind=None), customer, svcs)) is None
    draft = rules.create_agreement(db, make_type(db, "D"), customer, svcs, actor=SYSTEM)
    assert rules.blocking_date(draft) is None
    agreement.state = AgreementState.ACCEPTED
    assert rules.blocking_date(agreement) is None and rules.reminder_date(agreement) is None


# --- the reminder ----------------------------------------------------------------------------

def test_reminder_once_at_remind_days_and_not_before(db, world, outbox):
    login, customer, svcs, agreement = world
    result = enforce(db, REMIND_ON - timedelta(days=1))
    assert result.reminders == 0 and outbox() == []
    assert actions(db, agreement, rules.REMINDED_ACTION) == []

    result = enforce(db, REMIND_ON)
    assert (result.reminders, result.emails_sent, result.services_blocked) == (1, 1, 0)
    mails = outbox()
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == login.email
    assert agreement.number in mail["Subject"]
    assert agreement.number in mail.text
    assert f"http://localhost/agreements/{agreement.id}/accept" in mail.text
    assert "Mar 14, 2025" in mail.text  # the last day to accept
    assert "Mar 15, 2025" in mail.text  # the day services are blocked
    row = db.scalar(select(OutboundEmail))
    assert row.template == "agreement_acceptance_reminder" and row.customer_id == customer.id
    [entry] = actions(db, agreement, rules.REMINDED_ACTION)
    assert entry.customer_id == customer.id
    assert entry.changes["emailed_to"] == login.email and entry.changes["email_id"] == row.id
    assert all(s.state == ServiceState.ACTIVE for s in svcs)

    # Again the same day and the days after: no second reminder.
    for day in (REMIND_ON, REMIND_ON + timedelta(days=1), REMIND_ON + timedelta(days=3)):
        assert enforce(db, day).reminders == 0
    assert len(outbox()) == 1
    assert len(actions(db, agreement, rules.REMINDED_ACTION)) == 1


def test_reminder_without_blocking_says_nothing_about_blocking(db, outbox):
    login = CustomerLoginFactory()
    agreement = issue(db, make_type(db, block=None), login.customer, [service(login.customer)])
    enforce(db, REMIND_ON)
    [mail] = outbox()
    assert "blocked" not in mail.text
    assert f"/agreements/{agreement.id}/accept" in mail.text


def test_reminder_goes_to_a_contact_without_a_login_and_is_recorded_without_any(db, outbox):
    with_contact = CustomerFactory()
    contact = ContactFactory(customer=with_contact)
    a1 = issue(db, make_type(db, "A"), with_contact, [service(with_contact)])
    nobody = CustomerFactory()
    a2 = issue(db, make_type(db, "B"), nobody, [service(nobody)])
    result = enforce(db, REMIND_ON)
    assert (result.reminders, result.emails_sent) == (2, 1)
    assert [m["To"] for m in outbox()] == [contact.value]
    assert actions(db, a1, rules.REMINDED_ACTION)[0].changes["emailed_to"] == contact.value
    assert actions(db, a2, rules.REMINDED_ACTION)[0].changes["emailed_to"] is None
    assert enforce(db, REMIND_ON + timedelta(days=1)).reminders == 0


# --- blocking --------------------------------------------------------------------------------

def test_blocking_at_block_days_only_of_active_services(db, outbox):
    login = CustomerLoginFactory()
    customer = login.customer
    active = service(customer)
    ordered = service(customer, ServiceState.ORDERED)
    cancelled = service(customer, ServiceState.CANCELLED)
    staff_blocked = service(customer)
    lc.block(db, staff_blocked, actor=SYSTEM, on=date(2025, 2, 1), reason="Abuse report", today=date(2025, 2, 1))
    unrelated = service(customer)  # not on the agreement
    agreement = issue(db, make_type(db), customer, [active, ordered, cancelled, staff_blocked])

    enforce(db, REMIND_ON)
    assert enforce(db, BLOCK_ON - timedelta(days=1)).services_blocked == 0
    assert active.state == ServiceState.ACTIVE

    result = enforce(db, BLOCK_ON)
    assert (result.agreements_blocked, result.services_blocked) == (1, 1)
    assert active.state == ServiceState.BLOCKED
    assert (ordered.state, cancelled.state, unrelated.state) == \
        (ServiceState.ORDERED, ServiceState.CANCELLED, ServiceState.ACTIVE)
    event = lc.blocking_event(active)
    assert event.kind == ServiceEventKind.BLOCKED and event.effective_on == BLOCK_ON
    assert event.details["agreement_id"] == agreement.id
    assert agreement.number in event.reason
    assert event.debt_recovery_case_id is None
    # The staff block is untouched: its blocking event is still the staff one.
    assert lc.blocking_event(staff_blocked).reason == "Abuse report"
    [entry] = actions(db, agreement, rules.BLOCKED_ACTION)
    assert entry.changes["services"] == [active.id]
    assert entry.changes["blocked_on"] == BLOCK_ON.isoformat()
    service_audit = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "customer_service",
                                                               AuditEntry.entity_id == active.id)).all()
    assert "service.blocked" in service_audit


def test_never_blocks_twice(db, world):
    _, _, svcs, agreement = world
    enforce(db, BLOCK_ON)
    assert all(s.state == ServiceState.BLOCKED for s in svcs)
    # Staff let one service run again; later runs leave that decision alone.
    lc.unblock(db, svcs[0], actor=SYSTEM, on=BLOCK_ON, reason="Customer promised to sign", today=BLOCK_ON)
    for day in (BLOCK_ON, BLOCK_ON + timedelta(days=1), BLOCK_ON + timedelta(days=30)):
        assert enforce(db, day).services_blocked == 0
    assert svcs[0].state == ServiceState.ACTIVE
    assert len(actions(db, agreement, rules.BLOCKED_ACTION)) == 1


def test_a_late_first_run_reminds_and_blocks_at_once(db, world, outbox):
    _, _, svcs, agreement = world
    result = enforce(db, BLOCK_ON + timedelta(days=2))
    assert (result.reminders, result.services_blocked) == (1, 2)
    [mail] = outbox()
    assert "blocked from Mar 15, 2025 until you accept it" in " ".join(mail.text.split())
    assert len(actions(db, agreement, rules.REMINDED_ACTION)) == 1
    assert len(actions(db, agreement, rules.BLOCKED_ACTION)) == 1


def test_without_an_active_service_nothing_is_recorded_and_a_later_run_blocks(db):
    customer = CustomerFactory()
    ordered = service(customer, ServiceState.ORDERED)
    agreement = issue(db, make_type(db), customer, [ordered])
    assert enforce(db, BLOCK_ON).services_blocked == 0
    assert actions(db, agreement, rules.BLOCKED_ACTION) == []
    lc.activate(db, ordered, actor=SYSTEM, on=BLOCK_ON, today=BLOCK_ON)
    assert enforce(db, BLOCK_ON + timedelta(days=1)).services_blocked == 1
    assert ordered.state == ServiceState.BLOCKED


def test_dunning_exceptions_do_not_matter(db, world):
    from portal.domain.dunning import exempt_from_blocking

    _, customer, svcs, _ = world
    exempt_from_blocking(db, customer, reason="Hospital", actor=SYSTEM)
    enforce(db, BLOCK_ON)
    assert all(s.state == ServiceState.BLOCKED for s in svcs)


# --- what the rule leaves alone --------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"requires": False},
    {"remind": None, "block": None},
])
def test_types_without_the_rule_are_left_alone(db, outbox, kwargs):
    login = CustomerLoginFactory()
    svc = service(login.customer)
    agreement = issue(db, make_type(db, **kwargs), login.customer, [svc])
    result = enforce(db, BLOCK_ON + timedelta(days=100))
    assert result.agreements_considered == 0
    assert (result.reminders, result.services_blocked) == (0, 0)
    assert outbox() == [] and svc.state == ServiceState.ACTIVE
    assert actions(db, agreement, rules.REMINDED_ACTION) == actions(db, agreement, rules.BLOCKED_ACTION) == []


def test_remind_only_and_block_only_types(db, outbox):
    login = CustomerLoginFactory()
    c = login.customer
    remind_only = issue(db, make_type(db, "R", block=None), c, [service(c)])
    block_only = issue(db, make_type(db, "B", remind=None), c, [service(c)])
    enforce(db, BLOCK_ON + timedelta(days=100))
    assert len(actions(db, remind_only, rules.REMINDED_ACTION)) == 1
    assert actions(db, remind_only, rules.BLOCKED_ACTION) == []
    assert remind_only.customer_services[0].state == ServiceState.ACTIVE
    assert actions(db, block_only, rules.REMINDED_ACTION) == []
    assert len(actions(db, block_only, rules.BLOCKED_ACTION)) == 1
    assert block_only.customer_services[0].state == ServiceState.BLOCKED
    assert len(outbox()) == 1


def test_accepted_invalid_and_draft_agreements_are_untouched(db, outbox):
    login = CustomerLoginFactory()
    c = login.customer
    atype = make_type(db)
    accepted = issue(db, atype, c, [service(c)])
    rules.accept_by_staff(db, accepted, operator_actor=Actor.operator(OperatorFactory()), note="Signed")
    invalid = issue(db, atype, c, [service(c)])
    rules.invalidate_agreement(db, invalid, actor=SYSTEM, note="Wrong customer")
    draft = rules.create_agreement(db, atype, c, [service(c)], actor=SYSTEM)
    result = enforce(db, BLOCK_ON + timedelta(days=100))
    assert result.agreements_considered == 0 and outbox() == []
    for a in (accepted, invalid, draft):
        assert a.customer_services[0].state == ServiceState.ACTIVE
        assert actions(db, a, rules.REMINDED_ACTION) == actions(db, a, rules.BLOCKED_ACTION) == []


# --- acceptance unblocks what the rule blocked -----------------------------------------------

def test_accept_with_code_unblocks_only_what_this_rule_blocked(db, world, outbox):
    login, customer, svcs, agreement = world
    other_svc = service(customer)
    other = issue(db, make_type(db, "O"), customer, [other_svc])
    assert rules.blocking_date(other) == BLOCK_ON
    staff_blocked = service(customer)
    lc.block(db, staff_blocked, actor=SYSTEM, on=date(2025, 2, 1), reason="Abuse report", today=date(2025, 2, 1))
    enforce(db, BLOCK_ON)
    assert other_svc.state == ServiceState.BLOCKED and all(s.state == ServiceState.BLOCKED for s in svcs)
    assert rules.services_blocked_for(db, agreement) == svcs

    accept_by_code(db, outbox, agreement, login)
    assert agreement.state == AgreementState.ACCEPTED
    assert all(s.state == ServiceState.ACTIVE for s in svcs)
    assert other_svc.state == ServiceState.BLOCKED  # its own agreement is still not accepted
    assert staff_blocked.state == ServiceState.BLOCKED
    [entry] = actions(db, agreement, rules.UNBLOCKED_ACTION)
    assert entry.changes["services"] == [s.id for s in svcs]
    assert entry.actor_type.value == "customer"
    unblocked = [e for e in svcs[0].events if e.kind == ServiceEventKind.UNBLOCKED]
    assert len(unblocked) == 1 and agreement.number in unblocked[0].reason


def test_accept_by_staff_unblocks(db, world):
    _, _, svcs, agreement = world
    enforce(db, BLOCK_ON)
    op = OperatorFactory()
    rules.accept_by_staff(db, agreement, operator_actor=Actor.operator(op), note="Signed at the branch")
    assert all(s.state == ServiceState.ACTIVE for s in svcs)
    [entry] = actions(db, agreement, rules.UNBLOCKED_ACTION)
    assert entry.actor_type.value == "operator" and entry.actor_id == op.id



def test_invalidating_the_agreement_unblocks_what_this_rule_blocked(db, world):
    _, _, svcs, agreement = world
    enforce(db, BLOCK_ON)
    assert svcs and all(s.state == ServiceState.BLOCKED for s in svcs)
    op = OperatorFactory()
    rules.invalidate_agreement(db, agreement, actor=Actor.operator(op), note="Issued to the wrong customer")
    assert all(s.state == ServiceState.ACTIVE for s in svcs)
    [entry] = actions(db, agreement, rules.UNBLOCKED_ACTION)
    assert entry.actor_id == op.id

def test_accepting_before_blocking_unblocks_nothing(db, world):
    _, _, svcs, agreement = world
    enforce(db, REMIND_ON)
    rules.accept_by_staff(db, agreement, operator_actor=Actor.operator(OperatorFactory()))
    assert actions(db, agreement, rules.UNBLOCKED_ACTION) == []
    enforce(db, BLOCK_ON)
    assert all(s.state == ServiceState.ACTIVE for s in svcs)


def test_a_service_blocked_by_dunning_meanwhile_stays_blocked(db, world, outbox):
    """The rule blocks both services; staff let one run again; dunning then blocks it for
    debt. Accepting unblocks only the one still blocked for the agreement; paying the debt
    later unblocks the other one (dunning's own)."""
    login, customer, (mine, dunned), agreement = world
    default_ladder()
    due = BLOCK_ON - timedelta(days=10)
    inv = invoice(customer, issue_date=due - timedelta(days=14), due_date=due)
    enforce(db, BLOCK_ON)
    lc.unblock(db, dunned, actor=SYSTEM, on=BLOCK_ON, reason="Staff let it run", today=BLOCK_ON)
    for step in (7, 14, 30):  # one level per run, each after its interval
        run_dunning(db, on=due + timedelta(days=step), actor=SYSTEM)
    case = db.scalar(select(DebtRecoveryCase))
    assert dunned.state == ServiceState.BLOCKED and services_blocked_by(db, case) == [dunned]
    assert rules.services_blocked_for(db, agreement) == [mine]

    accept_by_code(db, outbox, agreement, login)
    assert mine.state == ServiceState.ACTIVE
    assert dunned.state == ServiceState.BLOCKED
    assert actions(db, agreement, rules.UNBLOCKED_ACTION)[0].changes["services"] == [mine.id]

    pay(inv, due + timedelta(days=31))
    run_dunning(db, on=due + timedelta(days=32), actor=SYSTEM)
    assert dunned.state == ServiceState.ACTIVE


def test_a_service_dunning_blocked_first_is_neither_blocked_nor_unblocked(db, world, outbox):
    login, customer, (dunned, mine), agreement = world
    case = DebtRecoveryCase(customer_id=customer.id, state="blocked", level=3, opened_on=date(2025, 2, 1))
    db.add(case)
    db.flush()
    lc.block(db, dunned, actor=SYSTEM, on=date(2025, 2, 20), reason="Overdue debt", case=case,
             today=date(2025, 2, 20))
    result = enforce(db, BLOCK_ON)
    assert result.services_blocked == 1 and mine.state == ServiceState.BLOCKED
    assert lc.blocking_event(dunned).debt_recovery_case_id == case.id
    accept_by_code(db, outbox, agreement, login)
    assert mine.state == ServiceState.ACTIVE
    assert dunned.state == ServiceState.BLOCKED and services_blocked_by(db, case) == [dunned]


def test_an_annex_is_enforced_like_any_agreement(db, outbox):
    login = CustomerLoginFactory()
    c = login.customer
    main_svc, annex_svc = service(c), service(c)
    parent = issue(db, make_type(db, "M", requires=False), c, [main_svc])
    annex = issue(db, make_type(db, "ANX", is_annex=True), c, [annex_svc], parent=parent)
    result = enforce(db, BLOCK_ON)
    assert (result.agreements_considered, result.reminders, result.services_blocked) == (1, 1, 1)
    assert [m["Subject"] for m in outbox()] == [f"Please accept agreement {annex.number}"]
    assert annex_svc.state == ServiceState.BLOCKED and main_svc.state == ServiceState.ACTIVE
    accept_by_code(db, outbox, annex, login)
    assert annex_svc.state == ServiceState.ACTIVE


def test_a_plan_change_keeps_the_cause_so_acceptance_unblocks_the_successor(db, world, outbox):
    login, customer, svcs, agreement = world
    target = ServiceDefinitionFactory()
    svcs[0].definition.allowed_targets.append(target)
    enforce(db, BLOCK_ON)
    successor = lc.change_plan(db, svcs[0], target, actor=SYSTEM, on=date(2025, 4, 1), today=date(2025, 4, 1))
    assert successor.state == ServiceState.BLOCKED
    assert rules.services_blocked_for(db, agreement) == [svcs[1], successor]
    accept_by_code(db, outbox, agreement, login)
    assert successor.state == ServiceState.ACTIVE and svcs[1].state == ServiceState.ACTIVE


# --- what selfcare shows ----------------------------------------------------------------------

def test_awaiting_acceptance(db, world):
    _, customer, svcs, agreement = world
    accepted = issue(db, make_type(db, "X"), customer, svcs)
    rules.accept_by_staff(db, accepted, operator_actor=Actor.operator(OperatorFactory()))
    rules.create_agreement(db, make_type(db, "D"), customer, svcs, actor=SYSTEM)
    issue(db, make_type(db, "T"), CustomerFactory(), [])
    assert rules.awaiting_acceptance(db, customer.id) == [agreement]
