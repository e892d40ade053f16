"""/api/v1/invoices and /api/v1/credit-notes: the staff invoice list (its filters), an invoice
with its lines, its stored PDF and the Factur-X XML embedded in that PDF, cancelling, and
issuing a credit note — through the same rules as the staff invoice page
(portal.domain.billing). Credit notes are invoices of type credit_note; /credit-notes lists
only them. An operator limited to locations sees the invoices of those locations only."""
from __future__ import annotations

from datetime import date

import marshmallow as ma
from flask import abort
from flask_smorest import Blueprint
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import (
    Schema,
    decimal,
    enum,
    ident,
    money,
    query_ident,
    timestamp,
    unit_price,
)
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import ProblemSchema, refusal
from portal.api.scope import one_or_404, scoped
from portal.documents import (
    document_for,
    embedded_xml,
    kind_for,
    read_document,
    send_document,
    send_xml,
)
from portal.domain import DomainError
from portal.domain.billing import billing_period, cancel_invoice, issue_credit_note
from portal.domain.payments import HALF_CENT
from portal.extensions import db
from portal.models import Currency, Invoice, InvoiceState, InvoiceType
from portal.web.problems import PROBLEM_TYPE

blp = Blueprint("api_invoices", __name__, url_prefix="/api/v1/invoices",
                description="Invoices (and advances and credit notes): issued tax documents.")
credit_notes_blp = Blueprint("api_credit_notes", __name__, url_prefix="/api/v1/credit-notes",
                             description="Credit notes: the corrections of issued invoices.")

PERIOD = r"^[0-9]{4}-[0-9]{2}$"
PDF_RESPONSE = {"200": {"description": "The stored PDF (rendered and stored on first download).",
                        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                "304": {"description": "Not modified (If-None-Match carried the document's ETag)."}}
XML_RESPONSE = {"200": {"description": "The Factur-X (CII) XML embedded in the stored PDF.",
                        "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}}}}


class InvoiceLineSchema(Schema):
    id = ma.fields.Integer(required=True)
    position = ma.fields.Integer(required=True)
    description = ma.fields.String(required=True)
    period_start = ma.fields.Date(allow_none=True, required=True)
    period_end = ma.fields.Date(allow_none=True, required=True)
    quantity = decimal(required=True)
    unit = ma.fields.String(required=True)
    unit_price = unit_price(required=True)
    vat_rate = decimal(required=True)
    net = money(required=True)
    vat = money(required=True)
    gross = money(required=True)
    customer_service_id = ma.fields.Integer(allow_none=True, required=True)
    corrects_line_id = ma.fields.Integer(allow_none=True, required=True)


class VatRowSchema(Schema):
    vat_rate = decimal(required=True)
    net = money(required=True)
    vat = money(required=True)
    gross = money(required=True)


class InvoiceSchema(Schema):
    id = ma.fields.Integer(required=True)
    type = enum(InvoiceType, required=True)
    state = enum(InvoiceState, required=True)
    number = ma.fields.String(required=True)
    series = ma.fields.String(required=True)
    variable_symbol = ma.fields.String(required=True)
    constant_symbol = ma.fields.String(allow_none=True, required=True)
    customer_id = ma.fields.Integer(required=True)
    customer_number = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True)
    location_id = ma.fields.Integer(required=True)
    issue_date = ma.fields.Date(required=True)
    taxable_supply_date = ma.fields.Date(allow_none=True, required=True)
    due_date = ma.fields.Date(required=True)
    period_start = ma.fields.Date(allow_none=True, required=True)
    period_end = ma.fields.Date(allow_none=True, required=True)
    currency = enum(Currency, required=True)
    net_total = money(required=True)
    vat_total = money(required=True)
    gross_total = money(required=True)
    rounding = money(required=True)
    paid_amount = money(required=True)
    paid_at = ma.fields.Date(allow_none=True, required=True)
    credited_amount = money(required=True)
    amount_due = money(required=True, metadata={"description": "What the invoice still asks for."})
    corrects_id = ma.fields.Integer(allow_none=True, required=True,
                                    metadata={"description": "A credit note: the invoice it corrects."})
    correction_reason = ma.fields.String(required=True)
    billing_run_id = ma.fields.Integer(allow_none=True, required=True)
    created_at = timestamp(required=True)


class InvoiceDetailSchema(InvoiceSchema):
    lines = ma.fields.List(ma.fields.Nested(InvoiceLineSchema), required=True)
    vat_breakdown = ma.fields.List(ma.fields.Nested(VatRowSchema), required=True)


class InvoiceFilterArgs(PageArgs):
    number = ma.fields.String(validate=ma.validate.Length(max=40),
                              metadata={"description": "Part of the number, or the exact variable symbol."})
    customer = ma.fields.String(validate=ma.validate.Length(max=100),
                                metadata={"description": "Customer number (exact) or part of the name."})
    customer_id = query_ident()
    state = ma.fields.String(validate=ma.validate.OneOf(["issued", "cancelled", "unpaid", "overdue", "paid"]))
    type = enum(InvoiceType)
    period = ma.fields.String(validate=ma.validate.Regexp(PERIOD),
                              metadata={"description": "The billed month, YYYY-MM."})
    issued_from = ma.fields.Date()
    issued_to = ma.fields.Date()


class CreditNoteFilterArgs(PageArgs):
    customer_id = query_ident()
    corrects_id = query_ident(metadata={"description": "The corrected invoice."})
    issued_from = ma.fields.Date()
    issued_to = ma.fields.Date()


class CreditNoteCreateSchema(Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(max=1000))
    line_ids = ma.fields.List(ident(), validate=ma.validate.Length(max=1000),
                              metadata={"description": "The lines to credit; absent: the whole invoice."})


class InvoiceCancelSchema(Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(max=1000))


def _scoped_invoice(invoice_id: int, *, detail: bool = True, credit_note: bool | None = None) -> Invoice:
    stmt = select(Invoice).where(Invoice.id == invoice_id)
    if credit_note is not None:
        stmt = stmt.where((Invoice.type == InvoiceType.CREDIT_NOTE) if credit_note
                          else (Invoice.type != InvoiceType.CREDIT_NOTE))
    if detail:
        stmt = stmt.options(selectinload(Invoice.lines), selectinload(Invoice.vat_breakdown))
    return one_or_404(stmt, Invoice.location_id)


def _dates(stmt, issued_from, issued_to):
    if issued_from is not None:
        stmt = stmt.where(Invoice.issue_date >= issued_from)
    if issued_to is not None:
        stmt = stmt.where(Invoice.issue_date <= issued_to)
    return stmt


def _clean(value) -> str:
    return (value or "").replace("\x00", "").strip()


def _pdf(invoice: Invoice):
    doc = document_for(db.session, kind_for(invoice), invoice)
    db.session.commit()  # the first download renders and stores the file (as on the staff page)
    return doc


def _xml(invoice: Invoice):
    doc = _pdf(invoice)
    xml = embedded_xml(read_document(doc))
    if xml is None:
        abort(404)
    return send_xml(xml, doc.file_name.removesuffix(".pdf") + ".xml")


# ---------------------------------------------------------------- invoices


@blp.route("")
@requires("billing.run")
@blp.arguments(InvoiceFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(InvoiceSchema))
def list_invoices(limit=None, cursor=None, number="", customer="", customer_id=None, state=None, type=None,  # noqa: A002
                  period=None, issued_from=None, issued_to=None):
    """List invoices (ordered by id)."""
    stmt = scoped(select(Invoice), Invoice.location_id)
    number, customer = _clean(number), _clean(customer)
    if number:
        stmt = stmt.where(or_(Invoice.number.ilike(f"%{number}%"), Invoice.variable_symbol == number))
    if customer:
        stmt = stmt.where(or_(Invoice.customer_number == customer, Invoice.customer_name.ilike(f"%{customer}%")))
    if customer_id is not None:
        stmt = stmt.where(Invoice.customer_id == customer_id)
    if type is not None:
        stmt = stmt.where(Invoice.type == type)
    if period:
        try:
            start, end = billing_period(period)
        except DomainError as error:
            return refusal(error)
        stmt = stmt.where(Invoice.period_start >= start, Invoice.period_start <= end)
    # The staff list's states: unpaid, overdue and paid are issued invoices by what is still due.
    due = Invoice.gross_total - Invoice.paid_amount - Invoice.credited_amount
    if state in ("issued", "cancelled"):
        stmt = stmt.where(Invoice.state == InvoiceState(state))
    elif state in ("unpaid", "overdue", "paid"):
        stmt = stmt.where(Invoice.state == InvoiceState.ISSUED, Invoice.type != InvoiceType.CREDIT_NOTE)
        stmt = stmt.where(due <= HALF_CENT) if state == "paid" else stmt.where(due > HALF_CENT)
        if state == "overdue":
            stmt = stmt.where(Invoice.due_date < date.today())
    stmt = _dates(stmt, issued_from, issued_to)
    return cursor_page(stmt, Invoice.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:invoice_id>")
@requires("billing.run")
@blp.response(200, InvoiceDetailSchema)
def get_invoice(invoice_id: int):
    """Get an invoice with its lines and VAT rows."""
    return _scoped_invoice(invoice_id)


@blp.route("/<int:invoice_id>/pdf")
@requires("billing.run")
@blp.doc(responses=PDF_RESPONSE)
@blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such invoice.")
def invoice_pdf(invoice_id: int):
    """Download the invoice's stored PDF."""
    return send_document(_pdf(_scoped_invoice(invoice_id, detail=False)))


@blp.route("/<int:invoice_id>/xml")
@requires("billing.run")
@blp.doc(responses=XML_RESPONSE)
@blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such invoice, or its PDF carries no XML.")
def invoice_xml(invoice_id: int):
    """Download the Factur-X XML embedded in the invoice's stored PDF."""
    return _xml(_scoped_invoice(invoice_id, detail=False))


@blp.route("/<int:invoice_id>/credit-notes", methods=["POST"])
@requires("billing.run")
@blp.arguments(CreditNoteCreateSchema)
@blp.response(201, InvoiceDetailSchema)
def create_credit_note(body: dict, invoice_id: int):
    """Issue a credit note for an invoice: whole, or the given lines (invoice.credit_note_issued)."""
    invoice = _scoped_invoice(invoice_id)
    line_ids = body.get("line_ids")
    try:
        note = issue_credit_note(db.session, invoice, actor=api_actor(), reason=body["reason"],
                                 line_ids=line_ids if line_ids is not None else None)
    except DomainError as error:
        if error.field == "lines":
            error.field = "line_ids"
        return refusal(error)
    db.session.commit()
    return _scoped_invoice(note.id), 201, {"Location": f"/api/v1/credit-notes/{note.id}"}


@blp.route("/<int:invoice_id>/cancel", methods=["POST"])
@requires("billing.run")
@blp.arguments(InvoiceCancelSchema)
@blp.response(200, InvoiceDetailSchema)
def cancel(body: dict, invoice_id: int):
    """Cancel an invoice, saying why (a credit note when the law asks for one)."""
    invoice = _scoped_invoice(invoice_id)
    try:
        cancel_invoice(db.session, invoice, actor=api_actor(), reason=body["reason"])
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _scoped_invoice(invoice_id)


# ---------------------------------------------------------------- credit notes


@credit_notes_blp.route("")
@requires("billing.run")
@credit_notes_blp.arguments(CreditNoteFilterArgs, location="query", as_kwargs=True)
@credit_notes_blp.response(200, page_schema(InvoiceSchema))
def list_credit_notes(limit=None, cursor=None, customer_id=None, corrects_id=None, issued_from=None, issued_to=None):
    """List credit notes (ordered by id)."""
    stmt = scoped(select(Invoice).where(Invoice.type == InvoiceType.CREDIT_NOTE), Invoice.location_id)
    if customer_id is not None:
        stmt = stmt.where(Invoice.customer_id == customer_id)
    if corrects_id is not None:
        stmt = stmt.where(Invoice.corrects_id == corrects_id)
    stmt = _dates(stmt, issued_from, issued_to)
    return cursor_page(stmt, Invoice.id, {"limit": limit, "cursor": cursor})


@credit_notes_blp.route("/<int:note_id>")
@requires("billing.run")
@credit_notes_blp.response(200, InvoiceDetailSchema)
def get_credit_note(note_id: int):
    """Get a credit note with its lines."""
    return _scoped_invoice(note_id, credit_note=True)


@credit_notes_blp.route("/<int:note_id>/pdf")
@requires("billing.run")
@credit_notes_blp.doc(responses=PDF_RESPONSE)
@credit_notes_blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such credit note.")
def credit_note_pdf(note_id: int):
    """Download the credit note's stored PDF."""
    return send_document(_pdf(_scoped_invoice(note_id, detail=False, credit_note=True)))


@credit_notes_blp.route("/<int:note_id>/xml")
@requires("billing.run")
@credit_notes_blp.doc(responses=XML_RESPONSE)
@credit_notes_blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such credit note, or its PDF carries no XML.")
def credit_note_xml(note_id: int):
    """Download the Factur-X XML embedded in the credit note's stored PDF."""
    return _xml(_scoped_invoice(note_id, detail=False, credit_note=True))

