"""What both faces share at the HTTP edge: security headers, error pages, template helpers."""
from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from flask import Flask, g, render_template, request
from flask_babel import (
    format_currency,
    format_date,
    format_datetime,
    format_decimal,
    get_locale,
)
from flask_babel import gettext as _
from flask_babel import refresh as babel_refresh
from flask_wtf.csrf import CSRFError
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from portal.domain.wording import PAGE_DATE
from portal.extensions import db
from portal.web.htmx import is_htmx
from portal.web.problems import problem, wants_problem

ROW_ID_MAX = 2**31 - 1

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)


def _security_headers(response):
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    # Not "no-referrer": Flask-WTF checks the Referer on HTTPS and would reject every form.
    h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint != "static":
        # Pages show personal data: never store them in shared caches.
        h.setdefault("Cache-Control", "no-store")
    if "HX-Request" in request.headers:
        h.add("Vary", "HX-Request")
    return response


def _http_detail(error: Exception | None) -> str | None:
    """An HTTPException's own description when a view gave one (abort(404, "…")), not the default."""
    if isinstance(error, HTTPException) and error.description != type(error).description:
        return error.description
    return None


def _error_page(status: int, message: str | None = None, error: Exception | None = None):
    # Keep the exception's own headers (Allow on a 405, Retry-After...), not its body.
    headers = []
    if isinstance(error, HTTPException):
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if wants_problem():
        return problem(status, message or _http_detail(error), headers=headers)
    if is_htmx():
        # HTMX swaps nothing on errors by default; send a short fragment it can show.
        return render_template("errors/_fragment.html", status=status, message=message), status, headers
    return (render_template([f"errors/{status}.html", "errors/generic.html"], status=status, message=message),
            status, headers)


def money(amount, currency: str = "CZK") -> str:
    if amount is None:
        return ""
    amount = Decimal(amount)
    if not amount.is_finite():
        return format_currency(amount, str(currency))
    # Babel's currency formatting costs ~15-60 µs a call and lists repeat the same amounts:
    # remember the text per locale, currency and value (the sign too: -0.00 equals 0.00).
    return _money_text(_locale_id(), str(currency), amount, amount.is_signed())


def _locale_id() -> str:
    return str(get_locale() or "")


# Pages write a date one way per locale ("Dec 16, 2026", "16. 12. 2026"), never a second,
# shorter style beside it (12/16/26): the `date` filter's default, and the `datetime`
# filter is that date with the time to the minute. Rules' messages use the same style.


@lru_cache(maxsize=64)
def _page_datetime_pattern(locale: str) -> str:
    loc = Locale.parse(locale or "en")
    return (str(loc.datetime_formats[PAGE_DATE])
            .replace("{1}", loc.date_formats[PAGE_DATE].pattern)
            .replace("{0}", loc.time_formats["short"].pattern))


def page_datetime(value: datetime) -> str:
    """A moment as pages write it: the page date and the time in hours and minutes, in the
    reader's time zone."""
    return format_datetime(value, _page_datetime_pattern(_locale_id()))


def number(value, places: int = 2) -> str:
    """A plain number in the reader's locale ("1 234,5" in Czech, "1,234.5" in English),
    rounded to `places` decimals and without trailing zeros."""
    if value is None:
        return ""
    q = Decimal(str(value)).quantize(Decimal(1).scaleb(-places))
    return format_decimal(q, format="#,##0." + "#" * places if places else "#,##0")


@lru_cache(maxsize=8192)
def _date_text(locale: str, value: date, fmt: str) -> str:
    return format_date(value, fmt)


# CLDR's currency spacing, which Babel leaves out: a currency written as letters (CZK, US$)
# is kept apart from the digits by a no-break space ("CZK 99.00", not "CZK99.00").
_CODE_BEFORE_DIGIT = re.compile(r"([A-Za-z])(?=[0-9])")
_DIGIT_BEFORE_CODE = re.compile(r"(?<=[0-9])(?=[A-Za-z])")


@lru_cache(maxsize=8192)
def _money_text(locale: str, currency: str, amount: Decimal, _signed: bool) -> str:
    text = format_currency(amount, currency)
    return _DIGIT_BEFORE_CODE.sub("\u00a0", _CODE_BEFORE_DIGIT.sub("\\1\u00a0", text))


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is shown."""
    return message


# The state labels of badges and lists: msgids, translated where shown (the tables macros).
STATE_LABELS = {
    "ordered": N_("Ordered"), "active": N_("Active"), "blocked": N_("Blocked"), "cancelled": N_("Cancelled"),
    "draft": N_("Draft"), "issued": N_("Issued"), "paid": N_("Paid"), "unpaid": N_("Unpaid"),
    "overdue": N_("Overdue"), "accepted": N_("Accepted"), "invalid": N_("Invalid"), "new": N_("New"),
    "in_progress": N_("In progress"), "waiting_for_customer": N_("Waiting for customer"),
    "resolved": N_("Resolved"), "closed": N_("Closed"), "unmatched": N_("Unmatched"),
    "partial": N_("Partially paid"), "matched": N_("Matched"), "overpaid": N_("Overpaid"), "reversed": N_("Reversed"),
    "running": N_("Running"), "done": N_("Done"), "failed": N_("Failed"), "pending": N_("Pending"),
    "queued": N_("Queued"), "sent": N_("Sent"), "suspended": N_("Suspended"), "delivered": N_("Delivered"),
}


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every URL: no row id exceeds the 32-bit key, so a larger number is a 404
    by routing instead of an overflow in the database driver."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 — werkzeug's name
        kwargs.setdefault("max", ROW_ID_MAX)
        super().__init__(map, *args, **kwargs)


def init_web(app: Flask) -> None:
    app.url_map.converters["int"] = RowIdConverter
    app.after_request(_security_headers)

    @app.before_request
    def _request_id():
        # The locale is cached per context; a context may outlive one request (tests, CLI).
        babel_refresh()
        # PostgreSQL text cannot hold NUL: replace it, so forms answer with their usual
        # messages instead of failing in the database.
        if request.method in ("POST", "PUT", "PATCH") and any(
            "\x00" in v for values in request.form.listvalues() for v in values
        ):
            request.form = ImmutableMultiDict(
                [(k, v.replace("\x00", "\ufffd")) for k, values in request.form.lists() for v in values]
            )
        if any("\x00" in v for values in request.args.listvalues() for v in values):
            request.args = ImmutableMultiDict(
                [(k, v.replace("\x00", "\ufffd")) for k, values in request.args.lists() for v in values]
            )
        g.request_id = request.headers.get("X-Request-ID", "")[:40] or secrets.token_hex(8)

    @app.errorhandler(CSRFError)
    def _csrf_error(e):
        return _error_page(400, _("The form expired or was sent from elsewhere. Please reload the page and try again."))

    for status in (400, 403, 404, 405, 413, 429):
        app.register_error_handler(status, lambda e, s=status: _error_page(s, error=e))

    @app.errorhandler(500)
    def _server_error(e):
        db.session.rollback()
        return _error_page(500)

    def has_endpoint(name: str) -> bool:
        return name in app.view_functions

    def current_locale_code() -> str:
        return str(get_locale() or "en")

    # Globals (not a context processor): imported macros see them too.
    app.jinja_env.globals["has_endpoint"] = has_endpoint
    # The msgids of state labels (templates/_macros/tables.html translates them).
    app.jinja_env.globals["state_labels"] = STATE_LABELS

    @app.context_processor
    def _globals():
        return {"current_locale_code": current_locale_code()}

    app.jinja_env.filters["money"] = money

    def _date(value, fmt: str = PAGE_DATE):
        if value is None:
            return ""
        if isinstance(value, datetime):
            return page_datetime(value) if fmt == PAGE_DATE else format_datetime(value, fmt)
        if isinstance(value, date):
            # A date (no time zone to convert to) reads the same for the same locale.
            return _date_text(_locale_id(), value, fmt)
        if isinstance(value, str):
            # A date kept as ISO text (a request's payload) reads like any other date.
            try:
                return _date_text(_locale_id(), date.fromisoformat(value), fmt)
            except ValueError:
                return value
        return value

    app.jinja_env.filters["date"] = _date
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["datetime"] = lambda v, fmt=None: (page_datetime(v) if fmt is None else format_datetime(v, fmt)) if v else ""
