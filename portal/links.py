"""Absolute addresses of the portal's pages for e-mails and documents.

E-mails are also written outside a web request (jobs, the CLI), so the address is built from the
`BASE_URL` setting and the app's URL map, never from the current request. The domain asks for a
page by its endpoint; it does not know how the faces lay out their URLs.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app

from portal.models import Invoice, InvoiceType, Reminder
from portal.security.pay_links import LinkKind, token_for


def external_url(endpoint: str, **values) -> str:
    """The absolute address of `endpoint` with `values`, under BASE_URL."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


PAY_ENDPOINT = "selfcare.pay"


def pay_token(owner: Invoice | Reminder) -> str | None:
    """The pay link's token for an invoice (from its due date) or a reminder (from its
    pay-by date); None for a credit note, which nobody pays."""
    if isinstance(owner, Invoice):
        if owner.type == InvoiceType.CREDIT_NOTE or owner.id is None:
            return None
        return token_for(current_app.config, LinkKind.INVOICE, owner.id, owner.due_date)
    if isinstance(owner, Reminder) and owner.id is not None:
        return token_for(current_app.config, LinkKind.REMINDER, owner.id, owner.pay_by)
    return None


def pay_url(owner: Invoice | Reminder) -> str | None:
    """The absolute address of the owner's pay page (the same every time it is asked for:
    e-mail, PDF and selfcare print one link), or None when there is nothing to pay by link."""
    token = pay_token(owner)
    return external_url(PAY_ENDPOINT, token=token) if token else None
