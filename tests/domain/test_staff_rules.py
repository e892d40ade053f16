"""Rules the staff pages added to the lifecycle and agreement modules: checking a step
without writing (for confirmation pages) and editing an agreement type."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import DomainError
from portal.domain import agreements as rules
from portal.domain import lifecycle as lc
from portal.domain.actors import Actor
from portal.models import AgreementType, AuditEntry, ServiceEvent, ServiceState
from tests.domain.lifecycle_fixtures import service
from tests.factories import ServiceDefinitionFactory

SYSTEM = Actor.system("test")
TODAY = date(2026, 5, 10)
TEMPLATES = ["annex.html", "standard.html"]


def _events(db) -> int:
    return db.scalar(select(func.count()).select_from(ServiceEvent))


def test_check_cancel_returns_the_date_or_refuses_like_cancel(db):
    s = service()
    assert lc.check_cancel(s, on=None, today=TODAY) == TODAY + timedelta(days=30)
    with pytest.raises(lc.TransitionNotAllowed) as exc:
        lc.check_cancel(s, on=TODAY, today=TODAY)
    assert exc.value.field == "on"
    assert lc.check_cancel(s, on=TODAY, waive_notice=True, today=TODAY) == TODAY
    with pytest.raises(lc.TransitionNotAllowed):
        lc.check_cancel(service(state=ServiceState.CANCELLED), on=None, today=TODAY)
    assert _events(db) == 0
    lc.cancel(db, s, actor=SYSTEM, reason="x", today=TODAY)
    with pytest.raises(lc.TransitionNotAllowed, match="already has a cancellation scheduled"):
        lc.check_cancel(s, on=None, waive_notice=True, today=TODAY)


def test_check_change_plan_returns_the_date_or_refuses_like_change_plan(db):
    target, other = ServiceDefinitionFactory(), ServiceDefinitionFactory()
    s = service(billing_from=date(2026, 1, 1))
    s.definition.allowed_targets = [target]
    assert lc.check_change_plan(s, target, on=None, today=TODAY) == date(2026, 6, 1)
    with pytest.raises(lc.TransitionNotAllowed) as exc:
        lc.check_change_plan(s, other, on=None, today=TODAY)
    assert exc.value.field == "target"
    with pytest.raises(lc.TransitionNotAllowed) as exc:
        lc.check_change_plan(s, target, on=date(2025, 12, 1), today=TODAY)
    assert exc.value.field == "on"
    with pytest.raises(lc.TransitionNotAllowed):
        lc.check_change_plan(service(state=ServiceState.ORDERED), target, on=None, today=TODAY)
    assert _events(db) == 0


def _type(db, **kw) -> AgreementType:
    t = AgreementType(name=kw.pop("name", "Internet"), code=kw.pop("code", "SA"), valid_from=date(2020, 1, 1), **kw)
    db.add(t)
    db.flush()
    return t


def _update(db, t, **changes):
    values = dict(name=t.name, template=t.template, number_format=t.number_format, remind_days=t.remind_days,
                  block_days=t.block_days, requires_confirmation=t.requires_confirmation)
    values.update(changes)
    return rules.update_agreement_type(db, t, actor=SYSTEM, templates=TEMPLATES, **values)


def test_update_agreement_type_audits_before_and_after(db):
    t = _type(db)
    _update(db, t, name="Internet 2026", number_format="I-{year}-{seq:04d}", remind_days=14, block_days=30,
            template="annex.html", requires_confirmation=False)
    assert (t.name, t.number_format, t.remind_days, t.block_days, t.template, t.requires_confirmation) == \
        ("Internet 2026", "I-{year}-{seq:04d}", 14, 30, "annex.html", False)
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "agreement_type.updated")).all()
    assert entry.entity_id == t.id and entry.changes["name"] == ["Internet", "Internet 2026"]
    assert entry.changes["remind_days"] == [None, 14] and "code" not in entry.changes
    _update(db, t)  # nothing changed: no entry
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == 1


@pytest.mark.parametrize("changes, field", [
    ({"name": " "}, "name"),
    ({"name": "other"}, "name"),  # names are unique regardless of case
    ({"template": "../base.html"}, "template"),
    ({"number_format": "{year}/{nope}"}, "number_format"),
    ({"number_format": "{year}"}, "number_format"),
    ({"remind_days": 0}, "remind_days"),
    ({"block_days": 5000}, "block_days"),
    ({"remind_days": 10, "block_days": 10}, "block_days"),
])
def test_update_agreement_type_refusals(db, changes, field):
    t = _type(db)
    _type(db, name="Other", code="OT")
    with pytest.raises(DomainError) as exc:
        _update(db, t, **changes)
    assert exc.value.field == field
    assert t.name == "Internet" and t.number_format == "{year}/{seq:05d}"
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == 0
