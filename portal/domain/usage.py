"""Usage readings arriving from a meter or collector (the usage-billing system's readings): a
batch is checked whole and saved whole, and sending it again changes nothing. The rating
engine (portal.domain.billing) bills what is stored, per item and month, in arrears."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import (
    Charge,
    ChargeKind,
    Customer,
    CustomerService,
    ServiceDefinition,
    UsageInstance,
    UsageItem,
    UsageReading,
)
from portal.models.base import utcnow

MAX_BATCH = 10_000
# A meter's clock may run a little ahead of ours; a reading further in the future is a mistake.
CLOCK_SKEW = timedelta(minutes=5)
_INSTANCES_PER_QUERY = 500


class ReadingsRefused(DomainError):
    """Some readings of a batch are wrong: `errors` maps "readings.<n>.<field>" to its message;
    nothing of the batch was saved."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(str(_l("Some readings were refused; nothing was saved.")), field="readings")
        self.errors = errors


@dataclass(frozen=True)
class Reading:
    service_id: int
    metric: str
    measured_at: datetime
    value: Decimal


@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int
    already_stored: int  # the same value at the same time: a retry, nothing to do


def _meters(session: Session, service_ids: set[int], location_ids: list[int] | None):
    """service id → (tracker id, instance id or None, {metric: item}) for the services in scope
    whose definition is metered — the tracker the rating engine bills."""
    stmt = (select(CustomerService.id, ServiceDefinition.usage_tracker_id)
            .join(ServiceDefinition, ServiceDefinition.id == CustomerService.definition_id)
            .join(Customer, Customer.id == CustomerService.customer_id)
            .where(CustomerService.id.in_(service_ids)))
    if location_ids is not None:
        stmt = stmt.where(Customer.location_id.in_(location_ids))
    trackers = {sid: tid for sid, tid in session.execute(stmt)}
    tracker_ids = {t for t in trackers.values() if t}
    items: dict[int, dict[str, UsageItem]] = defaultdict(dict)
    if tracker_ids:
        for item in session.scalars(select(UsageItem).where(UsageItem.tracker_id.in_(tracker_ids))):
            items[item.tracker_id][item.metric] = item
    instances = {}
    if trackers:
        for iid, sid, tid in session.execute(select(UsageInstance.id, UsageInstance.customer_service_id,
                                                    UsageInstance.tracker_id)
                                             .where(UsageInstance.customer_service_id.in_(list(trackers)))):
            if trackers.get(sid) == tid:
                instances[sid] = iid
    return trackers, instances, items


def _billed_months(session: Session, keys: set[tuple[int, int]], earliest: datetime, latest: datetime):
    """(service id, item id) → [(period start, period end)] of usage already charged."""
    billed = defaultdict(list)
    service_ids = {sid for sid, _item in keys}
    if not service_ids:
        return billed
    for sid, item, start, end in session.execute(
        select(Charge.customer_service_id, Charge.discriminator, Charge.period_start, Charge.period_end)
        .where(Charge.customer_service_id.in_(service_ids), Charge.kind == ChargeKind.USAGE,
               Charge.period_end >= earliest.date(), Charge.period_start <= latest.date())
    ):
        if item.isdigit() and (sid, int(item)) in keys:
            billed[(sid, int(item))].append((start, end))
    return billed


def _stored(session: Session, keys: list[tuple[int, int, datetime]]) -> dict[tuple, Decimal]:
    """The stored value of each (instance, item, time) that already has one: the readings of
    those instances within the batch's time span (the unique index's leading columns), matched
    here — one query per few hundred instances, whatever the batch's size."""
    wanted = set(keys)
    earliest, latest = min(k[2] for k in keys), max(k[2] for k in keys)
    instance_ids = sorted({k[0] for k in keys})
    found: dict[tuple, Decimal] = {}
    for start in range(0, len(instance_ids), _INSTANCES_PER_QUERY):
        for i, m, t, v in session.execute(
            select(UsageReading.instance_id, UsageReading.item_id, UsageReading.measured_at, UsageReading.value)
            .where(UsageReading.instance_id.in_(instance_ids[start:start + _INSTANCES_PER_QUERY]),
                   UsageReading.measured_at >= earliest, UsageReading.measured_at <= latest)
        ):
            key = (i, m, _utc(t))
            if key in wanted:
                found[key] = Decimal(v)
    return found


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ingest_readings(session: Session, actor: Actor, readings: list[Reading], *,
                    location_ids: list[int] | None = None) -> IngestResult:
    """Store a batch of readings. Refused whole (ReadingsRefused, by row and field) when a
    reading names a service that is not there (or outside the actor's locations) or not
    metered, a metric its tracker does not have, a time in the future, a month whose usage is
    already invoiced (the reading would never be billed), or a time that already has another
    value (a correction is not a retry). The same value at the same time is a retry: skipped."""
    if not readings:
        raise ReadingsRefused({"readings": str(_l("Send at least one reading."))})
    if len(readings) > MAX_BATCH:
        raise ReadingsRefused({"readings": str(_l("At most %(count)d readings per batch.", count=MAX_BATCH))})
    now = utcnow()
    trackers, instances, items = _meters(session, {r.service_id for r in readings}, location_ids)
    errors: dict[str, str] = {}
    wanted: list[tuple[int, Reading, UsageItem]] = []
    seen: dict[tuple[int, str, datetime], int] = {}
    for n, reading in enumerate(readings):
        at = _utc(reading.measured_at)
        tracker_id = trackers.get(reading.service_id, 0)
        if reading.service_id not in trackers:
            errors[f"readings.{n}.service_id"] = str(_l("No such service."))
        elif not tracker_id:
            errors[f"readings.{n}.service_id"] = str(_l("This service is not metered."))
        elif reading.metric not in items[tracker_id]:
            errors[f"readings.{n}.metric"] = str(_l("The service's usage tracker has no metric “%(metric)s”.",
                                                    metric=reading.metric))
        elif at > now + CLOCK_SKEW:
            errors[f"readings.{n}.measured_at"] = str(_l("A reading cannot be in the future."))
        elif (key := (reading.service_id, reading.metric, at)) in seen and \
                readings[seen[key]].value != reading.value:
            errors[f"readings.{n}.measured_at"] = str(_l("Reading %(other)d has another value for this time.",
                                                         other=seen[key]))
        else:
            seen.setdefault((reading.service_id, reading.metric, at), n)
            wanted.append((n, reading, items[tracker_id][reading.metric]))
    if wanted:
        times = [_utc(r.measured_at) for _n, r, _i in wanted]
        billed = _billed_months(session, {(r.service_id, item.id) for _n, r, item in wanted}, min(times), max(times))
        for n, reading, item in wanted:
            day = _utc(reading.measured_at).date()
            if any(start <= day <= end for start, end in billed.get((reading.service_id, item.id), ())):
                errors[f"readings.{n}.measured_at"] = str(_l("The usage of this month is already invoiced."))
    keys = [(instances[r.service_id], item.id, _utc(r.measured_at)) for _n, r, item in wanted
            if r.service_id in instances]
    stored = _stored(session, keys) if keys else {}
    for n, reading, item in wanted:
        iid = instances.get(reading.service_id)
        value = stored.get((iid, item.id, _utc(reading.measured_at))) if iid else None
        if value is not None and value != reading.value:
            errors.setdefault(f"readings.{n}.value",
                              str(_l("A reading for this time is stored with another value (%(value)s).",
                                     value=f"{value.normalize():f}")))
    if errors:
        raise ReadingsRefused(errors)

    new_instances = {}
    for sid in {r.service_id for _n, r, _i in wanted} - set(instances):
        new_instances[sid] = UsageInstance(tracker_id=trackers[sid], customer_service_id=sid)
        session.add(new_instances[sid])
    if new_instances:
        session.flush()
        instances.update({sid: inst.id for sid, inst in new_instances.items()})
    rows, done = [], set()
    for _n, reading, item in wanted:
        key = (instances[reading.service_id], item.id, _utc(reading.measured_at))
        if key in stored or key in done:
            continue
        done.add(key)
        rows.append({"instance_id": key[0], "item_id": key[1], "measured_at": key[2], "value": reading.value,
                     "created_at": now, "updated_at": now})
    if rows:
        session.execute(insert(UsageReading), rows)  # one executemany, not an object per row
    result = IngestResult(received=len(readings), stored=len(rows), already_stored=len(readings) - len(rows))
    record(session, actor, "usage.ingested", "usage_reading", None,
           {"received": result.received, "stored": result.stored, "already_stored": result.already_stored,
            "services": sorted({r.service_id for r in readings})[:50]})
    return result
