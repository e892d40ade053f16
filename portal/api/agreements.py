"""/api/v1/agreements and /api/v1/agreement-types: the staff agreements list (its filters), an
agreement, its stored PDF (what was issued is what is served, never re-rendered here), and
the staff's actions on it — drafting one for a customer's services, issuing, recording the
signed copy, invalidating — through the same rules (portal.domain.agreements). The types are
read-only here (their form needs the templates folder of the staff face)."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_babel import gettext as _
from flask_smorest import Blueprint
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, enum, ident, query_ident, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import ProblemSchema, refusal
from portal.api.scope import one_or_404, scoped
from portal.documents import send_document
from portal.domain import DomainError
from portal.domain import agreements as rules
from portal.domain.bulk import search_key
from portal.extensions import db
from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    Customer,
    CustomerService,
    Numbering,
    ServiceState,
    StoredDocument,
)
from portal.web.problems import PROBLEM_TYPE, problem

blp = Blueprint("api_agreements", __name__, url_prefix="/api/v1/agreements",
                description="Agreements: contracts and annexes covering a customer's services.")
types_blp = Blueprint("api_agreement_types", __name__, url_prefix="/api/v1/agreement-types",
                      description="Agreement types: template, numbering, remind and block days.")

PDF_RESPONSE = {"200": {"description": "The stored PDF.",
                        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                "304": {"description": "Not modified (If-None-Match carried the document's ETag)."}}


class AgreementTypeSchema(Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    is_annex = ma.fields.Boolean(required=True)
    numbering = enum(Numbering, required=True)
    number_format = ma.fields.String(required=True)
    template = ma.fields.String(required=True)
    requires_confirmation = ma.fields.Boolean(required=True)
    remind_days = ma.fields.Integer(allow_none=True, required=True)
    block_days = ma.fields.Integer(allow_none=True, required=True)
    valid_from = ma.fields.Date(required=True)
    valid_to = ma.fields.Date(allow_none=True, required=True)


class AgreementSchema(Schema):
    id = ma.fields.Integer(required=True)
    number = ma.fields.String(allow_none=True, required=True, metadata={"description": "Null while a draft."})
    type_id = ma.fields.Integer(required=True)
    type_name = ma.fields.Function(lambda a: a.type.name, required=True, metadata={"type": "string"})
    customer_id = ma.fields.Integer(required=True)
    customer_number = ma.fields.Function(lambda a: a.customer.customer_number, required=True,
                                         metadata={"type": "string"})
    state = enum(AgreementState, required=True)
    conclusion_date = ma.fields.Date(allow_none=True, required=True)
    valid_from = ma.fields.Date(allow_none=True, required=True)
    issued_at = timestamp(allow_none=True, required=True)
    accepted_at = timestamp(allow_none=True, required=True)
    parent_id = ma.fields.Integer(allow_none=True, required=True)
    summary = ma.fields.String(required=True)
    invalid_note = ma.fields.String(required=True)
    service_ids = ma.fields.Function(lambda a: sorted(s.id for s in a.customer_services), required=True,
                                     metadata={"type": "array", "items": {"type": "integer"}})
    current_document_id = ma.fields.Integer(allow_none=True, required=True,
                                            metadata={"description": "The PDF served at …/pdf; null before issue."})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class AgreementFilterArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(max=100),
                         metadata={"description": "Customer number or name (prefix), or the agreement number."})
    state = enum(AgreementState)
    type_id = query_ident()
    customer_id = query_ident()


class PdfArgs(ma.Schema):
    version = ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1),
                                metadata={"description": "An older version; default the current document."})


class AgreementCreateSchema(Schema):
    customer_id = ident(required=True)
    type_id = ident(required=True)
    service_ids = ma.fields.List(ident(), required=True, validate=ma.validate.Length(max=500))
    parent_id = ident(allow_none=True, metadata={"description": "The agreement an annex amends."})
    valid_from = ma.fields.Date(allow_none=True, metadata={"description": "Empty: the day it is issued."})
    summary = ma.fields.String(validate=ma.validate.Length(max=2000))


class NoteSchema(Schema):
    note = ma.fields.String(validate=ma.validate.Length(max=2000))


class InvalidateSchema(Schema):
    note = ma.fields.String(required=True, validate=ma.validate.Length(max=2000),
                            metadata={"description": "Why the agreement is invalid."})


_LOAD = (selectinload(Agreement.type), selectinload(Agreement.customer), selectinload(Agreement.customer_services))


def _scoped_agreement(agreement_id: int) -> Agreement:
    stmt = (select(Agreement).join(Customer, Customer.id == Agreement.customer_id)
            .where(Agreement.id == agreement_id).options(*_LOAD))
    return one_or_404(stmt, Customer.location_id)


def _field_problem(field: str, message: str):
    db.session.rollback()
    return problem(422, message, errors=[{"field": field, "message": message}])


# ---------------------------------------------------------------- agreements


@blp.route("")
@requires("agreements.write")
@blp.arguments(AgreementFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(AgreementSchema))
def list_agreements(limit=None, cursor=None, q="", state=None, type_id=None, customer_id=None):
    """List agreements (ordered by id)."""
    stmt = scoped(select(Agreement).join(Customer, Customer.id == Agreement.customer_id).options(*_LOAD),
                  Customer.location_id)
    if state is not None:
        stmt = stmt.where(Agreement.state == state)
    if type_id is not None:
        stmt = stmt.where(Agreement.type_id == type_id)
    if customer_id is not None:
        stmt = stmt.where(Agreement.customer_id == customer_id)
    text = (q or "").replace("\x00", "").strip()
    if text:  # the staff list's search: customer number or name by prefix, or the exact number
        esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        key = search_key(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(or_(Customer.customer_number.ilike(f"{esc}%", escape="\\"),
                              Customer.name_key.like(f"{key}%", escape="\\"),
                              Agreement.number == text))
    return cursor_page(stmt, Agreement.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:agreement_id>")
@requires("agreements.write")
@blp.response(200, AgreementSchema)
def get_agreement(agreement_id: int):
    """Get an agreement."""
    return _scoped_agreement(agreement_id)


@blp.route("/<int:agreement_id>/pdf")
@requires("agreements.write")
@blp.arguments(PdfArgs, location="query", as_kwargs=True)
@blp.doc(responses=PDF_RESPONSE)
@blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such agreement, or no stored document (a draft has none).")
def agreement_pdf(agreement_id: int, version=None):
    """Download the agreement's stored PDF (or an older version)."""
    agreement = _scoped_agreement(agreement_id)
    stmt = select(StoredDocument).where(StoredDocument.owner_type == "agreement",
                                        StoredDocument.owner_id == agreement.id)
    if version is not None:
        doc = db.session.scalar(stmt.where(StoredDocument.version == version))
    elif agreement.current_document_id is not None:
        doc = db.session.get(StoredDocument, agreement.current_document_id)
    else:
        doc = None
    if doc is None:
        abort(404)
    return send_document(doc)  # the bytes are read here, before the response leaves


@blp.route("", methods=["POST"])
@requires("agreements.write")
@blp.arguments(AgreementCreateSchema)
@blp.response(201, AgreementSchema)
@blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_TYPE, description="No such customer (or not in the token's locations).")
def create_agreement(body: dict):
    """Draft an agreement for a customer's services (agreement.created)."""
    customer = one_or_404(select(Customer).where(Customer.id == body["customer_id"]), Customer.location_id)
    atype = db.session.get(AgreementType, body["type_id"])
    if atype is None:
        return _field_problem("type_id", _("Choose a type."))
    wanted = list(dict.fromkeys(body["service_ids"]))
    if not wanted:
        return _field_problem("service_ids", _("Choose at least one service."))
    services = {s.id: s for s in db.session.scalars(
        select(CustomerService).where(CustomerService.customer_id == customer.id,
                                      CustomerService.state != ServiceState.CANCELLED,
                                      CustomerService.id.in_(wanted)))}
    if len(services) != len(wanted):
        return _field_problem("service_ids", _("Choose among this customer's services."))
    parent = None
    if body.get("parent_id") is not None:
        parent = db.session.scalar(select(Agreement).where(
            Agreement.id == body["parent_id"], Agreement.customer_id == customer.id, Agreement.parent_id.is_(None),
            Agreement.state.in_([AgreementState.ISSUED, AgreementState.ACCEPTED])))
        if parent is None:
            return _field_problem("parent_id", _("Choose one of this customer's agreements."))
    try:
        agreement = rules.create_agreement(db.session, atype, customer, [services[i] for i in wanted],
                                           actor=api_actor(), valid_from=body.get("valid_from"), parent=parent,
                                           summary=body.get("summary") or "")
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _scoped_agreement(agreement.id), 201, {"Location": f"/api/v1/agreements/{agreement.id}"}


def _act(agreement_id: int, action):
    agreement = _scoped_agreement(agreement_id)
    try:
        action(agreement)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _scoped_agreement(agreement_id)


@blp.route("/<int:agreement_id>/issue", methods=["POST"])
@requires("agreements.write")
@blp.response(200, AgreementSchema)
def issue_agreement(agreement_id: int):
    """Issue a draft: its number and stored PDF (agreement.issued)."""
    return _act(agreement_id, lambda a: rules.issue_agreement(db.session, a, actor=api_actor()))


@blp.route("/<int:agreement_id>/accept", methods=["POST"])
@requires("agreements.write")
@blp.arguments(NoteSchema)
@blp.response(200, AgreementSchema)
def accept_agreement(body: dict, agreement_id: int):
    """Record the signed paper copy: the agreement is accepted."""
    return _act(agreement_id, lambda a: rules.accept_by_staff(db.session, a, operator_actor=api_actor(),
                                                              note=body.get("note") or ""))


@blp.route("/<int:agreement_id>/invalidate", methods=["POST"])
@requires("agreements.write")
@blp.arguments(InvalidateSchema)
@blp.response(200, AgreementSchema)
def invalidate_agreement(body: dict, agreement_id: int):
    """Mark an agreement invalid, saying why (agreement.invalidated)."""
    return _act(agreement_id, lambda a: rules.invalidate_agreement(db.session, a, actor=api_actor(),
                                                                   note=body["note"]))


# ---------------------------------------------------------------- agreement types


@types_blp.route("")
@requires("agreements.write")
@types_blp.arguments(PageArgs, location="query", as_kwargs=True)
@types_blp.response(200, page_schema(AgreementTypeSchema))
def list_agreement_types(limit=None, cursor=None):
    """List agreement types (ordered by id)."""
    return cursor_page(select(AgreementType), AgreementType.id, {"limit": limit, "cursor": cursor})


@types_blp.route("/<int:type_id>")
@requires("agreements.write")
@types_blp.response(200, AgreementTypeSchema)
def get_agreement_type(type_id: int):
    """Get an agreement type."""
    atype = db.session.get(AgreementType, type_id)
    if atype is None:
        abort(404)
    return atype

