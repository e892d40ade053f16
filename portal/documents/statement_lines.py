"""How a line of a customer's account statement is worded, in the reader's language.

The domain (`portal.domain.balance`) builds each entry with its wording in parts; the selfcare
page words them in the request's language and the PDF in the customer's, both with
`describe_entry`. It lives here, below both, so that documents never import the domain.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from portal.models import PaymentSource

from .render import N_

SOURCE_LABEL = {
    PaymentSource.BANK_IMPORT: N_("Bank transfer"),
    PaymentSource.MANUAL: N_("Payment"),
    PaymentSource.CARD: N_("Card payment"),
    PaymentSource.CASH: N_("Cash payment"),
}


class StatementLine(Protocol):
    """What describe_entry reads of an entry (portal.domain.balance.StatementEntry)."""

    kind: str  # "invoice" | "credit_note" | "payment"
    reference: str
    description: str
    parts: dict


def _english(message: str, **variables) -> str:
    return message % variables if variables else message


def describe_entry(entry: StatementLine, gettext: Callable[..., str] = _english) -> str:
    """The statement line of `entry` in the language of `gettext` (`gettext(msgid,
    **variables)` → text, as flask_babel.gettext and the documents' own)."""
    p = entry.parts
    if not p:
        return entry.description
    if entry.kind == "credit_note":
        text = gettext(N_("Credit note %(number)s to invoice %(invoice)s"), number=entry.reference,
                       invoice=p.get("corrected") or "?")
        return f"{text}: {p['reason']}" if p.get("reason") else text
    if entry.kind == "invoice":
        if p.get("period"):
            start, end = p["period"]
            msgid = (N_("Advance invoice %(number)s for %(start)s–%(end)s") if p.get("advance")
                     else N_("Invoice %(number)s for %(start)s–%(end)s"))
            return gettext(msgid, number=entry.reference, start=f"{start:%d.%m.%Y}", end=f"{end:%d.%m.%Y}")
        msgid = N_("Advance invoice %(number)s") if p.get("advance") else N_("Invoice %(number)s")
        return gettext(msgid, number=entry.reference)
    label = gettext(p.get("source") or SOURCE_LABEL[PaymentSource.MANUAL])
    return f"{label}: {p['details']}" if p.get("details") else label
