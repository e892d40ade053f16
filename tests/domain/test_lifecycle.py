"""The service lifecycle rules (portal/domain/lifecycle.py; domain.md §3)."""
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain import lifecycle as lc
from portal.models import (
    AuditEntry,
    Charge,
    ChargeKind,
    CustomerService,
    Period,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from tests.domain.lifecycle_fixtures import SYSTEM, service
from tests.factories import CustomerFactory, ServiceDefinitionFactory

ORDERED, ACTIVE, BLOCKED, CANCELLED = (ServiceState.ORDERED, ServiceState.ACTIVE, ServiceState.BLOCKED,
                                       ServiceState.CANCELLED)
TODAY = date(2025, 3, 10)


def _audit(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


# -- the rules table, every state × every action ---------------------------------------------------

def _do(db, action, svc):
    if action == "activate":
        return lc.activate(db, svc, actor=SYSTEM, on=TODAY, today=TODAY)
    if action == "block":
        return lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    if action == "unblock":
        return lc.unblock(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    if action == "cancel":
        return lc.cancel(db, svc, actor=SYSTEM, on=TODAY, reason="test", waive_notice=True, today=TODAY)
    if action == "change_plan":
        target = ServiceDefinitionFactory()
        svc.definition.allowed_targets.append(target)
        return lc.change_plan(db, svc, target, actor=SYSTEM, on=TODAY, today=TODAY)
    raise AssertionError(action)


ALLOWED = {
    ("activate", ORDERED): ACTIVE,
    ("block", ACTIVE): BLOCKED,
    ("unblock", BLOCKED): ACTIVE,
    ("cancel", ORDERED): CANCELLED,
    ("cancel", ACTIVE): CANCELLED,
    ("cancel", BLOCKED): CANCELLED,
    ("change_plan", ACTIVE): CANCELLED,  # the old service closes; its successor keeps the state
    ("change_plan", BLOCKED): CANCELLED,
}


@pytest.mark.parametrize("state", list(ServiceState))
@pytest.mark.parametrize("action", list(lc.RULES))
def test_rules_table(db, action, state):
    svc = service(state=state, billing_from=date(2024, 1, 1))
    before_events = len(svc.events)
    if (action, state) in ALLOWED:
        _do(db, action, svc)
        assert svc.state == ALLOWED[(action, state)]
        assert len(svc.events) == before_events + 1
        event = svc.events[-1]
        assert event.done_at is not None and event.scheduled_for is None
        assert event.from_state == state and event.actor_name == "test"
        assert db.scalar(select(AuditEntry).where(AuditEntry.entity_id == svc.id,
                                                  AuditEntry.customer_id == svc.customer_id))
    else:
        with pytest.raises(lc.TransitionNotAllowed):
            _do(db, action, svc)
        assert svc.state == state
        assert len(svc.events) == before_events
        assert action not in lc.allowed_actions(svc)


# -- order and activate -------------------------------------------------------------------------------

def test_order_then_activate_sets_dates_and_commitment(db):
    customer = CustomerFactory()
    definition = ServiceDefinitionFactory(commitment_months=24)
    svc = lc.order_service(db, customer, definition, actor=SYSTEM, ordered_on=date(2025, 1, 31),
                           installation_street="Dlouhá 5", installation_city="Brno", reason="web order")
    assert svc.state == ORDERED and svc.ordered_on == date(2025, 1, 31)
    assert [e.kind for e in svc.events] == [ServiceEventKind.ORDERED]
    assert _audit(db, "service.ordered")[0].customer_id == customer.id

    lc.activate(db, svc, actor=SYSTEM, on=date(2025, 2, 3), today=TODAY)
    assert svc.state == ACTIVE
    assert svc.activated_on == svc.billing_from == date(2025, 2, 3)
    assert svc.commitment_until == date(2027, 2, 3)
    audit = _audit(db, "service.activated")[0]
    assert audit.changes["state"] == ["ordered", "active"]


def test_activation_without_commitment_leaves_it_empty(db):
    svc = service(state=ORDERED)
    lc.activate(db, svc, actor=SYSTEM, on=TODAY, today=TODAY)
    assert svc.commitment_until is None


def test_order_refuses_inactive_or_not_yet_valid_definition(db):
    customer = CustomerFactory()
    with pytest.raises(lc.TransitionNotAllowed):
        lc.order_service(db, customer, ServiceDefinitionFactory(active=False), actor=SYSTEM, ordered_on=TODAY)
    with pytest.raises(lc.TransitionNotAllowed):
        lc.order_service(db, customer, ServiceDefinitionFactory(valid_from=date(2026, 1, 1)), actor=SYSTEM,
                         ordered_on=TODAY)
    with pytest.raises(lc.TransitionNotAllowed):
        lc.order_service(db, customer, ServiceDefinitionFactory(valid_to=date(2024, 12, 31)), actor=SYSTEM,
                         ordered_on=TODAY)


def test_block_and_unblock_need_a_reason(db):
    svc = service()
    with pytest.raises(DomainError) as err:
        lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="  ", today=TODAY)
    assert err.value.field == "reason"
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="router stolen", today=TODAY)
    with pytest.raises(DomainError):
        lc.unblock(db, svc, actor=SYSTEM, on=TODAY, reason="", today=TODAY)
    assert svc.events[-1].reason == "router stolen"


# -- scheduled steps ------------------------------------------------------------------------------------

def test_future_steps_are_scheduled_and_applied_on_their_day_in_order(db):
    svc = service()
    block = lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 20), reason="vacation", today=TODAY)
    assert svc.state == ACTIVE  # nothing changes before the day
    assert block.scheduled_for == date(2025, 3, 20) and block.done_at is None
    assert _audit(db, "service.blocked_scheduled")

    # An unblock cannot be scheduled while the service is active (rules are checked now)…
    with pytest.raises(lc.TransitionNotAllowed):
        lc.unblock(db, svc, actor=SYSTEM, on=date(2025, 4, 1), reason="back", today=TODAY)

    assert lc.apply_scheduled(db, today=date(2025, 3, 19), actor=SYSTEM) == 0
    assert svc.state == ACTIVE and block.done_at is None

    assert lc.apply_scheduled(db, today=date(2025, 3, 20), actor=SYSTEM) == 1
    assert svc.state == BLOCKED and block.done_at is not None
    assert _audit(db, "service.blocked")[0].changes["scheduled_by"] == "test"

    # …and once blocked, an unblock can be scheduled; a second apply does nothing twice.
    ev = lc.unblock(db, svc, actor=SYSTEM, on=date(2025, 4, 1), reason="back", today=date(2025, 3, 21))
    assert lc.apply_scheduled(db, today=date(2025, 3, 31), actor=SYSTEM) == 0
    assert lc.apply_scheduled(db, today=date(2025, 4, 5), actor=SYSTEM) == 1
    assert svc.state == ACTIVE and ev.done_at is not None
    assert lc.apply_scheduled(db, today=date(2025, 4, 5), actor=SYSTEM) == 0


def test_scheduled_activation_and_several_due_steps_apply_oldest_first(db):
    svc = service(state=ORDERED)
    lc.activate(db, svc, actor=SYSTEM, on=date(2025, 3, 15), today=TODAY)
    assert svc.state == ORDERED and svc.billing_from is None
    # applied much later, both steps: the activation (15th) before nothing else; state checks hold
    assert lc.apply_scheduled(db, today=date(2025, 4, 1), actor=SYSTEM) == 1
    assert svc.state == ACTIVE and svc.billing_from == date(2025, 3, 15)


def test_a_scheduled_step_that_no_longer_fits_is_refused_not_applied(db):
    svc = service()
    ev = lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 20), reason="planned", today=TODAY)
    lc.cancel(db, svc, actor=SYSTEM, on=TODAY, reason="moved away", waive_notice=True, today=TODAY)
    assert lc.apply_scheduled(db, today=date(2025, 3, 20), actor=SYSTEM) == 0
    assert svc.state == CANCELLED
    assert ev.done_at is not None and "cannot be blocked" in ev.details["refused"]
    assert _audit(db, "service.blocked_refused")


# -- cancellation ------------------------------------------------------------------------------------------

def test_earliest_end_date_is_notice_or_commitment(db):
    svc = service(definition=ServiceDefinitionFactory(notice_days=30))
    assert lc.earliest_end_date(svc, TODAY) == date(2025, 4, 9)
    svc.commitment_until = date(2025, 12, 31)
    assert lc.earliest_end_date(svc, TODAY) == date(2025, 12, 31)
    svc.commitment_until = date(2025, 3, 31)
    assert lc.earliest_end_date(svc, TODAY) == date(2025, 4, 9)


def test_cancel_before_earliest_date_is_refused_naming_it_unless_waived(db):
    svc = service(definition=ServiceDefinitionFactory(notice_days=30), commitment_until=date(2025, 6, 30))
    with pytest.raises(lc.TransitionNotAllowed) as err:
        lc.cancel(db, svc, actor=SYSTEM, on=date(2025, 4, 30), reason="moving", today=TODAY)
    assert "2025-06-30" in str(err.value)
    assert svc.state == ACTIVE and svc.events == []

    lc.cancel(db, svc, actor=SYSTEM, on=TODAY, reason="customer died", waive_notice=True, today=TODAY)
    assert svc.state == CANCELLED and svc.cancelled_on == svc.billing_to == TODAY
    assert svc.events[-1].details["waived_notice"] is True


def test_cancel_defaults_to_earliest_date_scheduled_with_a_request_event(db):
    svc = service(definition=ServiceDefinitionFactory(notice_days=30))
    ev = lc.cancel(db, svc, actor=SYSTEM, reason="too slow", today=TODAY)
    assert ev.scheduled_for == date(2025, 4, 9) and ev.done_at is None
    assert svc.state == ACTIVE and svc.billing_to is None
    kinds = [(e.kind, e.done_at is not None) for e in svc.events]
    assert kinds == [(ServiceEventKind.CANCEL_REQUESTED, True), (ServiceEventKind.CANCELLED, False)]
    assert svc.events[0].details["cancel_on"] == "2025-04-09"
    assert _audit(db, "service.cancel_requested")

    # a second cancellation while one is pending is refused
    with pytest.raises(lc.TransitionNotAllowed):
        lc.cancel(db, svc, actor=SYSTEM, reason="again", today=TODAY)

    assert lc.apply_scheduled(db, today=date(2025, 4, 8), actor=SYSTEM) == 0
    assert lc.apply_scheduled(db, today=date(2025, 4, 9), actor=SYSTEM) == 1
    assert svc.state == CANCELLED
    assert svc.cancelled_on == svc.billing_to == date(2025, 4, 9)


def test_cancel_an_order_needs_no_billing_dates(db):
    svc = service(state=ORDERED)
    lc.cancel(db, svc, actor=SYSTEM, on=TODAY, reason="changed mind", waive_notice=True, today=TODAY)
    assert svc.state == CANCELLED and svc.billing_to is None and svc.cancelled_on == TODAY


# -- plan change ----------------------------------------------------------------------------------------------

def _changeable(state=ACTIVE, **kwargs):
    old = ServiceDefinitionFactory(name="Internet 100", price=Decimal("500.00"))
    new = ServiceDefinitionFactory(name="Internet 500", price=Decimal("800.00"), commitment_months=12)
    old.allowed_targets.append(new)
    svc = service(state=state, definition=old, installation_street="Krátká 1", installation_city="Brno",
                  variable_symbol="123", **kwargs)
    return svc, new


def test_change_only_to_allowed_targets(db):
    svc, _ = _changeable()
    other = ServiceDefinitionFactory()
    with pytest.raises(lc.TransitionNotAllowed) as err:
        lc.change_plan(db, svc, other, actor=SYSTEM, on=TODAY, today=TODAY)
    assert err.value.field == "target"
    assert svc.state == ACTIVE and svc.replaced_by_id is None


@pytest.mark.parametrize("state", [ACTIVE, BLOCKED])
def test_immediate_change_closes_old_billing_and_opens_new_keeping_state(db, state):
    svc, target = _changeable(state=state, commitment_until=date(2025, 5, 31))
    new = lc.change_plan(db, svc, target, actor=SYSTEM, on=TODAY, reason="faster", today=TODAY)
    assert svc.state == CANCELLED and svc.billing_to == date(2025, 3, 9) and svc.replaced_by_id == new.id
    assert new.state == state and new.billing_from == TODAY and new.billing_to is None
    assert new.definition_id == target.id and new.customer_id == svc.customer_id
    assert (new.installation_street, new.variable_symbol) == ("Krátká 1", "123")
    assert new.commitment_until == date(2026, 3, 10)  # the target's 12 months from the change
    assert svc.events[-1].kind == new.events[-1].kind == ServiceEventKind.CHANGED
    assert new.events[-1].to_state == state
    assert len(_audit(db, "service.changed")) == 2


def test_change_defaults_to_next_period_and_is_scheduled(db):
    svc, target = _changeable()
    new = lc.change_plan(db, svc, target, actor=SYSTEM, today=TODAY)
    assert new.state == ORDERED and new.billing_from is None  # waiting for its day
    assert svc.state == ACTIVE and svc.billing_to is None
    pending = [e for e in svc.events if e.done_at is None]
    assert pending[0].scheduled_for == date(2025, 4, 1)

    # a cancellation while the change waits is refused
    with pytest.raises(lc.TransitionNotAllowed):
        lc.cancel(db, svc, actor=SYSTEM, reason="x", waive_notice=True, today=TODAY)

    assert lc.apply_scheduled(db, today=date(2025, 3, 31), actor=SYSTEM) == 0
    lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 20), reason="abuse", today=date(2025, 3, 20))
    assert lc.apply_scheduled(db, today=date(2025, 4, 1), actor=SYSTEM) == 1
    assert svc.state == CANCELLED and svc.billing_to == date(2025, 3, 31)
    assert new.state == BLOCKED and new.billing_from == date(2025, 4, 1)  # the state at the time
    assert all(e.done_at is not None for e in svc.events + new.events)


def test_quarterly_service_changes_at_next_quarter_by_default(db):
    svc, target = _changeable()
    svc.definition.period = Period.QUARTERLY
    lc.change_plan(db, svc, target, actor=SYSTEM, today=date(2025, 2, 14))
    assert svc.events[-1].scheduled_for == date(2025, 4, 1)


def test_change_of_ordered_or_on_billing_start_is_refused(db):
    svc, target = _changeable(state=ORDERED)
    with pytest.raises(lc.TransitionNotAllowed):
        lc.change_plan(db, svc, target, actor=SYSTEM, on=TODAY, today=TODAY)
    svc2, target2 = _changeable(billing_from=TODAY)
    with pytest.raises(lc.TransitionNotAllowed):
        lc.change_plan(db, svc2, target2, actor=SYSTEM, on=TODAY, today=TODAY)


def test_refused_scheduled_change_withdraws_the_successor(db):
    svc, target = _changeable()
    new = lc.change_plan(db, svc, target, actor=SYSTEM, on=date(2025, 4, 1), today=TODAY)
    target.active = False
    assert lc.apply_scheduled(db, today=date(2025, 4, 1), actor=SYSTEM) == 0
    assert svc.state == ACTIVE and svc.replaced_by_id is None
    assert new.state == CANCELLED


def test_plan_change_preview_prorates_rest_of_period(db):
    svc, target = _changeable()
    preview = lc.plan_change_preview(svc, target, date(2025, 4, 21))
    # 10 of 30 April days: 500 → 166.67, 800 → 266.67 (gross; prices include 21 % VAT)
    assert preview["days"] == 10 and preview["days_in_period"] == 30
    assert preview["old"]["gross"] == Decimal("166.67")
    assert preview["new"]["gross"] == Decimal("266.67")
    assert preview["difference"]["gross"] == Decimal("100.00")
    assert preview["old"]["net"] + preview["old"]["vat"] == preview["old"]["gross"]
    assert preview["currency"] == "CZK"
    full = lc.plan_change_preview(svc, target, date(2025, 5, 1))
    assert full["difference"]["gross"] == Decimal("300.00")


# -- credit of blocked days -------------------------------------------------------------------------------------

def test_unblock_can_credit_the_blocked_days(db):
    svc = service(definition=ServiceDefinitionFactory(price=Decimal("605.00"), vat_rate=Decimal("21.00")))
    lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 22), reason="outage", today=date(2025, 3, 22))
    ev = lc.unblock(db, svc, actor=SYSTEM, on=date(2025, 4, 6), reason="fixed", credit_blocked_days=True,
                    today=date(2025, 4, 6))
    charge = db.scalar(select(Charge).where(Charge.kind == ChargeKind.CREDIT))
    # blocked 22–31 March (10/31 of 605 = 195.16) and 1–5 April (5/30 of 605 = 100.83)
    assert charge.gross == Decimal("-295.99")
    assert charge.net + charge.vat == charge.gross and charge.vat < 0
    assert charge.discriminator == str(ev.id)
    assert charge.customer_service_id == svc.id and charge.invoice_line_id is None  # waits for billing
    assert (charge.period_start, charge.period_end) == (date(2025, 3, 22), date(2025, 4, 5))
    assert ev.details["credit_charge_id"] == charge.id


def test_unblock_without_credit_charges_nothing(db):
    svc = service()
    lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 1), reason="x", today=TODAY)
    lc.unblock(db, svc, actor=SYSTEM, on=TODAY, reason="y", today=TODAY)
    assert db.scalar(select(Charge)) is None


def test_events_and_services_survive_a_round_trip(db):
    svc = service()
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="x", today=TODAY)
    db.commit()
    db.expire_all()
    again = db.get(CustomerService, svc.id)
    assert again.state == BLOCKED
    assert db.scalar(select(ServiceEvent).where(ServiceEvent.customer_service_id == svc.id)).reason == "x"


def test_cli_apply_scheduled(app, db):
    svc = service()
    lc.block(db, svc, actor=SYSTEM, on=date(2025, 3, 20), reason="vacation", today=TODAY)
    db.commit()
    cli = app.test_cli_runner()
    out = cli.invoke(args=["services", "apply-scheduled", "--date", "2025-03-19"])
    assert out.exit_code == 0 and "0 scheduled steps" in out.output
    out = cli.invoke(args=["services", "apply-scheduled", "--date", "2025-03-20"])
    assert out.exit_code == 0 and "1 scheduled step carried out" in out.output, out.output
    db.expire_all()
    assert db.get(CustomerService, svc.id).state == BLOCKED
