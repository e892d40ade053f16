"""Bulk lifecycle steps: the filter, the preview (affected and skipped, with why), its
signature, and apply — which carries out exactly what was previewed or refuses."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.domain import bulk
from portal.domain import lifecycle as lc
from portal.domain.actors import Actor
from portal.models import AuditEntry, ServiceState
from tests.domain.lifecycle_fixtures import service
from tests.factories import CustomerFactory, LocationFactory, ServiceDefinitionFactory

SYSTEM = Actor.system("test")
TODAY = date(2026, 5, 10)


def _by_ids(db, *services, location_ids=None):
    return bulk.services_by_ids(db, [s.id for s in services], location_ids)


def test_preview_affected_and_skipped_with_why(db):
    active, blocked, cancelled = service(), service(state=ServiceState.BLOCKED), service(state=ServiceState.CANCELLED)
    p = bulk.preview(_by_ids(db, active, blocked, cancelled), "block", on=TODAY, today=TODAY)
    assert [r.service.id for r in p.affected] == [active.id]
    why = {r.service.id: r.why for r in p.skipped}
    assert why == {blocked.id: "The service is blocked.", cancelled.id: "The service is cancelled."}
    assert p.ids == sorted([active.id, blocked.id, cancelled.id])


def test_cancel_preview_checks_notice_period_and_pending_steps(db):
    early, scheduled = service(), service()
    lc.cancel(db, scheduled, actor=SYSTEM, reason="x", today=TODAY)  # scheduled for the earliest end
    on = TODAY + timedelta(days=5)
    p = bulk.preview(_by_ids(db, early, scheduled), "cancel", on=on, today=TODAY)
    why = {r.service.id: r.why for r in p.rows}
    assert why[early.id].startswith("The earliest possible end date is")
    assert why[scheduled.id].startswith("The earliest possible end date is")
    waived = bulk.preview(_by_ids(db, early, scheduled), "cancel", on=on, today=TODAY, waive_notice=True)
    why = {r.service.id: r.why for r in waived.rows}
    assert why[early.id] == "" and why[scheduled.id].startswith("A step is already scheduled")
    # the waiver only means something for cancel
    assert bulk.preview(_by_ids(db, early), "block", on=TODAY, today=TODAY, waive_notice=True).waive_notice is False


def test_unknown_action_and_empty_selection_are_refused(db):
    s = service()
    with pytest.raises(bulk.BulkError) as exc:
        bulk.preview(_by_ids(db, s), "delete", on=TODAY, today=TODAY)
    assert exc.value.field == "action"
    with pytest.raises(bulk.BulkError):
        bulk.preview([], "block", on=TODAY, today=TODAY)


def test_signature_is_stable_and_follows_the_outcome(db):
    a, b = service(), service()
    first = bulk.preview(_by_ids(db, a, b), "block", on=TODAY, today=TODAY).signature
    assert bulk.preview(_by_ids(db, b, a), "block", on=TODAY, today=TODAY).signature == first
    assert bulk.preview(_by_ids(db, a, b), "block", on=TODAY + timedelta(days=1), today=TODAY).signature != first
    assert bulk.preview(_by_ids(db, a), "block", on=TODAY, today=TODAY).signature != first
    lc.block(db, b, actor=SYSTEM, on=TODAY + timedelta(days=3), reason="later", today=TODAY)  # a pending step
    assert bulk.preview(_by_ids(db, a, b), "block", on=TODAY, today=TODAY).signature != first


def test_apply_carries_out_exactly_the_preview(db):
    a, b, c = service(), service(), service(state=ServiceState.BLOCKED)
    p = bulk.preview(_by_ids(db, a, b, c), "block", on=TODAY, today=TODAY)
    result = bulk.apply(db, _by_ids(db, a, b, c), "block", on=TODAY, reason="Maintenance", actor=SYSTEM,
                        signature=p.signature, today=TODAY)
    assert result.applied == [r.service.id for r in p.affected] == [a.id, b.id]
    assert result.skipped == 1 and not result.scheduled
    assert a.state == b.state == ServiceState.BLOCKED
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action.in_(["service.blocked", "services.bulk"]))).all()
    assert sorted(e.action for e in entries) == ["service.blocked", "service.blocked", "services.bulk"]
    summary = next(e for e in entries if e.action == "services.bulk")
    assert summary.changes["service_ids"] == [a.id, b.id] and summary.changes["skipped_ids"] == [c.id]
    assert summary.changes["signature"] == p.signature


def test_apply_refuses_when_the_services_changed_since_the_preview(db):
    a, b = service(), service()
    p = bulk.preview(_by_ids(db, a, b), "block", on=TODAY, today=TODAY)
    lc.block(db, b, actor=SYSTEM, on=TODAY, reason="meanwhile", today=TODAY)
    with pytest.raises(bulk.PreviewChanged):
        bulk.apply(db, _by_ids(db, a, b), "block", on=TODAY, reason="x", actor=SYSTEM, signature=p.signature,
                   today=TODAY)
    assert a.state == ServiceState.ACTIVE
    with pytest.raises(bulk.PreviewChanged):
        bulk.apply(db, _by_ids(db, a), "block", on=TODAY, reason="x", actor=SYSTEM, signature="0" * 64, today=TODAY)


def test_apply_needs_a_reason_and_schedules_future_dates(db):
    a = service(state=ServiceState.BLOCKED)
    on = TODAY + timedelta(days=7)
    p = bulk.preview(_by_ids(db, a), "unblock", on=on, today=TODAY)
    with pytest.raises(bulk.BulkError) as exc:
        bulk.apply(db, _by_ids(db, a), "unblock", on=on, reason=" ", actor=SYSTEM, signature=p.signature, today=TODAY)
    assert exc.value.field == "reason"
    result = bulk.apply(db, _by_ids(db, a), "unblock", on=on, reason="Paid", actor=SYSTEM, signature=p.signature,
                        today=TODAY)
    assert result.scheduled and a.state == ServiceState.BLOCKED
    assert [e.scheduled_for for e in lc.pending_events(a)] == [on]


def test_bulk_cancel_with_waiver(db):
    a = service()
    p = bulk.preview(_by_ids(db, a), "cancel", on=TODAY, today=TODAY, waive_notice=True)
    bulk.apply(db, _by_ids(db, a), "cancel", on=TODAY, reason="Closing", actor=SYSTEM, signature=p.signature,
               today=TODAY, waive_notice=True)
    assert a.state == ServiceState.CANCELLED and a.billing_to == TODAY


def test_filter_and_location_scope(db):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    fast = ServiceDefinitionFactory()
    novak = CustomerFactory(location=loc_a, last_name="Novák", name_key="novak", customer_number="C700001")
    other = CustomerFactory(location=loc_b, last_name="Nováček", name_key="novacek", customer_number="C700002")
    s1 = service(novak, definition=fast)
    s2 = service(other, state=ServiceState.BLOCKED)

    def ids(flt, scope=None):
        return {s.id for s in db.scalars(bulk.filtered_services(flt, scope))}

    assert ids(bulk.ServiceFilter(text="Nov")) == {s1.id, s2.id}
    assert ids(bulk.ServiceFilter(text="nováč")) == {s2.id}
    assert ids(bulk.ServiceFilter(text="C700001")) == {s1.id}
    assert ids(bulk.ServiceFilter(text="100%_")) == set()  # LIKE wildcards are literal
    assert ids(bulk.ServiceFilter(state=ServiceState.BLOCKED)) == {s2.id}
    assert ids(bulk.ServiceFilter(definition_id=fast.id)) == {s1.id}
    assert ids(bulk.ServiceFilter(location_id=loc_b.id)) == {s2.id}
    assert ids(bulk.ServiceFilter(), scope={loc_a.id}) == {s1.id}
    # ids from another location do not exist for the operator
    assert [s.id for s in bulk.services_by_ids(db, [s1.id, s2.id], {loc_a.id})] == [s1.id]
    with pytest.raises(bulk.BulkError):
        bulk.services_by_filter(db, bulk.ServiceFilter(), None)  # never "everything"
    assert [s.id for s in bulk.services_by_filter(db, bulk.ServiceFilter(text="Nov"), {loc_b.id})] == [s2.id]


def test_too_many_services_are_refused(db, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_SERVICES", 2)
    services = [service() for _ in range(3)]
    with pytest.raises(bulk.BulkError):
        bulk.services_by_ids(db, [s.id for s in services], None)
    with pytest.raises(bulk.BulkError):
        bulk.services_by_filter(db, bulk.ServiceFilter(state=ServiceState.ACTIVE), None)
