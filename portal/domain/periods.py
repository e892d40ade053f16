"""Billing periods and the arithmetic of a service's price over them: calendar-aligned periods,
the price on a day, VAT split and proration, each rounded half-up to the cent as a billing
run rounds its charges. Plain functions: no session, nothing written.
"""
from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from portal.models import (
    CustomerService,
    Period,
    ServiceDefinition,
)

CENT = Decimal("0.01")
# -- small date and money helpers -------------------------------------------------------------


def add_months(d: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def period_bounds(period: Period, d: date) -> tuple[date, date]:
    """The calendar-aligned billing period (first day, last day) that contains `d`.
    A one-off service has no cycle; it is treated as monthly for proration."""
    months = period.months or 1
    first_month = (d.month - 1) // months * months + 1
    start = date(d.year, first_month, 1)
    return start, add_months(start, months) - timedelta(days=1)


def next_period_start(period: Period, d: date) -> date:
    return period_bounds(period, d)[1] + timedelta(days=1)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def price_on(service: CustomerService, d: date, definition: ServiceDefinition | None = None) -> Decimal:
    """The price per period that applies on `d`: the override, else the latest price change
    effective by then, else the definition's price."""
    definition = definition or service.definition
    if definition is service.definition and service.price_override is not None:
        return service.price_override
    price = definition.price
    for change in definition.price_changes:  # ordered by effective_from
        if change.effective_from <= d:
            price = change.new_price
    return price


def split_vat(amount: Decimal, vat_rate: Decimal, includes_vat: bool) -> dict[str, Decimal]:
    """net/vat/gross of an amount (gross when `includes_vat`), rounded half-up to cents."""
    rate = vat_rate / Decimal(100)
    if includes_vat:
        gross = _money(amount)
        vat = _money(gross * rate / (1 + rate))
        return {"net": gross - vat, "vat": vat, "gross": gross}
    net = _money(amount)
    vat = _money(net * rate)
    return {"net": net, "vat": vat, "gross": net + vat}


def prorated(price: Decimal, period: Period, first: date, last: date) -> Decimal:
    """`price` per period × days in service / days in period for every period the span
    [first, last] touches, each rounded half-up to the cent as a billing run rounds its
    charges, summed."""
    total = Decimal("0.00")
    d = first
    while d <= last:
        p_start, p_end = period_bounds(period, d)
        seg_end = min(p_end, last)
        days, period_days = (seg_end - d).days + 1, (p_end - p_start).days + 1
        total += _money(price if days >= period_days else price * Decimal(days) / Decimal(period_days))
        d = seg_end + timedelta(days=1)
    return total
