"""Usage readings sent in batches: checked whole, saved whole, a retry changes nothing; the
rating engine bills what was stored; a month already invoiced takes no more readings."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from portal.domain.billing import protect_issued_invoices, run_billing, unprotect_issued_invoices
from portal.domain.usage import MAX_BATCH, Reading, ReadingsRefused, ingest_readings
from portal.models import AuditEntry, ChargeKind, UsageInstance, UsageReading
from tests.domain.billing_fixtures import ACTOR, World, service_charges, world_fixture  # noqa: F401
from tests.factories import LocationFactory


@pytest.fixture(autouse=True)
def guard():
    installed = protect_issued_invoices()
    yield
    if installed:
        unprotect_issued_invoices()


def at(day: int, hour: int = 12, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def readings(svc, *values, metric="data", month=11):
    return [Reading(svc.id, metric, at(day, month=month), D(v)) for day, v in enumerate(values, start=2)]


def stored(db) -> int:
    return db.scalar(select(func.count()).select_from(UsageReading))


def test_a_batch_is_stored_and_billed(db, world: World):
    tracker, item = world.tracker(amount_per_step="2.50")
    svc, _inst = world.metered_service(tracker)
    db.commit()
    result = ingest_readings(db, ACTOR, readings(svc, "1.5", "2.5", "3"))
    db.commit()
    assert (result.received, result.stored, result.already_stored) == (3, 3, 0)
    run_billing(db, "2026-11", actor=ACTOR, issue_date=date(2026, 12, 1))
    (charge,) = service_charges(svc.id, ChargeKind.USAGE)
    assert charge.quantity == 7 and charge.net == D("17.50")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "usage.ingested")).one()
    assert entry.changes["stored"] == 3


def test_the_tracker_is_attached_on_the_first_reading(db, world: World):
    tracker, _item = world.tracker()
    definition = world.definition(price="0", usage_tracker_id=tracker.id)
    svc = world.service(definition=definition)
    db.commit()
    ingest_readings(db, ACTOR, readings(svc, "1"))
    assert db.scalar(select(UsageInstance.tracker_id).where(UsageInstance.customer_service_id == svc.id)) == tracker.id


def test_sending_a_batch_again_changes_nothing(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    db.commit()
    ingest_readings(db, ACTOR, readings(svc, "1", "2"))
    db.commit()
    again = ingest_readings(db, ACTOR, readings(svc, "1", "2", "4"))
    assert (again.stored, again.already_stored) == (1, 2)
    assert stored(db) == 3


def test_a_repeat_inside_one_batch_is_stored_once(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    db.commit()
    same = Reading(svc.id, "data", at(3), D("5"))
    assert ingest_readings(db, ACTOR, [same, same]).stored == 1


def test_another_value_for_a_stored_time_refuses_the_whole_batch(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    db.commit()
    ingest_readings(db, ACTOR, readings(svc, "1"))
    db.commit()
    with pytest.raises(ReadingsRefused) as refused:
        ingest_readings(db, ACTOR, [Reading(svc.id, "data", at(20), D("9")), Reading(svc.id, "data", at(2), D("7"))])
    assert set(refused.value.errors) == {"readings.1.value"}
    db.rollback()
    assert stored(db) == 1


def test_each_wrong_reading_is_named(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    plain = world.service()
    db.commit()
    future = datetime.now(UTC) + timedelta(days=1)
    batch = [Reading(svc.id, "data", at(2), D("1")),
             Reading(999_999, "data", at(2), D("1")),
             Reading(plain.id, "data", at(2), D("1")),
             Reading(svc.id, "voice", at(2), D("1")),
             Reading(svc.id, "data", future, D("1")),
             Reading(svc.id, "data", at(5), D("1")), Reading(svc.id, "data", at(5), D("2"))]
    with pytest.raises(ReadingsRefused) as refused:
        ingest_readings(db, ACTOR, batch)
    assert set(refused.value.errors) == {"readings.1.service_id", "readings.2.service_id", "readings.3.metric",
                                         "readings.4.measured_at", "readings.6.measured_at"}
    db.rollback()
    assert stored(db) == 0


def test_a_service_outside_the_locations_is_not_found(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    elsewhere = LocationFactory()
    db.commit()
    with pytest.raises(ReadingsRefused) as refused:
        ingest_readings(db, ACTOR, readings(svc, "1"), location_ids=[elsewhere.id])
    assert refused.value.errors == {"readings.0.service_id": "No such service."}


def test_a_month_already_invoiced_takes_no_more_readings(db, world: World):
    tracker, _item = world.tracker()
    svc, _inst = world.metered_service(tracker)
    db.commit()
    ingest_readings(db, ACTOR, readings(svc, "3"))
    db.commit()
    run_billing(db, "2026-11", actor=ACTOR, issue_date=date(2026, 12, 1))
    with pytest.raises(ReadingsRefused) as refused:
        ingest_readings(db, ACTOR, [Reading(svc.id, "data", at(20), D("1"))])
    assert set(refused.value.errors) == {"readings.0.measured_at"}
    db.rollback()
    assert ingest_readings(db, ACTOR, [Reading(svc.id, "data", at(1, month=12), D("1"))]).stored == 1


def test_batch_size_is_bounded(db):
    with pytest.raises(ReadingsRefused):
        ingest_readings(db, ACTOR, [])
    with pytest.raises(ReadingsRefused):
        ingest_readings(db, ACTOR, [Reading(1, "data", at(2), D(1))] * (MAX_BATCH + 1))
