"""Payment QR codes printed on invoices and reminders.

CZK: the Czech "Short Payment Descriptor" (SPAYD, what Czech banking apps scan).
EUR: the EPC QR code (European Payments Council, SEPA credit transfer), version 002.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import segno


def _amount(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):.2f}"


def _spayd_text(value: str, limit: int) -> str:
    """SPAYD values: no '*' (the field separator), ASCII is safest for every bank app."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", ascii_text.replace("*", "")).strip()[:limit]


def spayd(
    iban: str,
    amount: Decimal,
    *,
    variable_symbol: str | None = None,
    constant_symbol: str | None = None,
    due_date: date | None = None,
    message: str = "",
    bic: str | None = None,
    currency: str = "CZK",
) -> str:
    """The SPAYD payload, e.g. "SPD*1.0*ACC:CZ65…*AM:605.00*CC:CZK*X-VS:2026000123*DT:20260215*MSG:…"."""
    account = iban.replace(" ", "").upper()
    if bic:
        account += "+" + bic.strip().upper()
    parts = ["SPD", "1.0", f"ACC:{account}", f"AM:{_amount(amount)}", f"CC:{currency}"]
    if variable_symbol:
        parts.append("X-VS:" + re.sub(r"\D", "", variable_symbol)[:10])
    if constant_symbol:
        parts.append("X-KS:" + re.sub(r"\D", "", constant_symbol)[:10])
    if due_date:
        parts.append(f"DT:{due_date:%Y%m%d}")
    if message:
        parts.append("MSG:" + _spayd_text(message, 60))
    return "*".join(parts)


def epc(
    iban: str,
    amount: Decimal,
    *,
    name: str,
    bic: str | None = None,
    remittance: str = "",
) -> str:
    """The EPC QR payload (BCD / 002 / UTF-8 / SCT), remittance as unstructured text
    (a variable symbol is not an ISO 11649 creditor reference)."""
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        (bic or "").strip().upper(),
        name.strip()[:70],
        iban.replace(" ", "").upper(),
        f"EUR{_amount(amount)}",
        "",  # purpose code
        "",  # structured reference
        remittance.strip()[:140],
    ]
    return "\n".join(lines).rstrip("\n")


@functools.lru_cache(maxsize=512)
def svg_data_uri(payload: str, *, error: str = "M") -> str:
    """The QR code as an SVG data: URI for an <img> in a document template. Cached: making
    one costs ~14 ms, and the same invoice's page is opened again and again."""
    return segno.make(payload, error=error, micro=False).svg_data_uri(scale=4, border=2)


def payment_qr(
    *,
    currency: str,
    iban: str | None,
    amount: Decimal,
    variable_symbol: str | None,
    due_date: date | None,
    message: str,
    payee_name: str,
    bic: str | None = None,
    constant_symbol: str | None = None,
) -> tuple[str, str] | None:
    """(payload, SVG data URI) for the invoice's currency, or None when a QR makes no
    sense (nothing to pay, no account, another currency)."""
    if not iban or amount is None or Decimal(amount) <= 0:
        return None
    if currency == "CZK":
        payload = spayd(
            iban, amount, variable_symbol=variable_symbol, constant_symbol=constant_symbol,
            due_date=due_date, message=message,
        )
    elif currency == "EUR":
        remittance = " ".join(p for p in (f"VS {variable_symbol}" if variable_symbol else "", message) if p)
        payload = epc(iban, amount, name=payee_name, bic=bic, remittance=remittance)
    else:
        return None
    return payload, svg_data_uri(payload)
