"""What a run or preview reads from the database: customers, billable services, open and
existing charges, and every charge a month would create for a batch of customers."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from portal.domain.billing.charges import (
    ChargeDraft,
    _Catalog,
    _Service,
    service_charges,
    usage_charges,
)
from portal.domain.billing.periods import year_bounds
from portal.domain.money import (
    rate_key,
    round_money,
    to_decimal,
)
from portal.models import (
    Charge,
    ChargeKind,
    Customer,
    CustomerKind,
    CustomerService,
    Discount,
    ServiceState,
    UsageInstance,
    UsageReading,
)

_charge = Charge.__table__
_customer = Customer.__table__
_service = CustomerService.__table__


# ---------------------------------------------------------------- loading


@dataclass
class _Customer:
    id: int
    location_id: int
    billing_plan_id: int | None
    name: str
    address: str
    company_id: str | None
    vat_id: str | None
    number: str


def _customer_name(kind, first, last, company) -> str:
    if kind == CustomerKind.COMPANY:
        return company or ""
    return " ".join(p for p in (first, last) if p)


def _lock_customers(session: Session, ids: list[int]) -> None:
    """Lock the customers' rows (in id order, so two runs cannot deadlock on them). This
    serialises concurrent runs per customer: the second waits here, then sees the charges
    the first invoiced (READ COMMITTED) and invoices nothing twice. On SQLite the run
    already holds the database's write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(_customer.c.id).where(_customer.c.id.in_(ids)).order_by(_customer.c.id)
                        .with_for_update()).all()


def _load_customers(session: Session, ids: list[int]) -> dict[int, _Customer]:
    c = _customer.c
    stmt = select(c.id, c.location_id, c.billing_plan_id, c.kind, c.first_name, c.last_name, c.company_name,
                  c.street, c.postal_code, c.city, c.country, c.company_id, c.vat_id,
                  c.customer_number).where(c.id.in_(ids)).order_by(c.id)
    out = {}
    for r in session.execute(stmt):
        lines = [x for x in (r.street, f"{r.postal_code or ''} {r.city or ''}".strip(), r.country) if x]
        out[r.id] = _Customer(r.id, r.location_id, r.billing_plan_id,
                              _customer_name(r.kind, r.first_name, r.last_name, r.company_name),
                              "\n".join(lines), r.company_id, r.vat_id, r.customer_number)
    return out


def _load_services(session: Session, ms: date, me: date) -> dict[int, list[_Service]]:
    """Services possibly billable in the run of [ms, me], per customer (the precise rule is
    applied in Python; the query only narrows)."""
    s = _service.c
    earliest = year_bounds(ms)[0]
    stmt = (
        select(s.id, s.customer_id, s.definition_id, s.billing_plan_id, s.state, s.billing_from, s.billing_to,
               s.cancelled_on, s.price_override)
        .where(
            s.state.in_([ServiceState.ACTIVE, ServiceState.BLOCKED, ServiceState.CANCELLED]),
            s.billing_from.is_not(None),
            s.billing_from <= me,
            or_(s.billing_to.is_(None), s.billing_to >= earliest),
        )
        .order_by(s.customer_id, s.id)
    )
    out: dict[int, list[_Service]] = defaultdict(list)
    for r in session.execute(stmt):
        out[r.customer_id].append(_Service(*r))
    return out


def _customers_with_open_charges(session: Session, me: date) -> set[int]:
    c = _charge.c
    return set(session.scalars(
        select(c.customer_id).where(c.invoice_line_id.is_(None), c.period_start <= me).distinct()
    ))


def _chunks(seq: list, size: int):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def _compute_charges(session: Session, catalog: _Catalog, services: dict[int, list[_Service]],
                     customers: dict[int, _Customer], ms: date, me: date) -> list[ChargeDraft]:
    """Every charge the run of [ms, me] would create for these customers (before the unique
    constraint weeds out what exists)."""
    svc_list = [svc for cid in customers for svc in services.get(cid, ())]
    if not svc_list:
        return []
    svc_ids = [s.id for s in svc_list]
    cust_ids = list(customers)
    year_start, year_end = year_bounds(ms)

    discounts: dict[int, list[Discount]] = defaultdict(list)  # by customer
    for chunk in _chunks(svc_ids, 5000):
        for d in session.scalars(select(Discount).where(
            or_(Discount.customer_service_id.in_(chunk),
                and_(Discount.customer_service_id.is_(None), Discount.customer_id.in_(cust_ids))),
            Discount.valid_from <= year_end,
            or_(Discount.valid_to.is_(None), Discount.valid_to >= year_start),
        )):
            owner = d.customer_id if d.customer_service_id is None else None
            discounts[owner if owner is not None else -d.customer_service_id].append(d)

    # Usage: instances of the definition's tracker, and the month's readings.
    metered = {s.id: s for s in svc_list if catalog.definitions[s.definition_id].usage_tracker_id}
    instances: dict[int, tuple[int, int]] = {}  # instance id → (service id, tracker id)
    readings: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))  # service → item → [(t, v)]
    if metered:
        for inst in session.execute(select(UsageInstance.id, UsageInstance.customer_service_id,
                                           UsageInstance.tracker_id)
                                    .where(UsageInstance.customer_service_id.in_(list(metered)))):
            if catalog.definitions[metered[inst.customer_service_id].definition_id].usage_tracker_id == inst.tracker_id:
                instances[inst.id] = (inst.customer_service_id, inst.tracker_id)
        if instances:
            t0 = datetime.combine(ms, time(0), tzinfo=UTC)
            t1 = datetime.combine(me + timedelta(days=1), time(0), tzinfo=UTC)
            for r in session.execute(select(UsageReading.instance_id, UsageReading.item_id,
                                            UsageReading.measured_at, UsageReading.value)
                                     .where(UsageReading.instance_id.in_(list(instances)),
                                            UsageReading.measured_at >= t0, UsageReading.measured_at < t1)):
                readings[instances[r.instance_id][0]][r.item_id].append((r.measured_at, to_decimal(r.value)))

    out: list[ChargeDraft] = []
    by_service_tracker = {sid: tid for sid, tid in instances.values()}
    for cid, cust in customers.items():
        location = catalog.locations[cust.location_id]
        for svc in services.get(cid, ()):
            definition = catalog.definitions[svc.definition_id]
            plan_id = svc.billing_plan_id or cust.billing_plan_id or catalog.default_plan_id
            applicable = discounts.get(cid, []) + discounts.get(-svc.id, [])
            out.extend(service_charges(svc, definition, ms, me, catalog=catalog, discounts=applicable,
                                       currency=location.currency, plan_id=plan_id))
            tid = by_service_tracker.get(svc.id)
            if tid is not None and svc.billable(ms, me):
                out.extend(usage_charges(svc, catalog.trackers[tid], catalog.items.get(tid, []),
                                         readings.get(svc.id, {}), ms, me,
                                         currency=location.currency, plan_id=plan_id))
    return out

def _existing_keys(session: Session, service_ids: list[int], earliest: date, me: date) -> set[tuple]:
    c = _charge.c
    keys = set()
    for chunk in _chunks(service_ids, 5000):
        for r in session.execute(select(c.customer_service_id, c.period_start, c.kind, c.discriminator).where(
            c.customer_service_id.in_(chunk), c.period_start >= earliest, c.period_start <= me,
        )):
            keys.add((r.customer_service_id, r.period_start, ChargeKind(r.kind), r.discriminator))
    return keys


def _open_charges(session: Session, customer_ids: list[int], me: date) -> list[ChargeDraft]:
    c = _charge.c
    rows = session.execute(
        select(c.customer_id, c.customer_service_id, c.billing_plan_id, c.period_start, c.period_end, c.kind,
               c.discriminator, c.description, c.quantity, c.unit, c.unit_price, c.vat_rate,
               c.price_includes_vat, c.net, c.vat, c.gross, c.currency, c.id)
        .where(c.customer_id.in_(customer_ids), c.invoice_line_id.is_(None), c.period_start <= me)
        .order_by(c.customer_id, c.id)
    )
    out = []
    for r in rows:
        d = ChargeDraft(*r)
        d.net, d.vat, d.gross = round_money(d.net), round_money(d.vat), round_money(d.gross)
        d.vat_rate = rate_key(d.vat_rate)
        d.price_includes_vat = bool(d.price_includes_vat)
        out.append(d)
    return out
