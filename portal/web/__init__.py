"""What both faces share at the HTTP edge: security headers, error pages, template helpers."""
from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from flask import Flask, current_app, g, render_template, request, url_for
from flask_babel import (
    format_currency,
    format_date,
    format_datetime,
    format_decimal,
    get_locale,
    get_translations,
)
from flask_babel import gettext as _
from flask_babel import refresh as babel_refresh
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException

from portal.domain.wording import PAGE_DATE
from portal.web.htmx import is_htmx

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


def _error_page(status: int, message: str | None = None, error: Exception | None = None):
    # Keep the exception's own headers (Allow on a 405, Retry-After...), not its body.
    headers = []
    if isinstance(error, HTTPException):
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
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
    """str(get_locale()), remembered on the request's Babel context while its locale stays the
    same object: lists format dozens of amounts and dates a page."""
    try:
        ctx = g._flask_babel
    except (AttributeError, RuntimeError):
        return str(get_locale() or "")
    locale = getattr(ctx, "babel_locale", None)
    cached = getattr(ctx, "portal_locale_id", None)
    if locale is not None and cached is not None and cached[0] is locale:
        return cached[1]
    text = str(get_locale() or "")
    ctx.portal_locale_id = (getattr(ctx, "babel_locale", None), text)
    return text


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


def _translations():
    """flask_babel.get_translations(), remembered on the request's Babel context for as long
    as its locale and domain stay the same objects (refresh() and force_locale() replace the
    locale): templates call `_()` dozens of times a page, and each lookup through Flask-Babel
    costs several context-local look-ups."""
    try:
        ctx = g._flask_babel
    except (AttributeError, RuntimeError):
        return get_translations()
    locale = getattr(ctx, "babel_locale", None)
    cached = getattr(ctx, "portal_translations", None)
    if cached is not None and locale is not None and cached[0] is locale and cached[1] is getattr(ctx, "babel_domain", None):
        return cached[2]
    translations = get_translations()
    ctx.portal_translations = (getattr(ctx, "babel_locale", None), getattr(ctx, "babel_domain", None), translations)
    return translations


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is shown."""
    return message


# The state labels of badges and lists (msgids; translated per call, one look-up each).
STATE_LABELS = {
    "ordered": N_("Ordered"), "active": N_("Active"), "blocked": N_("Blocked"), "cancelled": N_("Cancelled"),
    "draft": N_("Draft"), "issued": N_("Issued"), "paid": N_("Paid"), "unpaid": N_("Unpaid"),
    "overdue": N_("Overdue"), "accepted": N_("Accepted"), "invalid": N_("Invalid"), "new": N_("New"),
    "in_progress": N_("In progress"), "waiting_for_customer": N_("Waiting for customer"),
    "resolved": N_("Resolved"), "closed": N_("Closed"), "unmatched": N_("Unmatched"),
    "partial": N_("Partially paid"), "matched": N_("Matched"), "overpaid": N_("Overpaid"), "reversed": N_("Reversed"),
    "running": N_("Running"), "done": N_("Done"), "failed": N_("Failed"), "pending": N_("Pending"),
    "queued": N_("Queued"), "sent": N_("Sent"), "suspended": N_("Suspended"),
}


def _state_key(state) -> str:
    value = getattr(state, "value", state)
    return value if isinstance(value, str) else str(value)


def state_label(state) -> Markup:
    """The translated label of a state (a string or a StrEnum member); unknown states read as
    their value with spaces, capitalised. What templates/_macros/tables.html exports."""
    key = _state_key(state)
    msgid = STATE_LABELS.get(key)
    if msgid is None:
        return escape(key.replace("_", " ").capitalize())
    return escape(_translations().ugettext(msgid))


def state_badge(state, label=None) -> Markup:
    """<span class="badge badge-<value>">label</span>; the state's label unless one is given."""
    return Markup('<span class="badge badge-%s">%s</span>') % (
        _state_key(state), label if label else state_label(state))


def invoice_badge(invoice, today: date) -> Markup:
    """An invoice's payment state as a badge: paid, unpaid or overdue; credit notes and
    cancelled invoices show their own state. What templates/selfcare/_labels.html exports."""
    if _state_key(invoice.state) == "cancelled":
        return state_badge("cancelled")
    if _state_key(invoice.type) == "credit_note":
        return state_badge("issued", escape(_translations().ugettext(N_("Credit note"))))
    if invoice.amount_due <= 0:
        return state_badge("paid")
    return state_badge("overdue" if invoice.due_date < today else "unpaid")


def _is_current(endpoint: str, current: str | None, request_endpoint: str) -> bool:
    if current:
        return current == endpoint
    ep = request_endpoint
    return (ep == endpoint or ep.startswith(endpoint + ".") or ep.startswith(endpoint + "_")
            or (endpoint.endswith("s") and ep.startswith(endpoint[:-1] + "_")))


def nav_menu(items, user=None, current=None) -> Markup:
    """The nav list of templates/_macros/nav.html (which exports this): items are (endpoint,
    label) or (endpoint, label, right); shown when the endpoint exists and, for operators,
    they hold the right; the current one is marked (`current`, else by endpoint prefix)."""
    views = current_app.view_functions
    visible = tuple((item[0], item[1]) for item in items
                    if item[0] in views and (len(item) < 3 or item[2] is None or user is None or not user.is_operator
                                             or user.has_right(item[2])))
    if not visible:
        return Markup("")
    # Every page renders the same few menus: remember each (its links and labels, the page
    # it marks, the application root the links start from).
    return _nav_markup(visible, current, request.endpoint or "", request.script_root)


@lru_cache(maxsize=1024)
def _nav_markup(visible: tuple, current: str | None, ep: str, _script_root: str) -> Markup:
    rows = [Markup('\n    <li><a href="%s"%s>%s</a></li>') % (
        url_for(endpoint), Markup(' aria-current="page"') if _is_current(endpoint, current, ep) else "", label)
        for endpoint, label in visible]
    return Markup('<ul class="nav-list">') + Markup("").join(rows) + Markup("\n  </ul>")


@lru_cache(maxsize=256)
def _static_url(filename: str, _script_root: str) -> str:
    return url_for("static", filename=filename)


def static_url(filename: str) -> str:
    """url_for('static', filename=...) remembered: the layout links the same files on every page."""
    return _static_url(filename, request.script_root)


def init_web(app: Flask) -> None:
    if "gettext" in app.jinja_env.globals:
        # The same callables Flask-Babel installs, over the remembered translations.
        app.jinja_env.install_gettext_callables(
            gettext=lambda s: _translations().ugettext(s),
            ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
            newstyle=True,
            pgettext=lambda c, s: _translations().upgettext(c, s),
            npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        )
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
        from portal.extensions import db

        db.session.rollback()
        return _error_page(500)

    def has_endpoint(name: str) -> bool:
        return name in app.view_functions

    def current_locale_code() -> str:
        return str(get_locale() or "en")

    # Globals (not a context processor): imported macros see them too.
    app.jinja_env.globals["has_endpoint"] = has_endpoint
    app.jinja_env.globals["portal_state_label"] = state_label
    app.jinja_env.globals["portal_state_badge"] = state_badge
    app.jinja_env.globals["portal_invoice_badge"] = invoice_badge
    app.jinja_env.globals["portal_nav_menu"] = nav_menu
    app.jinja_env.globals["static_url"] = static_url

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
