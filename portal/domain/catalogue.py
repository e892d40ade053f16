"""The catalogue: service groups, service definitions (tariffs) and their prices, billing
plans and discounts. Every change is audited.

Prices change from a date, never retroactively (domain.md §2 "price_change"). Billing
charges a period at the price effective on the period's first day (`billing.effective_price`,
`_Catalog.price_on`): the definition's latest PriceChange with effective_from ≤ that day, else
the definition's own `price`, which is therefore the price before the first change and is not
edited once set. A new price is a PriceChange; the rule that keeps issued invoices true is
`earliest_price_change(...)`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import diff, record, snapshot
from portal.domain.lifecycle import next_period_start, period_bounds
from portal.models import (
    BillingPlan,
    Charge,
    ChargeKind,
    Customer,
    CustomerService,
    Delivery,
    Discount,
    DiscountKind,
    PaymentMethod,
    Period,
    PriceChange,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
    UsageTracker,
)

# The Czech VAT rates (standard, reduced, exempt). A rate outside this set is a typo.
VAT_RATES: tuple[Decimal, ...] = (Decimal("21.00"), Decimal("12.00"), Decimal("0.00"))
MAX_PRICE = Decimal("99999999.9999")  # Numeric(12, 4)
# Charges that carry a definition's price for a period.
PRICED_KINDS = (ChargeKind.SERVICE, ChargeKind.ONE_OFF)

GROUP_FIELDS = ["name", "kind", "position"]
DEFINITION_FIELDS = [
    "group_id", "code", "name", "customer_name", "description", "price", "price_includes_vat", "vat_rate",
    "period", "commitment_months", "notice_days", "selfcare_changeable", "usage_tracker_id", "valid_from",
    "valid_to", "active",
]
PLAN_FIELDS = [
    "name", "customer_name", "invoice_day", "due_days", "delivery", "payment_method", "block_enabled", "series",
    "constant_symbol", "active",
]
DISCOUNT_FIELDS = [
    "name", "kind", "value", "customer_service_id", "customer_id", "service_group_id", "valid_from", "valid_to",
    "min_commitment_months", "shown_on_invoice",
]


class CatalogueError(DomainError):
    """A catalogue rule refused the change."""


MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger number names no row (and SQLite would overflow)


def _get(session: Session, model, ident):
    """The row with this id, or None for no row — also for ids no row can have."""
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        return None
    return session.get(model, ident) if 0 < ident <= MAX_ID else None


def _text(value, field: str, max_len: int, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise CatalogueError(_("This field is required."), field=field)
    if len(text) > max_len:
        raise CatalogueError(_("Use at most %(n)d characters.", n=max_len), field=field)
    return text


def _decimal(value, field: str) -> Decimal:
    try:
        number = Decimal(str(value)) if value is not None and str(value).strip() != "" else None
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite():
        raise CatalogueError(_("Enter a number."), field=field)
    return number


def _price(value, field: str = "price") -> Decimal:
    price = _decimal(value, field)
    if price < 0:
        raise CatalogueError(_("A price cannot be negative."), field=field)
    if price > MAX_PRICE:
        raise CatalogueError(_("This price is too large."), field=field)
    if price != price.quantize(Decimal("0.0001")):
        raise CatalogueError(_("Use at most four decimal places."), field=field)
    return price_text(price)


def price_text(price: Decimal) -> Decimal:
    """A price with two decimals unless it needs more (605 → 605.00, 0.1234 stays), so
    audit entries read the same whether the number came from a form or the database."""
    cents = price.quantize(Decimal("0.01"))
    return cents if cents == price else price.quantize(Decimal("0.0001"))


def _vat_rate(value) -> Decimal:
    rate = _decimal(value, "vat_rate")
    for allowed in VAT_RATES:
        if rate == allowed:
            return allowed
    raise CatalogueError(
        _("Choose one of the VAT rates: %(rates)s.", rates=", ".join(f"{r.normalize():f} %" for r in VAT_RATES)),
        field="vat_rate",
    )


def _int(value, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CatalogueError(_("Enter a whole number."), field=field) from None
    if not low <= number <= high:
        raise CatalogueError(_("Enter a number from %(low)d to %(high)d.", low=low, high=high), field=field)
    return number


def _enum(enum_cls, value, field: str):
    try:
        return enum_cls(value)
    except ValueError:
        raise CatalogueError(_("Choose one of the options."), field=field) from None


def _date(value, field: str, required: bool = True) -> date | None:
    if value is None or value == "":
        if required:
            raise CatalogueError(_("Enter a date."), field=field)
        return None
    if not isinstance(value, date):
        raise CatalogueError(_("Enter a date."), field=field)
    return value


def _validity(valid_from, valid_to) -> tuple[date, date | None]:
    start = _date(valid_from, "valid_from")
    end = _date(valid_to, "valid_to", required=False)
    if end is not None and end < start:
        raise CatalogueError(_("The end cannot be before the start."), field="valid_to")
    return start, end


# ------------------------------------------------------------------------------- groups

def save_group(session: Session, actor: Actor, group: ServiceGroup | None, *, name: str, kind,
               position: int = 0) -> ServiceGroup:
    """Create (group=None) or edit a service group; names are unique."""
    name = _text(name, "name", 100)
    kind = _enum(ServiceGroupKind, kind, "kind")
    position = _int(position, "position", -1000, 1000)
    clash = session.scalar(select(ServiceGroup.id).where(func.lower(ServiceGroup.name) == name.lower()))
    if clash is not None and (group is None or clash != group.id):
        raise CatalogueError(_("A group with this name already exists."), field="name")
    before = snapshot(group, GROUP_FIELDS) if group is not None else {}
    if group is None:
        group = ServiceGroup(name=name, kind=kind, position=position)
        session.add(group)
    else:
        group.name, group.kind, group.position = name, kind, position
    session.flush()
    changes = diff(before, snapshot(group, GROUP_FIELDS))
    if before and not changes:
        return group
    record(session, actor, "service_group.updated" if before else "service_group.created", "service_group",
           group.id, changes)
    return group


# -------------------------------------------------------------------------- definitions

@dataclass
class DefinitionInput:
    """What a form says about a definition (price only when creating)."""

    group_id: int | None
    code: str
    name: str
    customer_name: str
    description: str = ""
    price: Decimal | str | None = None
    price_includes_vat: bool = True
    vat_rate: Decimal | str | None = None
    period: str = Period.MONTHLY.value
    commitment_months: int = 0
    notice_days: int = 30
    selfcare_changeable: bool = False
    usage_tracker_id: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    active: bool = True
    target_ids: Iterable[int] = ()


def definition_in_use(session: Session, definition: ServiceDefinition) -> bool:
    """Some customer service has (or had) this definition."""
    return session.scalar(
        select(CustomerService.id).where(CustomerService.definition_id == definition.id).limit(1)
    ) is not None


def _definition_values(session: Session, data: DefinitionInput, definition: ServiceDefinition | None) -> dict:
    group = _get(session, ServiceGroup, data.group_id) if data.group_id else None
    if group is None:
        raise CatalogueError(_("Choose a group."), field="group_id")
    code = _text(data.code, "code", 40).upper()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9_.-]*", code):
        raise CatalogueError(_("Use letters, digits, dots, dashes and underscores."), field="code")
    clash = session.scalar(select(ServiceDefinition.id).where(ServiceDefinition.code == code))
    if clash is not None and (definition is None or clash != definition.id):
        raise CatalogueError(_("A service with this code already exists."), field="code")
    tracker_id = data.usage_tracker_id or None
    if tracker_id is not None and _get(session, UsageTracker, tracker_id) is None:
        raise CatalogueError(_("Choose one of the options."), field="usage_tracker_id")
    valid_from, valid_to = _validity(data.valid_from, data.valid_to)
    values = {
        "group_id": group.id,
        "code": code,
        "name": _text(data.name, "name", 200),
        "customer_name": _text(data.customer_name, "customer_name", 200),
        "description": _text(data.description, "description", 2000, required=False),
        "price_includes_vat": bool(data.price_includes_vat),
        "vat_rate": _vat_rate(data.vat_rate),
        "period": _enum(Period, data.period, "period"),
        "commitment_months": _int(data.commitment_months, "commitment_months", 0, 120),
        "notice_days": _int(data.notice_days, "notice_days", 0, 365),
        "selfcare_changeable": bool(data.selfcare_changeable),
        "usage_tracker_id": tracker_id,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "active": bool(data.active),
    }
    if definition is None:
        values["price"] = _price(data.price)
    return values


def _targets(session: Session, definition: ServiceDefinition | None, target_ids: Iterable[int]) -> list[ServiceDefinition]:
    ids = sorted({int(i) for i in target_ids})
    if any(not 0 < i <= MAX_ID for i in ids):
        raise CatalogueError(_("Choose one of the options."), field="target_ids")
    if definition is not None and definition.id in ids:
        raise CatalogueError(_("A service cannot be a plan-change target of itself."), field="target_ids")
    targets = list(session.scalars(select(ServiceDefinition).where(ServiceDefinition.id.in_(ids)))) if ids else []
    if len(targets) != len(ids):
        raise CatalogueError(_("Choose one of the options."), field="target_ids")
    return targets


def _definition_snapshot(definition: ServiceDefinition) -> dict:
    snap = snapshot(definition, DEFINITION_FIELDS)
    snap["allowed_targets"] = sorted(t.code for t in definition.allowed_targets)
    return snap


def create_definition(session: Session, actor: Actor, data: DefinitionInput) -> ServiceDefinition:
    """A new tariff: price ≥ 0, VAT rate from `VAT_RATES`, unique code; plan-change targets
    must exist."""
    values = _definition_values(session, data, None)
    targets = _targets(session, None, data.target_ids)
    definition = ServiceDefinition(**values)
    definition.allowed_targets = targets
    session.add(definition)
    session.flush()
    record(session, actor, "service_definition.created", "service_definition", definition.id,
           diff({}, _definition_snapshot(definition)))
    return definition


def update_definition(session: Session, actor: Actor, definition: ServiceDefinition,
                      data: DefinitionInput) -> dict:
    """Edit a tariff (not its price: see `schedule_price_change`). A definition may not be its
    own plan-change target. Once a customer service uses it, its period and whether its price
    includes VAT stay as they are: both decide how periods already charged were computed.
    Returns the changes (empty when nothing changed; then nothing is audited)."""
    values = _definition_values(session, data, definition)
    targets = _targets(session, definition, data.target_ids)
    if (values["period"] != definition.period or values["price_includes_vat"] != definition.price_includes_vat) \
            and definition_in_use(session, definition):
        field = "period" if values["period"] != definition.period else "price_includes_vat"
        raise CatalogueError(_("Customers already have this service: this cannot change any more. "
                               "Make a new service and let customers change to it."), field=field)
    before = _definition_snapshot(definition)
    for key, value in values.items():
        setattr(definition, key, value)
    definition.allowed_targets = targets
    session.flush()
    changes = diff(before, _definition_snapshot(definition))
    if changes:
        record(session, actor, "service_definition.updated", "service_definition", definition.id, changes)
    return changes


# ------------------------------------------------------------------------------- prices

def price_on(definition: ServiceDefinition, day: date) -> Decimal:
    """The definition's price effective on `day`, as billing reads it."""
    price = definition.price
    for change in definition.price_changes:  # ordered by effective_from
        if change.effective_from <= day:
            price = change.new_price
    return price


def last_charged_day(session: Session, definition: ServiceDefinition) -> date | None:
    """The last day of the latest period charged (invoiced or waiting for its invoice) to any
    customer service of this definition, or None."""
    return session.scalar(
        select(func.max(Charge.period_end))
        .join(CustomerService, Charge.customer_service_id == CustomerService.id)
        .where(CustomerService.definition_id == definition.id, Charge.kind.in_(PRICED_KINDS))
    )


def starts_a_period(definition: ServiceDefinition, day: date) -> bool:
    """`day` is the first day of one of the definition's billing periods (a month, a
    calendar quarter or year; one-off services are charged per month)."""
    return period_bounds(definition.period, day)[0] == day


def earliest_price_change(session: Session, definition: ServiceDefinition, today: date) -> date:
    """The first day a new price may take effect: the first start of a billing period that
    is not before today and comes after the last period already charged for any service of
    this definition.

    Why: a charge's price is fixed when its period is charged (and issued invoices never
    change), while other rules (blocked-day credits, prorated plan changes) read the price
    on a day inside a period. A change effective on or before the end of a charged period,
    or in the middle of a period, would make those disagree with the invoice; a change
    dated before today would be retroactive. So a price changes at the start of a period,
    after every charged period, and not in the past."""
    last = last_charged_day(session, definition)
    day = max(today, last + timedelta(days=1)) if last is not None else today
    return day if starts_a_period(definition, day) else next_period_start(definition.period, day)


def schedule_price_change(session: Session, actor: Actor, definition: ServiceDefinition, *, new_price,
                          effective_from: date | None, note: str = "", today: date) -> PriceChange:
    """A new price from `effective_from` on: the first day of a billing period, no earlier
    than `earliest_price_change`. A change already waiting for the same day is replaced."""
    price = _price(new_price, "new_price")
    effective_from = _date(effective_from, "effective_from")
    earliest = earliest_price_change(session, definition, today)
    if effective_from < earliest:
        raise CatalogueError(
            _("A new price can take effect on %(day)s at the earliest: periods before it are already "
              "charged or in the past.", day=earliest.isoformat()),
            field="effective_from",
        )
    if not starts_a_period(definition, effective_from):
        raise CatalogueError(
            _("A price changes on the first day of a billing period, e.g. %(day)s.",
              day=next_period_start(definition.period, effective_from).isoformat()),
            field="effective_from",
        )
    note = _text(note, "note", 200, required=False)
    change = session.scalar(select(PriceChange).where(PriceChange.definition_id == definition.id,
                                                      PriceChange.effective_from == effective_from))
    old_price = price_text(price_on(definition, effective_from))
    if change is None:
        change = PriceChange(definition=definition, new_price=price, effective_from=effective_from, note=note)
        session.add(change)
    else:
        change.new_price, change.note = price, note
    session.flush()
    session.expire(definition, ["price_changes"])
    record(session, actor, "service_definition.price_scheduled", "service_definition", definition.id,
           {"price": [old_price, price], "effective_from": effective_from, "note": note,
            "price_change_id": change.id})
    return change


def cancel_price_change(session: Session, actor: Actor, change: PriceChange, *, today: date) -> None:
    """Withdraw a price change that has not taken effect: same dates as scheduling one."""
    definition = change.definition
    earliest = earliest_price_change(session, definition, today)
    if change.effective_from < earliest:
        raise CatalogueError(_("This price is already in effect; schedule a new price instead."))
    record(session, actor, "service_definition.price_cancelled", "service_definition", definition.id,
           {"price": [price_text(change.new_price), None], "effective_from": change.effective_from})
    session.delete(change)
    session.flush()
    session.expire(definition, ["price_changes"])


# -------------------------------------------------------------------------- billing plans

@dataclass
class PlanInput:
    name: str
    customer_name: str
    invoice_day: int = 1
    due_days: int = 14
    delivery: str = Delivery.EMAIL.value
    payment_method: str = PaymentMethod.TRANSFER.value
    block_enabled: bool = True
    series: str = "FV"
    constant_symbol: str = "0308"
    active: bool = True


def save_billing_plan(session: Session, actor: Actor, plan: BillingPlan | None, data: PlanInput) -> BillingPlan:
    """Create (plan=None) or edit a billing plan. Invoice day 1–28, due days 0–120; the
    series is letters and digits with at most two digits (the invoice's variable symbol is
    the year, the series' digits and six digits of sequence, at most ten); the constant
    symbol is four digits. Issued invoices keep the series and due date they were issued with."""
    name = _text(data.name, "name", 100)
    clash = session.scalar(select(BillingPlan.id).where(func.lower(BillingPlan.name) == name.lower()))
    if clash is not None and (plan is None or clash != plan.id):
        raise CatalogueError(_("A billing plan with this name already exists."), field="name")
    series = _text(data.series, "series", 8).upper()
    if not re.fullmatch(r"[A-Z0-9]+", series):
        raise CatalogueError(_("Use letters and digits only."), field="series")
    if sum(c.isdigit() for c in series) > 2:
        raise CatalogueError(_("Use at most two digits: the variable symbol has room for no more."), field="series")
    constant = _text(data.constant_symbol, "constant_symbol", 4)
    if not re.fullmatch(r"\d{4}", constant):
        raise CatalogueError(_("Enter four digits."), field="constant_symbol")
    values = {
        "name": name,
        "customer_name": _text(data.customer_name, "customer_name", 200),
        "invoice_day": _int(data.invoice_day, "invoice_day", 1, 28),
        "due_days": _int(data.due_days, "due_days", 0, 120),
        "delivery": _enum(Delivery, data.delivery, "delivery"),
        "payment_method": _enum(PaymentMethod, data.payment_method, "payment_method"),
        "block_enabled": bool(data.block_enabled),
        "series": series,
        "constant_symbol": constant,
        "active": bool(data.active),
    }
    before = snapshot(plan, PLAN_FIELDS) if plan is not None else {}
    if plan is None:
        plan = BillingPlan(**values)
        session.add(plan)
    else:
        for key, value in values.items():
            setattr(plan, key, value)
    session.flush()
    changes = diff(before, snapshot(plan, PLAN_FIELDS))
    if before and not changes:
        return plan
    record(session, actor, "billing_plan.updated" if before else "billing_plan.created", "billing_plan", plan.id,
           changes)
    return plan


# ------------------------------------------------------------------------------ discounts

@dataclass
class DiscountInput:
    name: str
    kind: str
    value: Decimal | str | None
    customer_id: int | None
    customer_service_id: int | None = None
    service_group_id: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    min_commitment_months: int = 0
    shown_on_invoice: bool = True


def discounts_statement(location_ids: Iterable[int] | None, *, text: str = "",
                        current_on: date | None = None) -> Select:
    """(Discount, its customer) rows of customers in `location_ids` (None: all), newest first:
    a discount on one service belongs to that service's customer. `text` matches the name or
    the customer number; `current_on` keeps the discounts valid that day."""
    service = aliased(CustomerService)
    owner = func.coalesce(Discount.customer_id, service.customer_id)
    stmt = (select(Discount, Customer)
            .outerjoin(service, Discount.customer_service_id == service.id)
            .join(Customer, Customer.id == owner))
    if location_ids is not None:
        stmt = stmt.where(Customer.location_id.in_(list(location_ids)))
    if text:
        like = f"%{text.lower()}%"
        stmt = stmt.where(or_(func.lower(Discount.name).like(like), Customer.customer_number.ilike(like)))
    if current_on is not None:
        stmt = stmt.where(Discount.valid_from <= current_on,
                          or_(Discount.valid_to.is_(None), Discount.valid_to >= current_on))
    return stmt.order_by(Discount.id.desc())


def discount_last_charged_day(session: Session, customer_id: int, customer_service_id: int | None) -> date | None:
    """The last day charged to what a discount covers: its service, or (a customer-wide
    discount) any of the customer's services."""
    stmt = select(func.max(Charge.period_end)).where(Charge.kind.in_(PRICED_KINDS))
    if customer_service_id is not None:
        stmt = stmt.where(Charge.customer_service_id == customer_service_id)
    else:
        stmt = stmt.where(Charge.customer_id == customer_id)
    return session.scalar(stmt)


def create_discount(session: Session, actor: Actor, data: DiscountInput, customer: Customer) -> Discount:
    """A discount for one of `customer`'s services, or for all of them (optionally one group's).
    Percent 0–100, amount > 0. It may not start on or before the last day already charged to
    what it covers: issued invoices do not change, so a discount cannot reach back into them."""
    name = _text(data.name, "name", 200)
    kind = _enum(DiscountKind, data.kind, "kind")
    value = _price(data.value, "value")
    if value <= 0:
        raise CatalogueError(_("Enter a value above zero."), field="value")
    if kind == DiscountKind.PERCENT and value > 100:
        raise CatalogueError(_("A percentage is at most 100."), field="value")
    service_id = data.customer_service_id or None
    if service_id is not None:
        service = _get(session, CustomerService, service_id)
        if service is None or service.customer_id != customer.id:
            raise CatalogueError(_("Choose one of the customer's services."), field="customer_service_id")
    group_id = data.service_group_id or None
    if group_id is not None and _get(session, ServiceGroup, group_id) is None:
        raise CatalogueError(_("Choose one of the options."), field="service_group_id")
    valid_from, valid_to = _validity(data.valid_from, data.valid_to)
    last = discount_last_charged_day(session, customer.id, service_id)
    if last is not None and valid_from <= last:
        raise CatalogueError(_("Periods up to %(day)s are already charged: start the discount after that.",
                               day=last.isoformat()), field="valid_from")
    discount = Discount(
        name=name, kind=kind, value=value, customer_id=customer.id, customer_service_id=service_id,
        service_group_id=group_id, valid_from=valid_from, valid_to=valid_to,
        min_commitment_months=_int(data.min_commitment_months, "min_commitment_months", 0, 120),
        shown_on_invoice=bool(data.shown_on_invoice),
    )
    session.add(discount)
    session.flush()
    record(session, actor, "discount.created", "discount", discount.id,
           diff({}, snapshot(discount, DISCOUNT_FIELDS)), customer_id=customer.id)
    return discount


def update_discount(session: Session, actor: Actor, discount: Discount, *, name: str, valid_to: date | None,
                    shown_on_invoice: bool) -> dict:
    """Rename a discount, end it (or extend it), or choose whether invoices show it. Its end
    may not come before the last day already charged to what it covers (what was invoiced
    stays as it was), nor before its start."""
    before = snapshot(discount, DISCOUNT_FIELDS)
    name = _text(name, "name", 200)
    valid_to = _date(valid_to, "valid_to", required=False)
    if valid_to is not None:
        if valid_to < discount.valid_from:
            raise CatalogueError(_("The end cannot be before the start."), field="valid_to")
        last = discount_last_charged_day(session, discount.customer_id, discount.customer_service_id)
        if last is not None and discount.valid_from <= last and valid_to < last:
            raise CatalogueError(_("Periods up to %(day)s are already charged: end the discount on that day "
                                   "or later.", day=last.isoformat()), field="valid_to")
    if shown_on_invoice != discount.shown_on_invoice:
        last = discount_last_charged_day(session, discount.customer_id, discount.customer_service_id)
        if last is not None and discount.valid_from <= last:
            raise CatalogueError(_("Invoices already show this discount one way; it cannot change."),
                                 field="shown_on_invoice")
    discount.name, discount.valid_to, discount.shown_on_invoice = name, valid_to, bool(shown_on_invoice)
    session.flush()
    changes = diff(before, snapshot(discount, DISCOUNT_FIELDS))
    if changes:
        record(session, actor, "discount.updated", "discount", discount.id, changes, customer_id=discount.customer_id)
    return changes
