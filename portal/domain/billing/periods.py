"""Billing periods: the month a run bills ("YYYY-MM"), calendar quarters and years, days
between two dates (what proration counts)."""
from __future__ import annotations

import calendar
import re
from datetime import date

from flask_babel import gettext as _

from portal.domain.billing.errors import InvalidPeriod

# ---------------------------------------------------------------- periods


_PERIOD_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


def billing_period(text: str) -> tuple[date, date]:
    """The first and last day of the month written "YYYY-MM" (e.g. "2026-11" →
    (2026-11-01, 2026-11-30)). Anything else is an `InvalidPeriod`."""
    m = _PERIOD_RE.match(text or "") if isinstance(text, str) else None
    if not m:
        raise InvalidPeriod(_("A billing period is a month written YYYY-MM, not %(text)s.", text=repr(text)),
                            field="period")
    year, month = int(m.group(1)), int(m.group(2))
    if not (1 <= month <= 12) or not (1900 <= year <= 9999):
        raise InvalidPeriod(_("%(text)s is not a valid month.", text=repr(text)), field="period")
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
