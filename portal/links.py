"""Absolute addresses of the portal's pages for e-mails and documents.

E-mails are also written outside a web request (jobs, the CLI), so the address is built from the
`BASE_URL` setting and the app's URL map, never from the current request. The domain asks for a
page by its endpoint; it does not know how the faces lay out their URLs.
"""
from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from flask import current_app

from portal.models import Invoice, InvoiceType, Reminder
from portal.security.pay_links import DEFAULT_DAYS, LinkKind, expiry, token_for


def external_url(endpoint: str, **values) -> str:
    """The absolute address of `endpoint` with `values`, under BASE_URL."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


PAY_ENDPOINT = "selfcare.pay"


def pay_token(owner: Invoice | Reminder, *, renew_on: date | None = None) -> str | None:
    """The pay link's token for an invoice (from its due date) or a reminder (from its
    pay-by date); None for a credit note, which nobody pays.

    Without `renew_on` the token is a function of the row alone, the same every time (what a
    stored PDF prints). With it (an e-mail or page made that day), a link that would already
    be expired on that day is made afresh from that day instead, so an old invoice resent or
    opened in selfcare never hands out a dead link."""
    if isinstance(owner, Invoice):
        if owner.type == InvoiceType.CREDIT_NOTE or owner.id is None:
            return None
        kind, base = LinkKind.INVOICE, owner.due_date
    elif isinstance(owner, Reminder) and owner.id is not None:
        kind, base = LinkKind.REMINDER, owner.pay_by
    else:
        return None
    config = current_app.config
    if renew_on is not None and expiry(base, int(config.get("PAY_LINK_DAYS") or DEFAULT_DAYS)) < renew_on:
        base = renew_on
    return token_for(config, kind, owner.id, base)


def pay_url(owner: Invoice | Reminder, *, renew_on: date | None = None) -> str | None:
    """The absolute address of the owner's pay page (`pay_token`), or None when there is
    nothing to pay by link."""
    token = pay_token(owner, renew_on=renew_on)
    return external_url(PAY_ENDPOINT, token=token) if token else None
