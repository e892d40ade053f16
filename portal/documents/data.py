"""The data each document is rendered from, as plain JSON-able dicts.

Templates see only these dicts (never ORM objects), so the sha256 of their canonical JSON
(`source_hash`) covers everything printed: a changed hash means the document is out of date.
Money and rates are strings of Decimals, dates ISO strings.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from portal.config import DefaultConfig
from portal.models import (
    Agreement,
    Customer,
    CustomerService,
    Invoice,
    InvoiceType,
    Partner,
    Reminder,
    ReminderLevel,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
)

from .render import DEFAULT_LANGUAGE, N_, DocumentError, language_of, plain_gettext
from .statement_lines import describe_entry

ZERO = Decimal("0.00")

# Keys of a supplier identity, in Invoice.supplier snapshots and on every document.
SUPPLIER_KEYS = (
    "name", "company_id", "vat_id", "street", "city", "postal_code", "country",
    "iban", "bank_account", "bic", "email", "phone", "web",
)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode()


def source_hash(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value):
        return asdict(value)
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _s(value: Any) -> str | None:
    """Decimal / date → string (None stays None), for the JSON source."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _split_address(one_line: str) -> dict[str, str]:
    """"Příkladná 1, 110 00 Praha 1" → street, postal_code, city."""
    street, _, rest = one_line.partition(",")
    m = re.match(r"\s*(\d{3}\s?\d{2})\s+(.+)", rest)
    if m:
        return {"street": street.strip(), "postal_code": m.group(1), "city": m.group(2).strip()}
    return {"street": street.strip(), "postal_code": "", "city": rest.strip()}


def _config() -> dict:
    if has_app_context():
        return current_app.config
    return {k: getattr(DefaultConfig, k) for k in dir(DefaultConfig) if k.isupper()}


def supplier_snapshot(partner: Partner | None = None) -> dict[str, str | None]:
    """The supplier identity printed on documents: the partner record, falling back to the
    SUPPLIER_* settings. Billing copies this into Invoice.supplier at issue."""
    cfg = _config()
    fallback: dict[str, str | None] = {
        "name": cfg.get("SUPPLIER_NAME"),
        "company_id": cfg.get("SUPPLIER_COMPANY_ID"),
        "vat_id": cfg.get("SUPPLIER_VAT_ID"),
        **_split_address(cfg.get("SUPPLIER_ADDRESS") or ""),
        "country": "CZ",
        "iban": cfg.get("SUPPLIER_IBAN"),
        "bank_account": cfg.get("SUPPLIER_BANK_ACCOUNT"),
        "bic": cfg.get("SUPPLIER_BIC"),
        "email": cfg.get("SUPPLIER_EMAIL"),
        "phone": cfg.get("SUPPLIER_PHONE"),
        "web": cfg.get("SUPPLIER_WEB"),
    }
    if partner is None:
        return fallback
    own = {k: getattr(partner, k, None) for k in SUPPLIER_KEYS}
    return {k: (own.get(k) or fallback.get(k)) for k in SUPPLIER_KEYS}


def supplier_identity(partner: Partner | None = None, snapshot: dict | None = None) -> dict[str, str | None]:
    """THE supplier a customer reads, wherever they read it (e-mails, PDFs, pages): the
    partner of the customer's location when set, else the SUPPLIER_* settings; for an
    invoice, its own snapshot wins and keys it lacks come from the same place.
    A snapshot may carry a one-line "address" instead of street/postal_code/city."""
    base = supplier_snapshot(partner)
    snap = dict(snapshot or {})
    if snap.get("address") and not snap.get("street"):
        snap.update(_split_address(snap["address"]))
    return {k: (snap.get(k) if snap.get(k) not in (None, "") else base.get(k)) for k in SUPPLIER_KEYS}


def customer_supplier(customer, snapshot: dict | None = None) -> dict[str, str | None]:
    """`supplier_identity` for a customer: their location's partner."""
    location = getattr(customer, "location", None) if customer is not None else None
    return supplier_identity(location.partner if location is not None else None, snapshot)


def invoice_supplier(invoice) -> dict[str, str | None]:
    """`supplier_identity` for an invoice: its snapshot over its location's partner."""
    location = invoice.location
    return supplier_identity(location.partner if location is not None else None, invoice.supplier)


def _parse_address_lines(text: str, default_country: str = "CZ") -> dict[str, Any]:
    lines = [ln.strip() for ln in (text or "").replace(",", "\n").splitlines() if ln.strip()]
    country = default_country
    if lines and re.fullmatch(r"[A-Z]{2}", lines[-1]):
        country = lines.pop()
    postal_code = city = ""
    street_lines = []
    for ln in lines:
        m = re.fullmatch(r"(\d{3}\s?\d{2})\s+(.+)", ln)
        if m and not postal_code:
            postal_code, city = m.group(1), m.group(2)
        else:
            street_lines.append(ln)
    return {"street": ", ".join(street_lines), "postal_code": postal_code, "city": city, "country": country}


def customer_party(customer: Customer) -> dict[str, Any]:
    """The customer as a party of an agreement or letter (live data)."""
    return {
        "name": customer.display_name,
        "number": customer.customer_number,
        "kind": customer.kind.value,
        "company_id": customer.company_id,
        "vat_id": customer.vat_id,
        "birth_date": _s(customer.birth_date),
        "address_lines": customer.billing_address_lines,
        "street": customer.street,
        "postal_code": customer.postal_code,
        "city": customer.city,
        "country": customer.country,
        "variable_symbol": customer.variable_symbol,
        "language": language_of(customer.language),
    }


# --- invoices ---------------------------------------------------------------------------

# In English in the data (and the source hash); the template translates them.
INVOICE_TITLES = {
    InvoiceType.INVOICE: N_("Invoice – tax document"),
    InvoiceType.ADVANCE: N_("Advance invoice – request for payment"),
    InvoiceType.CREDIT_NOTE: N_("Credit note – corrective tax document"),
}


def invoice_data(invoice: Invoice) -> dict[str, Any]:
    supplier = invoice_supplier(invoice)
    address_lines = [ln.strip() for ln in (invoice.customer_address or "").splitlines() if ln.strip()]
    due = invoice.amount_due
    corrects = invoice.corrects
    return {
        "type": invoice.type.value,
        "title": INVOICE_TITLES[invoice.type],
        # The language the invoice prints in: the customer's (an invoice is rendered once,
        # so this is the customer's language at the first render).
        "language": language_of(invoice.customer.language) if invoice.customer is not None else DEFAULT_LANGUAGE,
        "is_tax_document": invoice.type != InvoiceType.ADVANCE,
        "number": invoice.number,
        "series": invoice.series,
        "variable_symbol": invoice.variable_symbol,
        "constant_symbol": invoice.constant_symbol,
        "issue_date": _s(invoice.issue_date),
        "taxable_supply_date": _s(invoice.taxable_supply_date),
        "due_date": _s(invoice.due_date),
        "period_start": _s(invoice.period_start),
        "period_end": _s(invoice.period_end),
        "currency": invoice.currency.value,
        "supplier": supplier,
        "customer": {
            "name": invoice.customer_name,
            "number": invoice.customer_number,
            "address_lines": address_lines,
            **_parse_address_lines(invoice.customer_address, invoice.customer.country if invoice.customer else "CZ"),
            "company_id": invoice.customer_company_id,
            "vat_id": invoice.customer_vat_id,
        },
        "lines": [
            {
                "position": line.position,
                "description": line.description,
                "period_start": _s(line.period_start),
                "period_end": _s(line.period_end),
                "quantity": _s(line.quantity),
                "unit": line.unit,
                "unit_price": _s(line.unit_price),
                "vat_rate": _s(line.vat_rate),
                "net": _s(line.net),
                "vat": _s(line.vat),
                "gross": _s(line.gross),
            }
            for line in invoice.lines
        ],
        "vat": [
            {"rate": _s(v.vat_rate), "net": _s(v.net), "vat": _s(v.vat), "gross": _s(v.gross)}
            for v in invoice.vat_breakdown
        ],
        "totals": {
            "net": _s(invoice.net_total),
            "vat": _s(invoice.vat_total),
            "gross": _s(invoice.gross_total),
            "rounding": _s(invoice.rounding or ZERO),
            "paid": _s(invoice.paid_amount or ZERO),
            "due": _s(due),
        },
        "corrects": (
            {"number": corrects.number, "issue_date": _s(corrects.issue_date),
             "taxable_supply_date": _s(corrects.taxable_supply_date)}
            if corrects is not None else None
        ),
        "correction_reason": invoice.correction_reason or "",
    }


# --- agreements -------------------------------------------------------------------------

def _service_row(cs: CustomerService) -> dict[str, Any]:
    d = cs.definition
    price = cs.price_override if cs.price_override is not None else d.price
    return {
        "id": cs.id,
        "name": d.customer_name or d.name,
        "code": d.code,
        "price": _s(price),
        "price_includes_vat": d.price_includes_vat,
        "vat_rate": _s(d.vat_rate),
        "period": d.period.value,
        "commitment_months": d.commitment_months,
        "commitment_until": _s(cs.commitment_until),
        "notice_days": d.notice_days,
        "installation_address": cs.installation_address,
        "billing_from": _s(cs.billing_from),
        "state": cs.state.value,
    }


def _with_definitions(services: list[CustomerService]) -> list[CustomerService]:
    """Load the services' definitions in one query, not one per service as each row reads
    its own."""
    session = object_session(services[0]) if services else None
    missing = [cs for cs in services if "definition" not in cs.__dict__]
    if session is not None and missing:
        found = {d.id: d for d in session.scalars(
            select(ServiceDefinition).where(ServiceDefinition.id.in_({cs.definition_id for cs in missing})))}
        for cs in missing:
            set_committed_value(cs, "definition", found.get(cs.definition_id))
    return services


def agreement_data(agreement: Agreement) -> dict[str, Any]:
    customer = agreement.customer
    atype = agreement.type
    parent = agreement.parent
    currency = customer.location.currency.value if customer.location else "CZK"
    return {
        "kind": "annex" if (agreement.parent_id or atype.is_annex) else "agreement",
        "number": agreement.number,
        "type_name": atype.name,
        "type_code": atype.code,
        "template": atype.template,
        "conclusion_date": _s(agreement.conclusion_date),
        "valid_from": _s(agreement.valid_from),
        "requires_confirmation": atype.requires_confirmation,
        "terms": atype.terms or "",
        "summary": agreement.summary or "",
        "currency": currency,
        "supplier": customer_supplier(customer),
        "customer": customer_party(customer),
        "services": [_service_row(cs) for cs in _with_definitions(sorted(agreement.customer_services,
                                                                           key=lambda s: s.id))],
        "parent": (
            {"number": parent.number, "type_name": parent.type.name, "conclusion_date": _s(parent.conclusion_date)}
            if parent is not None else None
        ),
    }


# --- reminders --------------------------------------------------------------------------

def reminder_data(session: Session, reminder: Reminder) -> dict[str, Any]:
    case = reminder.case
    customer = case.customer
    invoices = sorted(reminder.invoices, key=lambda i: (i.due_date, i.id))
    currency = invoices[0].currency.value if invoices else (customer.location.currency.value if customer.location else "CZK")
    plan_id = customer.billing_plan_id
    levels = session.scalars(
        select(ReminderLevel).where(ReminderLevel.level == reminder.level + 1)
    ).all()
    next_level = next((lv for lv in levels if lv.billing_plan_id == plan_id), None) or next(
        (lv for lv in levels if lv.billing_plan_id is None), None
    )
    total_due = Decimal(reminder.amount_due)
    return {
        "level": reminder.level,
        "issued_on": _s(reminder.issued_on),
        "pay_by": _s(reminder.pay_by),
        "block_on": _s(reminder.block_on),
        "amount_due": _s(reminder.amount_due),
        "fee": _s(reminder.fee or ZERO),
        "total_to_pay": _s(total_due + (reminder.fee or ZERO)),
        "currency": currency,
        # One invoice: its own symbol; several: the customer's, which pairs to the oldest first.
        "payment_vs": invoices[0].variable_symbol if len(invoices) == 1 else customer.variable_symbol,
        "supplier": customer_supplier(customer),
        "customer": customer_party(customer),
        "invoices": [
            {
                "number": inv.number,
                "variable_symbol": inv.variable_symbol,
                "issue_date": _s(inv.issue_date),
                "due_date": _s(inv.due_date),
                "days_overdue": max((reminder.issued_on - inv.due_date).days, 0),
                "gross": _s(inv.gross_total),
                "paid": _s(inv.paid_amount),
                "due": _s(inv.amount_due),
            }
            for inv in invoices
        ],
        "next_level": (
            {"level": next_level.level, "days_overdue": next_level.days_overdue,
             "fee": _s(next_level.fee), "blocks": next_level.blocks}
            if next_level is not None else None
        ),
    }


# --- cancellation confirmation ----------------------------------------------------------

def cancellation_data(session: Session, service: CustomerService) -> dict[str, Any]:
    event = session.scalars(
        select(ServiceEvent)
        .where(
            ServiceEvent.customer_service_id == service.id,
            ServiceEvent.kind.in_([ServiceEventKind.CANCEL_REQUESTED, ServiceEventKind.CANCELLED]),
        )
        .order_by(ServiceEvent.id.desc())
    ).first()
    end_date = None
    requested_on = None
    details: dict = {}
    if event is not None:
        end_date = event.scheduled_for or event.effective_on
        requested_on = event.created_at.date() if event.created_at else None
        details = event.details or {}
    end_date = end_date or service.cancelled_on or service.billing_to
    if end_date is None:
        raise DocumentError(f"customer service {service.id} has no cancellation to confirm")
    customer = service.customer
    d = service.definition
    return {
        "service": _service_row(service),
        "service_name": d.customer_name or d.name,
        "customer": customer_party(customer),
        "supplier": customer_supplier(customer),
        "currency": customer.location.currency.value if customer.location else "CZK",
        "requested_on": _s(requested_on),
        "end_date": _s(end_date),
        "notice_days": d.notice_days,
        "commitment_until": _s(service.commitment_until),
        "notice_waived": bool(details.get("notice_waived") or details.get("waived")),
        "reason": (event.reason if event is not None else "") or "",
    }


# --- statements -------------------------------------------------------------------------

def attr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def statement_data(customer: Customer, statement: Any) -> dict[str, Any]:
    """Normalise any statement object (see render_statement) into the template's dict."""
    def money_map(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): _s(Decimal(v)) for k, v in value.items()}
        return {customer.location.currency.value if customer.location else "CZK": _s(Decimal(value))}

    party = customer_party(customer)
    gettext = plain_gettext(party["language"])

    entries = []
    for e in attr(statement, "entries", []) or []:
        entries.append({
            # portal.domain.balance.StatementEntry says `on`; other statement objects `date`.
            "date": _s(attr(e, "date", None) or attr(e, "on")),
            "kind": _s(attr(e, "kind")) or "",
            "reference": _s(attr(e, "reference")) or "",
            # Worded in the customer's language when the entry comes in parts.
            "description": (describe_entry(e, gettext) if attr(e, "parts")
                            else _s(attr(e, "description")) or ""),
            "debit": _s(attr(e, "debit")),
            "credit": _s(attr(e, "credit")),
            "balance": _s(attr(e, "balance")),
            "currency": _s(attr(e, "currency")),
        })
    return {
        "start": _s(attr(statement, "start")),
        "end": _s(attr(statement, "end")),
        "opening": money_map(attr(statement, "opening")),
        "closing": money_map(attr(statement, "closing")),
        "entries": entries,
        "customer": party,
        "supplier": customer_supplier(customer),
    }
