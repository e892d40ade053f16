"""What a period costs: charge drafts, the catalogue a run loads once, the price in effect,
service and one-off charges with proration and discounts, usage charges."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.billing.periods import days_between, quarter_bounds, year_bounds
from portal.domain.money import (
    ZERO,
    prorate,
    rate_key,
    round_money,
    split_price,
    to_decimal,
)
from portal.models import (
    Aggregation,
    BillingPlan,
    ChargeKind,
    Currency,
    CustomerService,
    Discount,
    DiscountKind,
    Location,
    Partner,
    Period,
    PriceChange,
    Rounding,
    ServiceDefinition,
    ServiceState,
    UsageItem,
    UsageTracker,
)

UNITS = {Period.MONTHLY: "month", Period.QUARTERLY: "quarter", Period.YEARLY: "year", Period.ONE_OFF: "pcs"}


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
