"""The billing engine: periods and charges, the billing run, credit notes and the guard that
keeps issued invoices unchanged.

The rules, in the business's words (domain.md §3 "Billing run" and "Credit notes"):

- A run bills one calendar month, "the period" (`billing_period("2026-11")`).
- A customer service is billable when it is active or blocked (blocked services are still
  charged — ours), or cancelled with its last billed day (`billing_to`, else `cancelled_on`)
  on or after the start of the charged period; and billing_from ≤ the period's end and
  (billing_to is open or ≥ the period's start). Ordered services are not billed.
- Monthly services are charged per calendar month; quarterly per calendar quarter and yearly
  per calendar year, charged in the run of the period's first month — or, when the service
  starts later in that quarter/year, in the run of the month it starts, prorated to the
  period's end. (Any run inside the quarter/year creates the charge if it is still missing;
  the unique constraint makes that a no-op otherwise.) One-off services are charged once,
  in the run of the month billing_from falls into, never prorated.
- Proration by days: days in service within the charged period / days in the period, the
  amount rounded to 0.01 half-up.
- Price: the service's price_override, else the definition's price effective for the
  period: the latest PriceChange with effective_from ≤ the period's start, else the
  definition's price (a change inside a period applies from the next one; never
  retroactively). `price_includes_vat` decides whether the gross or the net is fixed.
- Discounts valid on at least one day of the charged period (per service, or per customer
  optionally limited to a service group; only when the definition's commitment_months ≥ the
  discount's min_commitment_months): percent of the service charge, or an amount per full
  period; both prorated by the days the discount covers, capped at the charge. Shown
  discounts are separate negative charges of kind `discount` (discriminator = discount id);
  discounts not shown on the invoice are folded into the service charge's price.
- Usage, billed per month in arrears: for a service whose definition has a usage tracker and
  which has a UsageInstance of it, the readings measured inside the month (UTC) are
  aggregated per item (sum/max/last/average), the included steps × step subtracted, the rest
  rounded to whole steps (up/down/nearest) × amount_per_step, net, VAT from the tracker.
- Uninvoiced charges with period_start ≤ the period's end (dunning fees, credits, charges of
  an interrupted run) are invoiced too. Zero charges are not created.
- One invoice per (customer, billing plan [the service's, else the customer's, else the
  first active plan], currency). An invoice whose total would be negative is not issued:
  its charges wait for the next run.
- Numbering: series = location.invoice_series_prefix + plan.series (e.g. "1" + "FV" =
  "1FV"), scope "invoice:1FV", gapless per year of the issue date; number text
  "{series}-{year}-{seq:06d}", e.g. "1FV-2026-000123". Variable symbol = the number's
  digits without the century: YY + the series' digits + the 6-digit sequence, e.g.
  "261000123" (at most 10 digits). Two series with the same digits would make equal
  symbols, so the run refuses (`VariableSymbolClash`) rather than issue an ambiguous VS.
- Due date = issue date + plan.due_days; taxable supply date (DUZP) = the period's last day
  (a continuing supply billed per period); constant symbol from the plan; the customer's and
  the supplier's (the location's partner) identities are copied onto the invoice.
- Running twice for a period adds nothing; two runs at once neither double-bill nor leave
  gaps in numbering (see `run_billing`).
- An issued invoice never changes: the only correction is a credit note (type credit_note,
  negative amounts, corrects_id), full or per line, with a reason. Cancelling an unpaid
  invoice issues a full credit note and marks it cancelled. What an invoice still asks for
  is gross − paid − credited (`amount_due`).
"""
from __future__ import annotations

import calendar
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from sqlalchemy import and_, event, func, insert, inspect, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.domain import DomainError, audit
from portal.domain.actors import Actor
from portal.domain.money import (
    ZERO,
    Amounts,
    prorate,
    rate_key,
    round_money,
    split_price,
    to_decimal,
    vat_recapitulation,
)
from portal.domain.numbering import format_number, reserve_numbers
from portal.domain.recipients import billing_email
from portal.models import (
    Aggregation,
    BillingPlan,
    BillingRun,
    BillingRunState,
    Charge,
    ChargeKind,
    Currency,
    Customer,
    CustomerKind,
    CustomerService,
    Discount,
    DiscountKind,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
    Location,
    Partner,
    Payment,
    PaymentState,
    Period,
    PriceChange,
    Rounding,
    ServiceDefinition,
    ServiceState,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from portal.models.base import utcnow

log = logging.getLogger(__name__)

_charge = Charge.__table__
_invoice = Invoice.__table__
_line = InvoiceLine.__table__
_vat = InvoiceVat.__table__
_customer = Customer.__table__
_service = CustomerService.__table__

NUMBER_FORMAT = "{series}-{year}-{seq:06d}"
CREDIT_NOTE_SUFFIX = "D"  # credit-note series = the invoice series + "D": "1FV" → "1FVD"
UNITS = {Period.MONTHLY: "month", Period.QUARTERLY: "quarter", Period.YEARLY: "year", Period.ONE_OFF: "pcs"}
# Lines appear per service in this order, then fees and credits without a service.
KIND_ORDER = {ChargeKind.SERVICE: 0, ChargeKind.ONE_OFF: 1, ChargeKind.DISCOUNT: 2, ChargeKind.USAGE: 3,
              ChargeKind.FEE: 4, ChargeKind.CREDIT: 5}


# ---------------------------------------------------------------- errors


class InvalidPeriod(DomainError):
    """The billing period is not a month written as YYYY-MM."""


class NoBillingPlan(DomainError):
    """There is something to bill but no billing plan to bill it under."""


class VariableSymbolClash(DomainError):
    """Two invoice series would give invoices the same variable symbol."""


class InvoiceImmutable(DomainError):
    """An issued invoice's lines, totals or number were about to change."""


class CreditNoteRefused(DomainError):
    """The credit note cannot be issued (no reason, a credit note, nothing left to credit…)."""


class BillingRunRefused(DomainError):
    """A billing run cannot be requested or carried out (scope, one already waiting…)."""


class InvoiceNotSent(DomainError):
    """The invoice cannot be e-mailed (no address, a cancelled invoice…)."""


class CancellationRefused(DomainError):
    """The invoice cannot be cancelled (paid, already cancelled, a credit note)."""


# ---------------------------------------------------------------- periods


_PERIOD_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


def billing_period(text: str) -> tuple[date, date]:
    """The first and last day of the month written "YYYY-MM" (e.g. "2026-11" →
    (2026-11-01, 2026-11-30)). Anything else is an `InvalidPeriod`."""
    m = _PERIOD_RE.match(text or "") if isinstance(text, str) else None
    if not m:
        raise InvalidPeriod(f"A billing period is a month written YYYY-MM, not {text!r}.", field="period")
    year, month = int(m.group(1)), int(m.group(2))
    if not (1 <= month <= 12) or not (1900 <= year <= 9999):
        raise InvalidPeriod(f"{text!r} is not a valid month.", field="period")
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _month(value: str | date) -> tuple[date, date]:
    """A run's period from "YYYY-MM" or any date inside the month."""
    if isinstance(value, date):
        return billing_period(f"{value.year:04d}-{value.month:02d}")
    return billing_period(value)


def quarter_bounds(day: date) -> tuple[date, date]:
    first = 3 * ((day.month - 1) // 3) + 1
    return date(day.year, first, 1), date(day.year, first + 2, calendar.monthrange(day.year, first + 2)[1])


def year_bounds(day: date) -> tuple[date, date]:
    return date(day.year, 1, 1), date(day.year, 12, 31)


def days_between(start: date, end: date) -> int:
    """Days from start to end, both included."""
    return (end - start).days + 1


# ---------------------------------------------------------------- plain data


@dataclass
class ChargeDraft:
    """A charge computed in memory (preview) or read back from the charge table (run)."""

    customer_id: int
    customer_service_id: int | None
    billing_plan_id: int | None
    period_start: date
    period_end: date
    kind: ChargeKind
    discriminator: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    vat_rate: Decimal
    price_includes_vat: bool
    net: Decimal
    vat: Decimal
    gross: Decimal
    currency: Currency
    id: int | None = None

    @property
    def amount(self) -> Decimal:
        """The fixed side: gross for prices including VAT, else net."""
        return self.gross if self.price_includes_vat else self.net

    @property
    def key(self) -> tuple:
        return (self.customer_service_id, self.period_start, ChargeKind(self.kind), self.discriminator)

    def row(self, billing_run_id: int | None) -> dict:
        return {
            "customer_id": self.customer_id, "customer_service_id": self.customer_service_id,
            "billing_plan_id": self.billing_plan_id, "billing_run_id": billing_run_id,
            "period_start": self.period_start, "period_end": self.period_end, "kind": self.kind,
            "discriminator": self.discriminator, "description": self.description[:300],
            "quantity": self.quantity, "unit": self.unit[:20], "unit_price": self.unit_price,
            "vat_rate": self.vat_rate, "price_includes_vat": self.price_includes_vat,
            "net": self.net, "vat": self.vat, "gross": self.gross, "currency": self.currency,
        }


def _draft(customer_id, service_id, plan_id, ps, pe, kind, disc, description, quantity, unit, unit_price,
           vat_rate, includes_vat, amount, currency) -> ChargeDraft:
    a = split_price(amount, vat_rate, includes_vat=includes_vat)
    return ChargeDraft(customer_id, service_id, plan_id, ps, pe, kind, disc, description, to_decimal(quantity),
                       unit, to_decimal(unit_price), rate_key(vat_rate), includes_vat, a.net, a.vat, a.gross,
                       currency)


@dataclass
class _Service:
    id: int
    customer_id: int
    definition_id: int
    billing_plan_id: int | None
    state: ServiceState
    billing_from: date | None
    billing_to: date | None
    cancelled_on: date | None
    price_override: Decimal | None

    @property
    def last_day(self) -> date | None:
        """The last billed day: billing_to, else (when cancelled) the cancellation day."""
        if self.billing_to is not None:
            return self.billing_to
        return self.cancelled_on if self.state == ServiceState.CANCELLED else None

    def billable(self, start: date, end: date) -> bool:
        if self.billing_from is None or self.state == ServiceState.ORDERED:
            return False
        if self.state == ServiceState.CANCELLED and self.last_day is None:
            return False
        last = self.last_day
        return self.billing_from <= end and (last is None or last >= start)


@dataclass
class _Catalog:
    """The small tables a run needs, loaded once."""

    definitions: dict[int, ServiceDefinition]
    price_changes: dict[int, list[tuple[date, Decimal]]]
    plans: dict[int, BillingPlan]
    default_plan_id: int | None
    locations: dict[int, Location]
    partners: dict[int, Partner]
    trackers: dict[int, UsageTracker]
    items: dict[int, list[UsageItem]]

    @classmethod
    def load(cls, session: Session) -> _Catalog:
        definitions = {d.id: d for d in session.scalars(select(ServiceDefinition))}
        changes: dict[int, list] = defaultdict(list)
        for pc in session.scalars(select(PriceChange).order_by(PriceChange.effective_from)):
            changes[pc.definition_id].append((pc.effective_from, pc.new_price))
        plans = {p.id: p for p in session.scalars(select(BillingPlan).order_by(BillingPlan.id))}
        default = next((p.id for p in plans.values() if p.active), next(iter(plans), None))
        items: dict[int, list] = defaultdict(list)
        for it in session.scalars(select(UsageItem).order_by(UsageItem.id)):
            items[it.tracker_id].append(it)
        return cls(
            definitions=definitions,
            price_changes=changes,
            plans=plans,
            default_plan_id=default,
            locations={loc.id: loc for loc in session.scalars(select(Location))},
            partners={p.id: p for p in session.scalars(select(Partner))},
            trackers={t.id: t for t in session.scalars(select(UsageTracker))},
            items=items,
        )

    def price_on(self, definition: ServiceDefinition, day: date) -> Decimal:
        """The definition's price effective on `day` (latest change on or before it)."""
        price = definition.price
        for effective_from, new_price in self.price_changes.get(definition.id, ()):
            if effective_from <= day:
                price = new_price
            else:
                break
        return to_decimal(price)


def effective_price(session: Session, service: CustomerService, on: date) -> Decimal:
    """The price a service is charged for a period starting `on`: its price_override, else
    the definition's latest PriceChange effective on or before `on`, else the definition's
    price. Prices change from a date on, never retroactively."""
    if service.price_override is not None:
        return to_decimal(service.price_override)
    price = service.definition.price
    pc = session.scalars(
        select(PriceChange)
        .where(PriceChange.definition_id == service.definition_id, PriceChange.effective_from <= on)
        .order_by(PriceChange.effective_from.desc())
        .limit(1)
    ).first()
    return to_decimal(pc.new_price if pc else price)


# ---------------------------------------------------------------- charges


def _charged_period(svc: _Service, period: Period, ms: date, me: date) -> tuple[date, date, date, date] | None:
    """(period start, period end, first day in service, last day in service) of the charge
    the run of month [ms, me] creates for this service, or None."""
    if svc.billing_from is None:
        return None
    if period == Period.ONE_OFF:
        if not (ms <= svc.billing_from <= me) or not svc.billable(svc.billing_from, svc.billing_from):
            return None
        return ms, me, svc.billing_from, svc.billing_from
    if period == Period.QUARTERLY:
        ps, pe = quarter_bounds(ms)
    elif period == Period.YEARLY:
        ps, pe = year_bounds(ms)
    else:
        ps, pe = ms, me
    if not svc.billable(ps, pe):
        return None
    start = max(svc.billing_from, ps)
    last = svc.last_day
    end = min(last, pe) if last is not None else pe
    if start > end or start > me:  # starts in a later month: that month's run charges it
        return None
    return ps, pe, start, end


def _discount_applies(d: Discount, svc: _Service, definition: ServiceDefinition) -> bool:
    if d.customer_service_id is not None:
        if d.customer_service_id != svc.id:
            return False
    elif d.customer_id != svc.customer_id or (d.service_group_id is not None and d.service_group_id != definition.group_id):
        return False
    return definition.commitment_months >= (d.min_commitment_months or 0)


def service_charges(svc: _Service, definition: ServiceDefinition, ms: date, me: date, *, catalog: _Catalog,
                    discounts: Iterable[Discount], currency: Currency, plan_id: int | None) -> list[ChargeDraft]:
    """The service (or one-off) charge and its shown discounts for the run of [ms, me]."""
    window = _charged_period(svc, definition.period, ms, me)
    if window is None:
        return []
    ps, pe, start, end = window
    one_off = definition.period == Period.ONE_OFF
    price = to_decimal(svc.price_override) if svc.price_override is not None else catalog.price_on(definition, ps)
    period_days = days_between(ps, pe)
    service_days = days_between(start, end)
    base = round_money(price) if one_off else prorate(price, service_days, period_days)
    includes = bool(definition.price_includes_vat)
    kind = ChargeKind.ONE_OFF if one_off else ChargeKind.SERVICE

    shown: list[tuple[Discount, Decimal]] = []
    folded = ZERO
    remaining = base
    for d in sorted(discounts, key=lambda d: d.id):
        if not _discount_applies(d, svc, definition):
            continue
        cov_start = max(start, d.valid_from)
        cov_end = min(end, d.valid_to) if d.valid_to is not None else end
        if cov_start > cov_end or remaining <= 0:
            continue
        covered = days_between(cov_start, cov_end)
        value = to_decimal(d.value)
        if d.kind == DiscountKind.PERCENT:
            amount = round_money(base * covered / service_days * value / 100)
        elif one_off:
            amount = round_money(value)
        else:
            amount = prorate(value, covered, period_days)
        amount = min(amount, remaining)
        if amount <= 0:
            continue
        remaining -= amount
        if d.shown_on_invoice:
            shown.append((d, amount))
        else:
            folded += amount

    amount = base - folded
    name = definition.customer_name or definition.name
    text = f"{name}, {start.isoformat()} – {end.isoformat()}"
    if not one_off and service_days < period_days:
        text += f" ({service_days}/{period_days} days)"
    out: list[ChargeDraft] = []
    if amount != 0:
        out.append(_draft(svc.customer_id, svc.id, plan_id, ps, pe, kind, "", text, 1, UNITS[definition.period],
                          amount, definition.vat_rate, includes, amount, currency))
    for d, amt in shown:
        out.append(_draft(svc.customer_id, svc.id, plan_id, ps, pe, ChargeKind.DISCOUNT, str(d.id),
                          f"{d.name} ({name})", 1, "pcs", -amt, definition.vat_rate, includes, -amt, currency))
    return out


def aggregate_readings(aggregation: Aggregation, readings: list[tuple[datetime, Decimal]]) -> Decimal | None:
    """Readings of one item in a period → one quantity: sum, max, last (latest measured) or
    average (arithmetic mean). None without readings."""
    if not readings:
        return None
    values = [to_decimal(v) for _, v in readings]
    if aggregation == Aggregation.SUM:
        return sum(values, Decimal(0))
    if aggregation == Aggregation.MAX:
        return max(values)
    if aggregation == Aggregation.LAST:
        return to_decimal(max(readings, key=lambda r: r[0])[1])
    return sum(values, Decimal(0)) / len(values)


def billable_steps(quantity: Decimal, item: UsageItem) -> int:
    """Whole steps to bill: (quantity − included_steps × step) / step, rounded up, down or to
    the nearest step (half-up); never below zero."""
    step = to_decimal(item.step)
    excess = to_decimal(quantity) - (item.included_steps or 0) * step
    if excess <= 0:
        return 0
    mode = {Rounding.UP: ROUND_CEILING, Rounding.DOWN: ROUND_FLOOR}.get(item.rounding, ROUND_HALF_UP)
    return int((excess / step).quantize(Decimal(1), rounding=mode))


def usage_charges(svc: _Service, tracker: UsageTracker, items: list[UsageItem],
                  readings: dict[int, list[tuple[datetime, Decimal]]], ms: date, me: date, *,
                  currency: Currency, plan_id: int | None) -> list[ChargeDraft]:
    """Usage of one service in month [ms, me], billed in arrears: one charge per item with
    something to bill (kind usage, discriminator = item id, net priced, tracker's VAT)."""
    out = []
    for item in items:
        quantity = aggregate_readings(item.aggregation, readings.get(item.id, []))
        if quantity is None:
            continue
        steps = billable_steps(quantity, item)
        if steps <= 0:
            continue
        step = to_decimal(item.step)
        unit = item.unit if step == 1 else f"×{step.normalize():f} {item.unit}"
        net = round_money(steps * to_decimal(item.amount_per_step))
        shown = quantity.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP).normalize()
        text = f"{tracker.name} – {item.name}: {shown:f} {item.unit}, {ms.isoformat()} – {me.isoformat()}"
        out.append(_draft(svc.customer_id, svc.id, plan_id, ms, me, ChargeKind.USAGE, str(item.id), text, steps,
                          unit, item.amount_per_step, tracker.vat_rate, False, net, currency))
    return out


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


# ---------------------------------------------------------------- invoices in memory


@dataclass
class _InvoiceDraft:
    customer: _Customer
    plan: BillingPlan
    currency: Currency
    charges: list[ChargeDraft]
    line_amounts: list[Amounts] = field(default_factory=list)
    rates: dict[Decimal, Amounts] = field(default_factory=dict)
    total: Amounts = field(default_factory=Amounts.zero)


def _line_order(c: ChargeDraft):
    return (c.customer_service_id is None, c.customer_service_id or 0, c.period_start,
            KIND_ORDER.get(ChargeKind(c.kind), 9), c.discriminator, c.id or 0)


def _group_invoices(charges: list[ChargeDraft], customers: dict[int, _Customer],
                    catalog: _Catalog) -> list[_InvoiceDraft]:
    """One invoice per (customer, billing plan, currency), lines in a stable order, VAT per
    rate (`vat_recapitulation`). Groups with a negative total are left out."""
    groups: dict[tuple, list[ChargeDraft]] = defaultdict(list)
    for c in charges:
        cust = customers[c.customer_id]
        plan_id = c.billing_plan_id or cust.billing_plan_id or catalog.default_plan_id
        if plan_id is None:
            raise NoBillingPlan("There is no billing plan to invoice under; create one first.")
        groups[(c.customer_id, plan_id, Currency(c.currency))].append(c)
    out = []
    for (cid, plan_id, currency), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        items.sort(key=_line_order)
        recap = vat_recapitulation((c.amount, c.vat_rate, c.price_includes_vat) for c in items)
        if recap.total.gross < 0:
            continue
        out.append(_InvoiceDraft(customers[cid], catalog.plans[plan_id], currency, items,
                                 recap.lines, recap.rates, recap.total))
    return out


def _series(catalog: _Catalog, draft: _InvoiceDraft) -> str:
    location = catalog.locations[draft.customer.location_id]
    return f"{location.invoice_series_prefix or ''}{draft.plan.series or ''}"


def variable_symbol(series: str, year: int, sequence: int) -> str:
    """The invoice's VS: YY + the series' digits + the 6-digit sequence ("1FV", 2026, 123 →
    "261000123"). More than 10 digits cannot be paid by bank transfer: refused."""
    vs = f"{year % 100:02d}{''.join(ch for ch in series if ch.isdigit())}{sequence:06d}"
    if len(vs) > 10:
        raise VariableSymbolClash(f"Series {series!r} gives a variable symbol longer than 10 digits ({vs}).")
    return vs


def supplier_snapshot(partner: Partner | None) -> dict:
    """The supplier printed on the invoice, copied at issue."""
    if partner is None:
        return {}
    address = [x for x in (partner.street, f"{partner.postal_code or ''} {partner.city or ''}".strip(),
                           partner.country) if x]
    return {
        "name": partner.name, "address": "\n".join(address), "street": partner.street,
        "city": partner.city, "postal_code": partner.postal_code, "country": partner.country,
        "company_id": partner.company_id, "vat_id": partner.vat_id, "iban": partner.iban,
        "bank_account": partner.bank_account, "bic": partner.bic, "email": partner.email,
        "phone": partner.phone, "web": partner.web,
    }


def _totals_by_currency(drafts: Iterable[_InvoiceDraft]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in drafts:
        t = out.setdefault(str(d.currency), {"net": ZERO, "vat": ZERO, "gross": ZERO, "invoices": 0})
        t["net"] += d.total.net
        t["vat"] += d.total.vat
        t["gross"] += d.total.gross
        t["invoices"] += 1
    return out


# ---------------------------------------------------------------- preview


@dataclass
class PreviewRow:
    customer_id: int
    name: str
    number: str
    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    lines: int
    invoices: int = 1


@dataclass
class BillingPreview:
    period_start: date
    period_end: date
    services: int = 0  # services with at least one new charge
    charges: int = 0  # charges the run would create
    invoices: int = 0
    customers: int = 0
    totals: dict[str, dict] = field(default_factory=dict)  # currency → {net, vat, gross, invoices}
    per_customer: list[PreviewRow] = field(default_factory=list)

    @property
    def period(self) -> tuple[date, date]:
        return self.period_start, self.period_end


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


def preview_billing(session: Session, period_start: str | date, *, today: date | None = None,
                    batch_size: int = 2000) -> BillingPreview:
    """What `run_billing` would create for the period, computed in memory: the charges not
    yet in the database plus the uninvoiced ones, grouped into invoices with their VAT.
    Writes nothing (no flush, no insert, no number taken). `today` is accepted for symmetry
    with the run and does not change the amounts."""
    ms, me = _month(period_start)
    preview = BillingPreview(ms, me)
    with session.no_autoflush:
        catalog = _Catalog.load(session)
        services = _load_services(session, ms, me)
        customer_ids = sorted(set(services) | _customers_with_open_charges(session, me))
        rows: dict[tuple[int, str], PreviewRow] = {}
        all_drafts: list[_InvoiceDraft] = []
        for batch in _chunks(customer_ids, batch_size):
            customers = _load_customers(session, batch)
            computed = _compute_charges(session, catalog, services, customers, ms, me)
            existing = _existing_keys(session, [s.id for cid in batch for s in services.get(cid, ())],
                                      year_bounds(ms)[0], me)
            new = [c for c in computed if c.key not in existing]
            preview.charges += len(new)
            preview.services += len({c.customer_service_id for c in new})
            drafts = _group_invoices(_open_charges(session, batch, me) + new, customers, catalog)
            all_drafts.extend(drafts)
            for d in drafts:
                key = (d.customer.id, str(d.currency))
                row = rows.get(key)
                if row is None:
                    row = rows[key] = PreviewRow(d.customer.id, d.customer.name, d.customer.number, str(d.currency),
                                                 ZERO, ZERO, ZERO, 0, 0)
                row.net += d.total.net
                row.vat += d.total.vat
                row.gross += d.total.gross
                row.lines += len(d.charges)
                row.invoices += 1
    preview.invoices = len(all_drafts)
    preview.customers = len({d.customer.id for d in all_drafts})
    preview.totals = _totals_by_currency(all_drafts)
    preview.per_customer = sorted(rows.values(), key=lambda r: (r.number, r.currency))
    return preview


@dataclass
class PreviewInvoice:
    """One invoice a run would issue for a customer: its lines (charge drafts with their
    amounts after the VAT recapitulation) and totals — the preview's drill-down."""

    currency: str
    plan_name: str
    lines: list[tuple[ChargeDraft, Amounts]]
    rates: dict[Decimal, Amounts]
    total: Amounts


def preview_customer(session: Session, period_start: str | date, customer_id: int) -> list[PreviewInvoice]:
    """What `run_billing` would invoice one customer for the period, line by line — the same
    computation as `preview_billing`, limited to that customer. Writes nothing."""
    ms, me = _month(period_start)
    with session.no_autoflush:
        catalog = _Catalog.load(session)
        services = {customer_id: _load_services(session, ms, me).get(customer_id, [])}
        customers = _load_customers(session, [customer_id])
        if not customers:
            return []
        computed = _compute_charges(session, catalog, services, customers, ms, me)
        existing = _existing_keys(session, [s.id for s in services[customer_id]], year_bounds(ms)[0], me)
        new = [c for c in computed if c.key not in existing]
        drafts = _group_invoices(_open_charges(session, [customer_id], me) + new, customers, catalog)
    return [PreviewInvoice(str(d.currency), d.plan.name, list(zip(d.charges, d.line_amounts, strict=True)),
                           dict(d.rates), d.total) for d in drafts]


# ---------------------------------------------------------------- the run


def _insert_charges(session: Session, drafts: list[ChargeDraft], run_id: int) -> int:
    """Insert the charges that do not exist yet; an existing (service, period, kind,
    discriminator) is skipped by the database (ON CONFLICT DO NOTHING), not an error.
    Returns how many were inserted."""
    if not drafts:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(_charge).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(_charge).on_conflict_do_nothing()
    else:  # pragma: no cover - the portal runs on these two
        raise NotImplementedError(dialect)
    # Plain executemany, no RETURNING: psycopg re-parses every multi-row RETURNING statement,
    # which cost more than the inserts. What this run inserted carries its id.
    for chunk in _chunks(drafts, 1000):
        session.execute(stmt, [d.row(run_id) for d in chunk])
    customer_ids = sorted({d.customer_id for d in drafts})
    return session.scalar(select(func.count()).select_from(_charge).where(
        _charge.c.billing_run_id == run_id, _charge.c.customer_id.in_(customer_ids)))


def _issue(session: Session, drafts: list[_InvoiceDraft], catalog: _Catalog, *, run_id: int, issue_date: date,
           ms: date, me: date) -> None:
    """Number, insert and link the invoices of one batch (Core bulk statements: the ORM's
    unit of work would cost more than everything else together)."""
    if not drafts:
        return
    year = issue_date.year
    by_series: dict[str, list[_InvoiceDraft]] = defaultdict(list)
    for d in drafts:
        by_series[_series(catalog, d)].append(d)
    numbered = []
    for series in sorted(by_series):
        items = by_series[series]
        seqs = reserve_numbers(session, f"invoice:{series}", year, len(items))
        for d, seq in zip(items, seqs, strict=True):
            numbered.append((d, series, seq))

    now = utcnow()
    symbols = [variable_symbol(series, year, seq) for _, series, seq in numbered]
    if len(set(symbols)) != len(symbols):
        raise VariableSymbolClash("Two invoice series of this run give the same variable symbols; give the "
                                  "billing plans' series distinct digits (e.g. FV and FV2).")
    for chunk in _chunks(symbols, 5000):
        clash = session.execute(select(_invoice.c.number, _invoice.c.variable_symbol).where(
            _invoice.c.variable_symbol.in_(chunk), _invoice.c.type != InvoiceType.CREDIT_NOTE).limit(1)).first()
        if clash:
            raise VariableSymbolClash(
                f"Variable symbol {clash.variable_symbol} is already used by invoice {clash.number}; give the "
                "billing plans' series distinct digits (e.g. FV and FV2).")

    suppliers: dict[int, dict] = {}
    rows = []
    for (d, series, seq), vs in zip(numbered, symbols, strict=True):
        location = catalog.locations[d.customer.location_id]
        if location.id not in suppliers:
            suppliers[location.id] = supplier_snapshot(catalog.partners.get(location.partner_id))
        rows.append({
            "customer_id": d.customer.id, "location_id": location.id, "billing_plan_id": d.plan.id,
            "type": InvoiceType.INVOICE, "series": series, "year": year, "sequence": seq,
            "number": NUMBER_FORMAT.format(series=series, year=year, seq=seq), "variable_symbol": vs,
            "constant_symbol": d.plan.constant_symbol, "issue_date": issue_date, "taxable_supply_date": me,
            "due_date": issue_date + timedelta(days=d.plan.due_days), "period_start": ms, "period_end": me,
            "currency": d.currency, "state": InvoiceState.ISSUED, "correction_reason": "",
            "billing_run_id": run_id, "customer_name": d.customer.name[:200],
            "customer_address": d.customer.address, "customer_company_id": d.customer.company_id,
            "customer_vat_id": d.customer.vat_id, "customer_number": d.customer.number,
            "supplier": suppliers[location.id], "net_total": d.total.net, "vat_total": d.total.vat,
            "gross_total": d.total.gross, "rounding": ZERO, "paid_amount": ZERO,
            "created_at": now, "updated_at": now,
        })
    # Plain executemany, then the ids read back by the numbers just taken (RETURNING costs
    # more: SQLite keeps the order only row by row, psycopg re-parses each long statement).
    session.execute(insert(_invoice), rows)
    by_number = {}
    for series in sorted(by_series):
        seqs = [seq for _, s, seq in numbered if s == series]
        by_number.update(session.execute(select(_invoice.c.number, _invoice.c.id).where(
            _invoice.c.series == series, _invoice.c.year == year,
            _invoice.c.sequence.between(min(seqs), max(seqs)))).all())
    invoice_ids = [by_number[r["number"]] for r in rows]

    line_rows, vat_rows, charge_ids = [], [], []
    for invoice_id, d in zip(invoice_ids, drafts_in_order(numbered), strict=True):
        for pos, (c, a) in enumerate(zip(d.charges, d.line_amounts, strict=True), start=1):
            qty = to_decimal(c.quantity) or Decimal(1)
            # The line's unit price is net: the line's net for one unit, the (net) price per
            # step for usage, else net / quantity.
            if qty == 1:
                unit_net = a.net
            elif not c.price_includes_vat:
                unit_net = to_decimal(c.unit_price)
            else:
                unit_net = a.net / qty
            line_rows.append({
                "invoice_id": invoice_id, "position": pos, "description": c.description[:300],
                "period_start": c.period_start, "period_end": c.period_end, "quantity": qty, "unit": c.unit,
                "unit_price": unit_net.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), "vat_rate": c.vat_rate,
                "net": a.net, "vat": a.vat, "gross": a.gross, "customer_service_id": c.customer_service_id,
                "created_at": now, "updated_at": now,
            })
            charge_ids.append(c.id)
        for rate, a in d.rates.items():
            vat_rows.append({"invoice_id": invoice_id, "vat_rate": rate, "net": a.net, "vat": a.vat,
                             "gross": a.gross, "created_at": now, "updated_at": now})
    session.execute(insert(_line), line_rows)
    by_position = {}
    for chunk in _chunks(invoice_ids, 5000):
        by_position.update({(r.invoice_id, r.position): r.id for r in session.execute(
            select(_line.c.invoice_id, _line.c.position, _line.c.id).where(_line.c.invoice_id.in_(chunk)))})
    line_ids = [by_position[(r["invoice_id"], r["position"])] for r in line_rows]
    session.execute(insert(_vat), vat_rows)
    # Link charges to their lines: one UPDATE … CASE per chunk (an executemany of single-row
    # UPDATEs costs more than all the inserts together).
    links = list(zip(charge_ids, line_ids, strict=True))
    for chunk in _chunks(links, 1000):
        # Both ids are integers the database just handed us, so inlining them is safe.
        mapping = literal_column("CASE id " + " ".join(f"WHEN {int(c)} THEN {int(ln)}" for c, ln in chunk) + " END")
        session.execute(
            update(_charge)
            .where(_charge.c.id.in_([cid for cid, _ in chunk]), _charge.c.invoice_line_id.is_(None))
            .values(invoice_line_id=mapping)
        )


def drafts_in_order(numbered: list[tuple]) -> list[_InvoiceDraft]:
    return [d for d, _, _ in numbered]


def _apply_credit(session: Session, customer_ids: list[int], *, actor: Actor, on: date) -> None:
    """Customer credit (overpayments) is allocated to the new invoices at once. The payments
    rules own that (portal.domain.payments.apply_customer_credit, written by another part of
    the portal); when that module or function is not there, the run simply skips it. Only
    customers holding credit (an overpaid payment with money left) are asked, which spares
    a query per customer on a large run."""
    try:
        from portal.domain.payments import apply_customer_credit
    except (ImportError, AttributeError):  # payments rules not installed: nothing to apply
        return
    with_credit = session.scalars(
        select(Payment.customer_id).where(Payment.customer_id.in_(customer_ids),
                                          Payment.state == PaymentState.OVERPAID, Payment.unallocated > 0)
        .distinct().order_by(Payment.customer_id)
    ).all()
    for cid in with_credit:
        apply_customer_credit(session, cid, actor=actor, on=on)


def run_billing(session: Session, period_start: str | date, *, actor: Actor, issue_date: date | None = None,
                progress: Callable[[int, int], None] | None = None, batch_size: int = 500,
                run_id: int | None = None, job_id: int | None = None) -> BillingRun:
    """Bill the month: create the missing charges, invoice every uninvoiced charge (one
    invoice per customer, billing plan and currency), apply customer credit, and record the
    run (state running → done, or failed with the error).

    Work is committed per batch of `batch_size` customers, so a large run never holds one
    giant transaction; each batch takes its invoice numbers in its own transaction, so a
    batch that fails gives its numbers back and numbering stays gapless. A failed run can
    simply be run again: what was committed stays, the rest is done.

    Double billing is impossible: the charge table's unique (service, period, kind,
    discriminator) makes a second insert of a charge a no-op (ON CONFLICT DO NOTHING), and
    each batch locks its customers' rows before collecting their uninvoiced charges, so of
    two concurrent runs the second waits and then finds those charges already invoiced.
    Running twice for a period adds nothing. `progress(done, total)` counts customers.
    Defaults: issue_date = today. `run_id` carries out a run staff requested
    (`request_billing_run`: its period and issue date win); `job_id` links the run to its
    background job. The session is committed by this function."""
    resumed = False
    if run_id is not None:
        run = session.get(BillingRun, run_id)
        # A failed run (its worker died or its batch failed) is carried on: its finished
        # batches stay, the rest is billed (see portal.jobs.resume_job).
        if run is None or run.state not in (BillingRunState.PREVIEWED, BillingRunState.FAILED):
            raise BillingRunRefused(f"Billing run {run_id} is not waiting to be run.")
        resumed = run.state == BillingRunState.FAILED
        run.error = ""
        ms, me, issue_date = run.period_start, run.period_end, run.issue_date
        run.state = BillingRunState.RUNNING
        run.started_at = utcnow()
    else:
        ms, me = _month(period_start)
        issue_date = issue_date or date.today()
        run = BillingRun(period_start=ms, period_end=me, issue_date=issue_date, state=BillingRunState.RUNNING,
                         started_by_type=actor.type, started_by_id=actor.id, started_by_name=actor.name[:200],
                         started_at=utcnow())
        session.add(run)
    if job_id is not None:
        run.job_id = job_id
    session.commit()  # visible as "running" to everyone from now on
    run_id = run.id
    done = charges_count = 0
    all_drafts: list[_InvoiceDraft] = []
    try:
        catalog = _Catalog.load(session)
        services = _load_services(session, ms, me)
        customer_ids = sorted(set(services) | _customers_with_open_charges(session, me))
        if customer_ids and catalog.default_plan_id is None:
            raise NoBillingPlan("There is no billing plan to invoice under; create one first.")
        total = len(customer_ids)
        if progress:
            progress(0, total)
        for batch in _chunks(customer_ids, batch_size):
            customers = _load_customers(session, batch)
            computed = _compute_charges(session, catalog, services, customers, ms, me)
            computed.sort(key=lambda c: (c.customer_service_id or 0, c.period_start, c.kind, c.discriminator))
            inserted = _insert_charges(session, computed, run_id)
            _lock_customers(session, batch)
            drafts = _group_invoices(_open_charges(session, batch, me), customers, catalog)
            _issue(session, drafts, catalog, run_id=run_id, issue_date=issue_date, ms=ms, me=me)
            _apply_credit(session, sorted({d.customer.id for d in drafts}), actor=actor, on=issue_date)
            session.commit()
            charges_count += inserted
            all_drafts.extend(drafts)
            done += len(batch)
            if progress:
                progress(done, total)
    except Exception as exc:
        session.rollback()
        run = session.get(BillingRun, run_id)
        _finish(run, all_drafts, charges_count)
        run.state = BillingRunState.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:4000]
        audit.record(session, actor, "billing.run_failed", "billing_run", run_id, _summary(run))
        session.commit()
        raise
    run = session.get(BillingRun, run_id)
    if resumed:  # the figures of the whole run, the batches committed before it failed included
        all_drafts, charges_count = _run_so_far(session, run_id)
    _finish(run, all_drafts, charges_count)
    run.state = BillingRunState.DONE
    audit.record(session, actor, "billing.run", "billing_run", run_id, _summary(run))
    session.commit()
    return run


def _run_so_far(session: Session, run_id: int) -> tuple[list, int]:
    """What a run has committed, as drafts for _finish: its invoices and its new charges."""
    from types import SimpleNamespace

    invoices = session.scalars(select(Invoice).where(Invoice.billing_run_id == run_id,
                                                     Invoice.type == InvoiceType.INVOICE)).all()
    drafts = [SimpleNamespace(currency=i.currency, customer=SimpleNamespace(id=i.customer_id),
                              total=SimpleNamespace(net=i.net_total, vat=i.vat_total, gross=i.gross_total))
              for i in invoices]
    charges = session.scalar(select(func.count()).select_from(Charge).where(Charge.billing_run_id == run_id))
    return drafts, int(charges or 0)


def _finish(run: BillingRun, drafts: list[_InvoiceDraft], charges_count: int) -> None:
    by_currency = _totals_by_currency(drafts)
    run.finished_at = utcnow()
    run.charges_count = charges_count
    run.invoices_count = len(drafts)
    run.customers_count = len({d.customer.id for d in drafts})
    run.totals_by_currency = {k: {f: str(v) if isinstance(v, Decimal) else v for f, v in t.items()}
                              for k, t in by_currency.items()}
    # The *_total columns hold the main currency's totals (the one with most invoices);
    # totals_by_currency is the full breakdown.
    main = max(by_currency.items(), key=lambda kv: (kv[1]["invoices"], kv[0]), default=None)
    run.net_total = main[1]["net"] if main else ZERO
    run.vat_total = main[1]["vat"] if main else ZERO
    run.gross_total = main[1]["gross"] if main else ZERO


def _summary(run: BillingRun) -> dict:
    return {"period": run.period_start.strftime("%Y-%m"), "issue_date": run.issue_date, "state": run.state,
            "charges": run.charges_count, "invoices": run.invoices_count, "customers": run.customers_count,
            "totals": run.totals_by_currency, "error": run.error or None}


# ---------------------------------------------------------------- credit notes


def credited_amount(session: Session, invoice: Invoice) -> Decimal:
    """How much of the invoice its issued credit notes took back: −Σ of their gross totals
    (a positive amount; 0 without credit notes)."""
    total = session.scalar(select(func.coalesce(func.sum(Invoice.gross_total), 0)).where(
        Invoice.corrects_id == invoice.id, Invoice.type == InvoiceType.CREDIT_NOTE,
        Invoice.state == InvoiceState.ISSUED))
    return -round_money(total)


def amount_due(session: Session, invoice: Invoice) -> Decimal:
    """What the invoice still asks for: gross − paid − credited, never below 0; nothing for a
    credit note or a cancelled invoice. Computed from the credit notes themselves;
    `Invoice.amount_due` reads the same figure from the cached `credited_amount` that
    payments.settle_credit_note keeps."""
    if invoice.type == InvoiceType.CREDIT_NOTE or invoice.state != InvoiceState.ISSUED:
        return ZERO
    return max(round_money(invoice.gross_total - invoice.paid_amount - credited_amount(session, invoice)), ZERO)


def _remaining_per_line(session: Session, invoice: Invoice) -> dict[int, Amounts]:
    """For each line: its amounts minus what issued credit notes already took back."""
    remaining = {ln.id: Amounts(ln.net, ln.vat, ln.gross) for ln in invoice.lines}
    credited = session.execute(
        select(InvoiceLine.corrects_line_id, func.sum(InvoiceLine.net), func.sum(InvoiceLine.vat),
               func.sum(InvoiceLine.gross))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.corrects_line_id.in_(list(remaining)), Invoice.state == InvoiceState.ISSUED,
               Invoice.type == InvoiceType.CREDIT_NOTE)
        .group_by(InvoiceLine.corrects_line_id)
    ).all()
    for line_id, net, vat, gross in credited:
        remaining[line_id] = remaining[line_id] + Amounts(round_money(net), round_money(vat), round_money(gross))
    return remaining


def issue_credit_note(session: Session, invoice: Invoice, *, actor: Actor, reason: str,
                      line_ids: Iterable[int] | None = None, issue_date: date | None = None) -> Invoice:
    """Correct an issued invoice by a credit note — the only way to change it. Full (every
    line with something left) or for the given lines; each credited line takes back what
    remains of it, so nothing can be credited twice. A reason is required; a credit note
    cannot itself be credited. The credit note has its own gapless number in the invoice
    series' credit-note series (e.g. "1FVD-2026-000001", scope "credit_note:1FV"), negative
    quantities and amounts, VAT rows summed from its lines (so a full credit note cancels
    the invoice to the cent), the invoice's parties and variable symbol, issue date =
    taxable supply date = due date = `issue_date` (default today). The payments rules then
    settle it against the invoice (payments.settle_credit_note, when present). Flushes; the
    caller commits."""
    reason = (reason or "").strip()
    if not reason:
        raise CreditNoteRefused("A credit note needs a reason.", field="reason")
    if invoice.type == InvoiceType.CREDIT_NOTE:
        raise CreditNoteRefused("A credit note cannot be credited.")
    if invoice.state != InvoiceState.ISSUED:
        raise CreditNoteRefused(f"Invoice {invoice.number} is cancelled; there is nothing to credit.")
    issue_date = issue_date or date.today()
    remaining = _remaining_per_line(session, invoice)
    lines_by_id = {ln.id: ln for ln in invoice.lines}
    if line_ids is None:
        chosen = [ln for ln in invoice.lines if remaining[ln.id] != Amounts.zero()]
        if not chosen:
            raise CreditNoteRefused(f"Invoice {invoice.number} is already fully credited.")
    else:
        wanted = list(dict.fromkeys(int(i) for i in line_ids))
        if not wanted:
            raise CreditNoteRefused("Choose at least one line to credit.", field="lines")
        unknown = [i for i in wanted if i not in lines_by_id]
        if unknown:
            raise CreditNoteRefused(f"Line(s) {', '.join(map(str, unknown))} are not on invoice {invoice.number}.",
                                    field="lines")
        spent = [i for i in wanted if remaining[i] == Amounts.zero()]
        if spent:
            raise CreditNoteRefused(
                f"Line(s) {', '.join(str(lines_by_id[i].position) for i in spent)} of invoice {invoice.number} "
                "are already credited.", field="lines")
        chosen = sorted((lines_by_id[i] for i in wanted), key=lambda ln: ln.position)

    series = f"{invoice.series}{CREDIT_NOTE_SUFFIX}"
    seq = reserve_numbers(session, f"credit_note:{invoice.series}", issue_date.year, 1)[0]
    note = Invoice(
        customer_id=invoice.customer_id, location_id=invoice.location_id, billing_plan_id=invoice.billing_plan_id,
        type=InvoiceType.CREDIT_NOTE, series=series, year=issue_date.year, sequence=seq,
        number=format_number(NUMBER_FORMAT, series=series, year=issue_date.year, seq=seq),
        variable_symbol=invoice.variable_symbol, constant_symbol=invoice.constant_symbol, issue_date=issue_date,
        taxable_supply_date=issue_date, due_date=issue_date, period_start=invoice.period_start,
        period_end=invoice.period_end, currency=invoice.currency, state=InvoiceState.ISSUED,
        corrects_id=invoice.id, correction_reason=reason, customer_name=invoice.customer_name,
        customer_address=invoice.customer_address, customer_company_id=invoice.customer_company_id,
        customer_vat_id=invoice.customer_vat_id, customer_number=invoice.customer_number,
        supplier=dict(invoice.supplier or {}), net_total=ZERO, vat_total=ZERO, gross_total=ZERO,
        rounding=ZERO, paid_amount=ZERO,
    )
    rates: dict[Decimal, Amounts] = defaultdict(Amounts.zero)
    for pos, ln in enumerate(chosen, start=1):
        back = -remaining[ln.id]
        note.lines.append(InvoiceLine(
            position=pos, description=ln.description, period_start=ln.period_start, period_end=ln.period_end,
            quantity=-to_decimal(ln.quantity), unit=ln.unit, unit_price=ln.unit_price, vat_rate=ln.vat_rate,
            net=back.net, vat=back.vat, gross=back.gross, customer_service_id=ln.customer_service_id,
            corrects_line_id=ln.id,
        ))
        rates[rate_key(ln.vat_rate)] = rates[rate_key(ln.vat_rate)] + back
    total = Amounts.zero()
    for rate in sorted(rates):
        a = rates[rate]
        note.vat_breakdown.append(InvoiceVat(vat_rate=rate, net=a.net, vat=a.vat, gross=a.gross))
        total = total + a
    note.net_total, note.vat_total, note.gross_total = total.net, total.vat, total.gross
    session.add(note)
    session.flush()
    audit.record(session, actor, "invoice.credit_note_issued", "invoice", note.id, {
        "credit_note": note.number, "corrects": invoice.number, "reason": reason,
        "lines": [ln.position for ln in chosen], "gross": note.gross_total,
    }, customer_id=invoice.customer_id)
    # The payments rules decide what the credit does to the invoice's allocations (release
    # an overpayment to customer credit…). Written by another part of the portal: skipped
    # when not installed.
    try:
        from portal.domain.payments import settle_credit_note
    except (ImportError, AttributeError):
        settle_credit_note = None
    if settle_credit_note is not None and note.gross_total < 0:
        settle_credit_note(session, note, actor=actor, on=issue_date)
    return note


def cancel_invoice(session: Session, invoice: Invoice, *, actor: Actor, reason: str,
                   issue_date: date | None = None) -> Invoice | None:
    """Cancel an unpaid invoice: a full credit note of whatever is not yet credited, then the
    invoice's state becomes cancelled. Refused for paid or partly paid invoices (credit
    them instead), credit notes and cancelled invoices; a reason is required. Returns the
    credit note (None when earlier credit notes had already taken everything back).
    Flushes; the caller commits."""
    reason = (reason or "").strip()
    if not reason:
        raise CancellationRefused("A cancellation needs a reason.", field="reason")
    if invoice.type == InvoiceType.CREDIT_NOTE:
        raise CancellationRefused("A credit note cannot be cancelled.")
    if invoice.state == InvoiceState.CANCELLED:
        raise CancellationRefused(f"Invoice {invoice.number} is already cancelled.")
    if to_decimal(invoice.paid_amount) != 0:
        raise CancellationRefused(
            f"Invoice {invoice.number} is (partly) paid and cannot be cancelled; issue a credit note instead.")
    remaining = _remaining_per_line(session, invoice)
    note = None
    if any(a != Amounts.zero() for a in remaining.values()):
        note = issue_credit_note(session, invoice, actor=actor, reason=reason, issue_date=issue_date)
    invoice.state = InvoiceState.CANCELLED
    session.flush()
    audit.record(session, actor, "invoice.cancelled", "invoice", invoice.id, {
        "invoice": invoice.number, "reason": reason, "credit_note": note.number if note else None,
    }, customer_id=invoice.customer_id)
    return note


# ---------------------------------------------------------------- immutability guard

# What may change on an issued invoice: the cached payment state, the stored PDF, and the
# state (only to cancelled). Everything else is the tax document itself.
MUTABLE_INVOICE_FIELDS = frozenset({"paid_amount", "paid_at", "credited_amount", "document_id", "state", "updated_at"})


def _changed(state, key: str) -> tuple[bool, object]:
    hist = state.attrs[key].history
    if not hist.has_changes():
        return False, None
    new = hist.added[0] if hist.added else None
    if hist.deleted and hist.added and hist.deleted[0] == new:
        return False, new
    return True, new


def _guard_invoices(session: Session, flush_context, instances) -> None:
    """Refuse, before anything reaches the database, to modify or delete an issued
    invoice's number, lines, VAT rows or totals (ORM flushes)."""
    for obj in session.dirty:
        if isinstance(obj, Invoice):
            st = inspect(obj)
            if not st.persistent:
                continue
            for attr in st.mapper.column_attrs:
                changed, new = _changed(st, attr.key)
                if not changed:
                    continue
                if attr.key == "state":
                    if new == InvoiceState.CANCELLED:
                        continue
                elif attr.key in MUTABLE_INVOICE_FIELDS:
                    continue
                raise InvoiceImmutable(
                    f"Invoice {obj.number} is issued: its {attr.key} cannot change; issue a credit note.")
        elif isinstance(obj, (InvoiceLine, InvoiceVat)):
            st = inspect(obj)
            if st.persistent and any(_changed(st, a.key)[0] for a in st.mapper.column_attrs
                                     if a.key != "updated_at"):
                raise InvoiceImmutable("The lines and VAT rows of an issued invoice cannot change; "
                                       "issue a credit note.")
    for obj in session.deleted:
        if isinstance(obj, (Invoice, InvoiceLine, InvoiceVat)):
            raise InvoiceImmutable("Issued invoices, their lines and VAT rows are never deleted; "
                                   "issue a credit note.")
    for obj in session.new:
        if isinstance(obj, (InvoiceLine, InvoiceVat)):
            inv = obj.invoice
            if inv is None and obj.invoice_id is not None:
                inv = session.get(Invoice, obj.invoice_id)
            if inv is not None and inv not in session.new:
                raise InvoiceImmutable(f"Invoice {inv.number} is issued: no line or VAT row can be added to it.")


def protect_issued_invoices() -> bool:
    """Install the guard (`_guard_invoices`) on every ORM session, process-wide; idempotent.
    create_app calls it (wiring, not import side effects: importing this module changes
    nothing). Returns True when it was installed by this call."""
    if event.contains(Session, "before_flush", _guard_invoices):
        return False
    event.listen(Session, "before_flush", _guard_invoices)
    return True


def unprotect_issued_invoices() -> None:
    """Remove the guard (for tests that installed it themselves)."""
    if event.contains(Session, "before_flush", _guard_invoices):
        event.remove(Session, "before_flush", _guard_invoices)


# ---------------------------------------------------------------- staff requests


def request_billing_run(session: Session, period: str | date, *, actor: Actor, location_ids=None,
                        issue_date: date | None = None) -> BillingRun:
    """Staff ask for the run of a month; a background job carries it out (`run_billing` with
    `run_id`). The rules: a run bills every location, so only an operator without location
    limits (`location_ids` None) may start one — an operator of some locations would
    otherwise issue invoices (and see totals) of locations that are not theirs; and while a
    run of the same month waits or runs, another is refused (it would add nothing, only
    confuse). The run is recorded as `previewed` (confirmed after the preview, waiting for
    the worker) and audited. Flushes; the caller commits (enqueueing the job commits)."""
    if location_ids is not None:
        raise BillingRunRefused("A billing run bills every location; only an operator without location limits "
                                "may start one.")
    ms, me = _month(period)
    from portal.models import Job, JobState

    waiting = session.scalar(
        select(BillingRun.id)
        .outerjoin(Job, Job.id == BillingRun.job_id)
        .where(BillingRun.period_start == ms,
               BillingRun.state.in_([BillingRunState.PREVIEWED, BillingRunState.RUNNING]),
               or_(BillingRun.job_id.is_(None), Job.state.in_([JobState.QUEUED, JobState.RUNNING])))
        .limit(1)
    )
    if waiting is not None:
        raise BillingRunRefused(f"Billing run {waiting} of {ms:%Y-%m} is already waiting or running.",
                                field="period")
    issue_date = issue_date or date.today()
    run = BillingRun(period_start=ms, period_end=me, issue_date=issue_date, state=BillingRunState.PREVIEWED,
                     started_by_type=actor.type, started_by_id=actor.id, started_by_name=actor.name[:200],
                     started_at=utcnow())
    session.add(run)
    session.flush()
    audit.record(session, actor, "billing.run_requested", "billing_run", run.id,
                 {"period": f"{ms:%Y-%m}", "issue_date": issue_date})
    return run


def send_invoice(session: Session, invoice: Invoice, *, actor: Actor, to: str | None = None):
    """E-mail an invoice (or credit note) with its stored PDF attached, in the customer's
    language, to `to` or else the customer's billing address (the one dunning writes to).
    Refused for a cancelled invoice and without an address. The e-mail goes through the
    outbox (an OutboundEmail row); audited. Returns the OutboundEmail."""
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from portal.documents import document_for, kind_for, read_document
    from portal.mail import send_email

    if invoice.state == InvoiceState.CANCELLED:
        raise InvoiceNotSent(f"Invoice {invoice.number} is cancelled; it is not sent again.")
    customer = invoice.customer
    to = (to or "").strip() or billing_email(session, customer)
    if not to:
        raise InvoiceNotSent("The customer has no e-mail address to send the invoice to.", field="to")
    if "@" not in to or len(to) > 254 or any(ch.isspace() for ch in to):
        raise InvoiceNotSent(f"{to!r} is not an e-mail address.", field="to")
    doc = document_for(session, kind_for(invoice), invoice)
    data = read_document(doc)
    lang = customer.language.value if customer.language else None
    with force_locale(lang):
        subject = (_("Credit note %(number)s", number=invoice.number) if invoice.type == InvoiceType.CREDIT_NOTE
                   else _("Invoice %(number)s", number=invoice.number))
        row = send_email(to, subject, "invoice", customer_id=customer.id,
                         attachments=[(doc.file_name, "application/pdf", data)], invoice=invoice, customer=customer)
    audit.record(session, actor, "invoice.sent", "invoice", invoice.id,
                 {"invoice": invoice.number, "to": to, "email_id": row.id, "state": row.state,
                  "document_sha256": doc.sha256}, customer_id=customer.id)
    return row
