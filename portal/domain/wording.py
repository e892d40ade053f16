"""How rules write values into the messages people read: in the reader's language and locale,
the way pages write them, so a refusal says "Dec 16, 2026" or "16. 12. 2026", never 2026-12-16.

A refusal is written with gettext and named placeholders, the values formatted here:

    raise TransitionNotAllowed(_("A step is already scheduled for %(day)s.", day=day(when)))
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask_babel import format_currency, format_date

# Pages write a date one way per locale ("Dec 16, 2026", "16. 12. 2026"), never a second,
# shorter style beside it: the web layer's `date` filter uses the same style.
PAGE_DATE = "medium"


def day(value: date | datetime) -> str:
    """A date as pages write it, in the reader's locale."""
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, PAGE_DATE)


def amount(value: Decimal, currency: str = "CZK") -> str:
    """Money as pages write it, in the reader's locale."""
    return format_currency(Decimal(value), str(currency))
