"""Documents as the rest of the portal sees them: render once on first need, store, serve.

Rules:
- Issued invoices, credit notes and reminders are rendered once; the stored file is what the
  customer received and is served for ever after (never re-rendered, whatever changes).
- Agreements, annexes and cancellation confirmations are re-rendered when the data they are
  printed from changes (its source_hash differs): a NEW version is stored, the owner points to
  it, the old file stays. An accepted agreement is frozen: it stays what the customer accepted.
- Every stored file is hashed; reading it back verifies the hash.
- Every document prints in its customer's language (Customer.language, carried in the data:
  d["customer"]["language"], for invoices d["language"]); file names stay ASCII English and
  the Factur-X XML is the same in every language. A customer who changes language gets the
  next version of an agreement or confirmation in the new one (the language is part of the
  hashed data); stored invoices and reminders stay as they were sent.

Nothing here commits: the caller owns the transaction. A file written for a transaction that
is then rolled back stays on disk unreferenced (harmless; its key is unique).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jinja2
from flask import has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session
from weasyprint import Attachment

from portal.links import pay_url
from portal.models import (
    Agreement,
    AgreementState,
    Customer,
    CustomerService,
    DocumentKind,
    Invoice,
    InvoiceState,
    InvoiceType,
    Reminder,
    StoredDocument,
)

from . import cii, data, qr, render, storage
from .render import N_, DocumentError

# Bump a family's version whenever its template or stylesheet changes what is printed; the
# stored documents record which version made them.
TEMPLATE_VERSIONS = {
    "invoice": "invoice-3",
    "agreement": "agreement-2",
    "reminder": "reminder-3",
    "cancellation": "cancellation-2",
    "statement": "statement-2",
}


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    source: dict[str, Any]
    file_name: str
    template_version: str


@dataclass(frozen=True)
class KindSpec:
    kind: DocumentKind
    model: type
    owner_type: str
    versioned: bool  # False: rendered once, served for ever
    build: Callable[[Session, Any], dict[str, Any]]
    render: Callable[[Any, dict[str, Any]], Rendered]
    customer_id: Callable[[Any], int | None]
    year: Callable[[Any], int]
    pointer: str | None  # the owner's column that points at its current document


# --- renderers --------------------------------------------------------------------------

# Labels built here (PDF title, footer label, QR texts), in English; translated per render.
QR_LABELS = {"CZK": N_("QR Platba"), "EUR": N_("EPC QR (SEPA)")}
LABEL_DRAFT = N_("(draft)")
LABEL_REMINDER = N_("Payment reminder %(level)s · %(number)s · %(date)s")
LABEL_CANCELLATION = N_("Cancellation confirmation · %(service)s · %(number)s")
LABEL_STATEMENT = N_("Account statement · %(number)s · %(start)s – %(end)s")
QR_MESSAGE_INVOICE = N_("Invoice %(number)s")
QR_MESSAGE_ADVANCE = N_("Advance %(number)s")
QR_MESSAGE_REMINDER = N_("Reminder %(number)s")
QR_LABEL_REMINDER = N_("QR payment")


def _gettext(language: str | None) -> Callable[..., str]:
    """gettext in `language` for the labels built here: `t(msgid, **variables)` → str."""
    return render.plain_gettext(language)


def _ascii_slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "document"


def _invoice_qr(d: dict[str, Any]) -> dict[str, str] | None:
    if d["type"] == "credit_note":
        return None
    t = _gettext(d.get("language"))
    found = qr.payment_qr(
        currency=d["currency"], iban=d["supplier"].get("iban"), amount=Decimal(d["totals"]["due"]),
        variable_symbol=d["variable_symbol"], constant_symbol=d.get("constant_symbol"),
        due_date=date.fromisoformat(d["due_date"]) if d.get("due_date") else None,
        message=t(QR_MESSAGE_INVOICE if d["type"] == "invoice" else QR_MESSAGE_ADVANCE, number=d["number"]),
        payee_name=d["supplier"].get("name") or "", bic=d["supplier"].get("bic"),
    )
    if found is None:
        return None
    payload, svg = found
    return {"payload": payload, "svg": svg, "label": t(QR_LABELS["CZK" if d["currency"] == "CZK" else "EUR"])}


def invoice_pdf(d: dict[str, Any], pay_link: str | None = None) -> tuple[bytes, bytes, str]:
    """(PDF/A-3b bytes, Factur-X XML, level) for an invoice dict, printed in d["language"]
    (English for dicts without one). The XML is validated against the official schema
    before it is embedded; it is machine data and the same in every language. `pay_link`,
    when given, is printed under the payment details."""
    xml, level = cii.invoice_xml(d)
    cii.validate(xml, level)
    language = d.get("language")
    t = _gettext(language)
    label = f"{t(d['title'])} {d['number']}"
    html = render.render_html(
        "invoice.html",
        {"invoice": d, "supplier": d["supplier"], "qr": _invoice_qr(d), "doc_label": label, "pay_link": pay_link},
        language,
    )
    attachment = Attachment(
        string=xml, name=cii.FILE_NAME, description="Factur-X / ZUGFeRD invoice data",
        relationship="Data", url_fetcher=render.url_fetcher(),
    )
    pdf = render.render_pdf(
        html, pdf_variant="pdf/a-3b", attachments=[attachment], extra_xmp=cii.xmp_extension(level),
        title=label, language=language,
    )
    return pdf, xml, level


_INVOICE_FILE_PREFIX = {"invoice": "invoice", "advance": "advance-invoice", "credit_note": "credit-note"}


def _pay_link(owner: Invoice | Reminder) -> str | None:
    """The owner's pay link, derived at render time and kept out of the source dict: it is a
    function of the row's id and due (pay-by) date and the secret, the same whenever it is
    made, so the stored PDF prints the link its e-mail and selfcare show. It expires
    PAY_LINK_DAYS after that date (config), which outlives the dunning of the row; after
    that the page says to log in. Outside an app (no BASE_URL, no secret) nothing is printed."""
    return pay_url(owner) if has_app_context() else None


def _render_invoice(invoice: Invoice, d: dict[str, Any]) -> Rendered:
    pdf, _, _ = invoice_pdf(d, _pay_link(invoice))
    name = f"{_INVOICE_FILE_PREFIX[d['type']]}-{_ascii_slug(d['number'])}.pdf"
    return Rendered(pdf, d, name, TEMPLATE_VERSIONS["invoice"])


def _render_agreement(agreement: Agreement, d: dict[str, Any]) -> Rendered:
    template = f"agreements/{d['template']}"
    language = d["customer"].get("language")
    t = _gettext(language)
    label = f"{d['type_name']} {d['number'] or t(LABEL_DRAFT)}"
    try:
        html = render.render_html(template, {"agreement": d, "supplier": d["supplier"], "doc_label": label}, language)
    except jinja2.TemplateNotFound as exc:
        raise DocumentError(f"agreement template not found: {template}") from exc
    pdf = render.render_pdf(html, title=label, language=language)
    name = f"{d['kind']}-{_ascii_slug(d['number'] or f'draft-{agreement.id}')}.pdf"
    return Rendered(pdf, d, name, f"{TEMPLATE_VERSIONS['agreement']}:{d['template']}")


def _render_reminder(reminder: Reminder, d: dict[str, Any]) -> Rendered:
    language = d["customer"].get("language")
    t = _gettext(language)
    found = qr.payment_qr(
        currency=d["currency"], iban=d["supplier"].get("iban"), amount=Decimal(d["amount_due"]),
        variable_symbol=d["payment_vs"], due_date=date.fromisoformat(d["pay_by"]),
        message=t(QR_MESSAGE_REMINDER, number=d["customer"]["number"]), payee_name=d["supplier"].get("name") or "",
        bic=d["supplier"].get("bic"),
    )
    qr_ctx = {"payload": found[0], "svg": found[1], "label": t(QR_LABEL_REMINDER)} if found else None
    label = t(LABEL_REMINDER, level=d["level"], number=d["customer"]["number"], date=render._date(d["issued_on"]))
    html = render.render_html(
        "reminder.html",
        {"reminder": d, "supplier": d["supplier"], "qr": qr_ctx, "doc_label": label, "pay_link": _pay_link(reminder)},
        language,
    )
    pdf = render.render_pdf(html, title=label, language=language)
    name = f"reminder-{d['level']}-{_ascii_slug(d['customer']['number'])}-{d['issued_on']}.pdf"
    return Rendered(pdf, d, name, TEMPLATE_VERSIONS["reminder"])


def _render_cancellation(service: CustomerService, d: dict[str, Any]) -> Rendered:
    language = d["customer"].get("language")
    t = _gettext(language)
    label = t(LABEL_CANCELLATION, service=d["service_name"], number=d["customer"]["number"])
    html = render.render_html(
        "cancellation.html", {"cancellation": d, "supplier": d["supplier"], "doc_label": label}, language,
    )
    pdf = render.render_pdf(html, title=label, language=language)
    name = f"cancellation-{_ascii_slug(d['customer']['number'])}-{service.id}.pdf"
    return Rendered(pdf, d, name, TEMPLATE_VERSIONS["cancellation"])


def _today_year(_: Any) -> int:
    return datetime.now(UTC).year


_invoice_spec = dict(
    model=Invoice, owner_type="invoice", versioned=False,
    build=lambda s, inv: data.invoice_data(inv), render=_render_invoice,
    customer_id=lambda inv: inv.customer_id, year=lambda inv: inv.issue_date.year, pointer="document_id",
)
_agreement_spec = dict(
    model=Agreement, owner_type="agreement", versioned=True,
    build=lambda s, a: data.agreement_data(a), render=_render_agreement,
    customer_id=lambda a: a.customer_id,
    year=lambda a: (a.conclusion_date.year if a.conclusion_date else _today_year(a)),
    pointer="current_document_id",
)

KINDS: dict[DocumentKind, KindSpec] = {
    DocumentKind.INVOICE: KindSpec(kind=DocumentKind.INVOICE, **_invoice_spec),
    DocumentKind.CREDIT_NOTE: KindSpec(kind=DocumentKind.CREDIT_NOTE, **_invoice_spec),
    DocumentKind.AGREEMENT: KindSpec(kind=DocumentKind.AGREEMENT, **_agreement_spec),
    DocumentKind.ANNEX: KindSpec(kind=DocumentKind.ANNEX, **_agreement_spec),
    DocumentKind.REMINDER: KindSpec(
        kind=DocumentKind.REMINDER, model=Reminder, owner_type="reminder", versioned=False,
        build=data.reminder_data, render=_render_reminder,
        customer_id=lambda r: r.customer_id, year=lambda r: r.issued_on.year, pointer="document_id",
    ),
    DocumentKind.CANCELLATION_CONFIRMATION: KindSpec(
        kind=DocumentKind.CANCELLATION_CONFIRMATION, model=CustomerService, owner_type="customer_service",
        versioned=True, build=data.cancellation_data, render=_render_cancellation,
        customer_id=lambda cs: cs.customer_id, year=_today_year, pointer=None,
    ),
}


def kind_for(owner: Any) -> DocumentKind:
    """The document kind an owner row prints as (an invoice of type credit_note → credit_note)."""
    if isinstance(owner, Invoice):
        return DocumentKind.CREDIT_NOTE if owner.type == InvoiceType.CREDIT_NOTE else DocumentKind.INVOICE
    if isinstance(owner, Agreement):
        return DocumentKind.ANNEX if (owner.parent_id or owner.type.is_annex) else DocumentKind.AGREEMENT
    if isinstance(owner, Reminder):
        return DocumentKind.REMINDER
    if isinstance(owner, CustomerService):
        return DocumentKind.CANCELLATION_CONFIRMATION
    raise DocumentError(f"no document kind for {type(owner).__name__}")


def _spec(kind: DocumentKind | str) -> KindSpec:
    try:
        return KINDS[DocumentKind(kind)]
    except (ValueError, KeyError) as exc:
        raise DocumentError(f"documents of kind {kind!r} are not stored") from exc


def latest_document(session: Session, kind: DocumentKind | str, owner_type: str, owner_id: int) -> StoredDocument | None:
    return session.scalars(
        select(StoredDocument)
        .where(
            StoredDocument.owner_type == owner_type,
            StoredDocument.owner_id == owner_id,
            StoredDocument.kind == DocumentKind(kind),
        )
        .order_by(StoredDocument.version.desc())
        .limit(1)
    ).first()


def document_for(session: Session, kind: DocumentKind | str, owner: Any) -> StoredDocument:
    """The stored document of `owner` (an Invoice, Agreement, Reminder or, for a
    cancellation confirmation, a CustomerService), rendering and storing it on first need.

    Invoices, credit notes and reminders: once stored, always served. Agreements and
    confirmations: a new version when the data they print has changed (unless accepted).
    """
    spec = _spec(kind)
    if not isinstance(owner, spec.model):
        raise DocumentError(f"a {spec.kind.value} document belongs to a {spec.model.__name__}, not {type(owner).__name__}")
    if kind_for(owner) != spec.kind:
        raise DocumentError(f"{spec.model.__name__} {owner.id} prints as {kind_for(owner).value}, not {spec.kind.value}")
    # Serialise renders of one owner (PostgreSQL; SQLite serialises writers anyway): two
    # workers must not both store version N.
    session.execute(select(spec.model.id).where(spec.model.id == owner.id).with_for_update())
    latest = latest_document(session, spec.kind, spec.owner_type, owner.id)
    if latest is not None and spec.pointer and not spec.versioned and getattr(owner, spec.pointer) != latest.id:
        # Stored for an earlier owner that had this id (a deleted row whose id the database
        # gave again): never served as this owner's document, which is rendered anew.
        latest_served = None
    else:
        latest_served = latest
    if latest_served is not None and (
        not spec.versioned or (isinstance(owner, Agreement) and owner.state == AgreementState.ACCEPTED)
    ):
        _point(owner, spec, latest)
        return latest
    source = spec.build(session, owner)
    digest_source = data.source_hash(source)
    if latest_served is not None and latest_served.source_hash == digest_source:
        _point(owner, spec, latest)
        return latest

    rendered = spec.render(owner, source)
    digest = storage.sha256(rendered.pdf)
    version = latest.version + 1 if latest is not None else 1
    key = storage.storage_key(spec.kind.value, spec.year(owner), owner.id, version, digest)
    storage.write(key, rendered.pdf)
    doc = StoredDocument(
        kind=spec.kind,
        owner_type=spec.owner_type,
        owner_id=owner.id,
        customer_id=spec.customer_id(owner),
        version=version,
        file_name=rendered.file_name,
        content_type="application/pdf",
        storage_key=key,
        sha256=digest,
        size=len(rendered.pdf),
        template_version=rendered.template_version,
        source_hash=digest_source,
        rendered_at=datetime.now(UTC),
    )
    session.add(doc)
    session.flush()
    _point(owner, spec, doc)
    return doc


def _point(owner: Any, spec: KindSpec, doc: StoredDocument) -> None:
    if spec.pointer and getattr(owner, spec.pointer) != doc.id:
        setattr(owner, spec.pointer, doc.id)


def render_document(session: Session, document_kind: DocumentKind | str, owner_id: int) -> StoredDocument:
    """Render (or find) one document by kind and owner id — what a background job calls."""
    spec = _spec(document_kind)
    owner = session.get(spec.model, owner_id)
    if owner is None:
        raise DocumentError(f"{spec.model.__name__} {owner_id} not found")
    expected = kind_for(owner)
    if expected != spec.kind and spec.model is not CustomerService:
        raise DocumentError(f"{spec.model.__name__} {owner_id} prints as {expected.value}, not {spec.kind.value}")
    return document_for(session, spec.kind, owner)


def read_document(doc: StoredDocument) -> bytes:
    """The stored bytes, verified against the recorded sha256 (DocumentTampered if not,
    DocumentMissing when the file is gone)."""
    return storage.read(doc.storage_key, doc.sha256)


# --- bulk: pending renders and verification ----------------------------------------------

def pending(session: Session) -> list[tuple[DocumentKind, int]]:
    """(kind, owner id) of every issued invoice / credit note, issued or accepted agreement
    and reminder that has no stored document yet."""
    out: list[tuple[DocumentKind, int]] = []
    for inv_id, inv_type in session.execute(
        select(Invoice.id, Invoice.type).where(Invoice.document_id.is_(None), Invoice.state == InvoiceState.ISSUED).order_by(Invoice.id)
    ):
        out.append((DocumentKind.CREDIT_NOTE if inv_type == InvoiceType.CREDIT_NOTE else DocumentKind.INVOICE, inv_id))
    for agreement in session.scalars(
        select(Agreement)
        .where(Agreement.current_document_id.is_(None), Agreement.state.in_([AgreementState.ISSUED, AgreementState.ACCEPTED]))
        .order_by(Agreement.id)
    ):
        out.append((kind_for(agreement), agreement.id))
    for (rid,) in session.execute(select(Reminder.id).where(Reminder.document_id.is_(None)).order_by(Reminder.id)):
        out.append((DocumentKind.REMINDER, rid))
    return out


def verify(session: Session) -> Iterator[tuple[StoredDocument, str | None]]:
    """Re-hash every stored file: yields (document, None | "missing" | "changed")."""
    for doc in session.scalars(select(StoredDocument).order_by(StoredDocument.id)).yield_per(200):
        try:
            storage.read(doc.storage_key, doc.sha256)
        except storage.DocumentMissing:
            yield doc, "missing"
        except storage.DocumentTampered:
            yield doc, "changed"
        else:
            yield doc, None


# --- statements (rendered on demand, not stored) -----------------------------------------

def render_statement(customer: Customer, statement: Any) -> bytes:
    """A customer's account statement as PDF bytes.

    `statement` is any object (a dataclass, a namedtuple, a dict) with:
      start, end      – dates of the range
      opening         – {currency: Decimal} balance at start (a bare Decimal means the
                        customer's location currency)
      entries         – list of objects/dicts with date, kind, reference, description,
                        debit, credit, balance (Decimal or None) and optionally currency
      closing         – {currency: Decimal} balance at end
    Positive balances are owed by the customer. The statement is a snapshot of the ledger
    at the time asked, so it is not stored: send it with send_pdf().
    """
    d = data.statement_data(customer, statement)
    language = d["customer"].get("language")
    t = _gettext(language)
    label = t(LABEL_STATEMENT, number=d["customer"]["number"], start=render._date(d["start"]), end=render._date(d["end"]))
    html = render.render_html("statement.html", {"statement": d, "supplier": d["supplier"], "doc_label": label}, language)
    return render.render_pdf(html, title=label, language=language)


def statement_file_name(customer: Customer, statement: Any) -> str:
    d_start, d_end = data.attr(statement, "start"), data.attr(statement, "end")
    return f"statement-{_ascii_slug(customer.customer_number)}-{d_start}-{d_end}.pdf"
