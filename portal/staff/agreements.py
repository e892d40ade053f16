"""Staff area: agreements — the list (filters, CSV), an agreement's page (services,
acceptance evidence, document versions, annexes), drafting one for a customer's services,
issuing (number + stored PDF), recording a signed paper copy, invalidating with a note,
the PDFs, and the agreement types (template, numbering, remind and block days)."""
from __future__ import annotations

from pathlib import Path

from flask import abort, current_app, request, url_for
from flask_babel import _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.documents import send_document
from portal.domain import agreements as rules
from portal.domain.bulk import search_key
from portal.extensions import db
from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    AuditEntry,
    Customer,
    CustomerService,
    ServiceState,
    StoredDocument,
)
from portal.staff import bp
from portal.staff.common import csv_response, operator_actor, scoped_customer_or_404, wants_csv
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, field_error, int_or_none, validated
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate

PER_PAGE = 50


def _state_or_none(value):
    if isinstance(value, AgreementState):
        return value
    try:
        return AgreementState(value)
    except ValueError:
        return None


# -- forms -------------------------------------------------------------------------------------


class AgreementFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Customer"), validators=[Optional(), Length(max=100)],
                    description=_l("Customer number, name, or the agreement number"))
    state = SelectField(_l("State"), coerce=_state_or_none, validate_choice=False)
    type = SelectField(_l("Type"), coerce=int_or_none, validate_choice=False)


class NewAgreementForm(FlaskForm):
    type = SelectField(_l("Type"), coerce=int_or_none, validate_choice=False,
                       validators=[InputRequired(message=_l("Choose a type."))])
    services = SelectMultipleField(_l("Services"), coerce=int, validate_choice=False)
    parent = SelectField(_l("Amends agreement (annexes)"), coerce=int_or_none, validate_choice=False)
    valid_from = DateField(_l("Valid from"), validators=[Optional()], description=_l("Empty: the day it is issued."))
    summary = TextAreaField(_l("Summary"), validators=[Optional(), Length(max=2000)])


class InvalidateForm(FlaskForm):
    note = TextAreaField(_l("Why is it invalid?"), validators=[DataRequired(message=_l("Say why the agreement is invalid.")),
                                                               Length(max=2000)],
                         id="invalidate-note")  # the accept form on the same page has a note too


class AcceptForm(FlaskForm):
    note = TextAreaField(_l("Note (where the signed copy is kept)"), validators=[Optional(), Length(max=2000)],
                         id="accept-note")


class IssueForm(FlaskForm):
    pass


class AgreementTypeForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(message=_l("Give the type a name.")), Length(max=100)])
    template = SelectField(_l("Document template"), validate_choice=False)
    number_format = StringField(_l("Numbering format"), validators=[
        DataRequired(message=_l("Give a numbering format.")), Length(max=60)],
        description=_l("Placeholders: {year}, {seq:05d}, {customer_number}, {type_code}"))
    remind_days = IntegerField(_l("Remind after (days)"), validators=[
        Optional(), NumberRange(min=1, max=3650, message=_l("Between 1 and 3650 days."))],
        description=_l("Remind the customer of an unaccepted agreement after this many days; empty: never."))
    block_days = IntegerField(_l("Block after (days)"), validators=[
        Optional(), NumberRange(min=1, max=3650, message=_l("Between 1 and 3650 days."))],
        description=_l("Block the services of an unaccepted agreement after this many days; empty: never."))
    requires_confirmation = BooleanField(_l("The customer must accept it"))


# -- lookups -----------------------------------------------------------------------------------


def scoped_agreement_or_404(agreement_id: int) -> Agreement:
    stmt = (
        select(Agreement).join(Customer, Customer.id == Agreement.customer_id).where(Agreement.id == agreement_id)
        .options(selectinload(Agreement.type), selectinload(Agreement.customer).selectinload(Customer.location),
                 selectinload(Agreement.customer_services).selectinload(CustomerService.definition),
                 selectinload(Agreement.acceptances), selectinload(Agreement.annexes).selectinload(Agreement.type),
                 selectinload(Agreement.parent))
    )
    agreement = db.session.scalar(in_operator_locations(stmt, Customer.location_id))
    if agreement is None:
        abort(404)
    return agreement


def _templates() -> list[str]:
    folder = Path(current_app.template_folder) / "documents" / "agreements"
    return sorted(p.name for p in folder.glob("*.html") if not p.name.startswith("_"))


def _state_label(state: AgreementState) -> str:
    return {AgreementState.DRAFT: _("Draft"), AgreementState.ISSUED: _("Issued"),
            AgreementState.ACCEPTED: _("Accepted"), AgreementState.INVALID: _("Invalid")}[state]


# -- list --------------------------------------------------------------------------------------


@bp.get("/agreements")
@requires("agreements.write")
def agreements():
    form = AgreementFilterForm(request.args)
    form.state.choices = choices([(None, _("Any state"))] + [(s.value, _state_label(s)) for s in AgreementState])
    types = db.session.execute(select(AgreementType.id, AgreementType.name).order_by(AgreementType.name)).all()
    form.type.choices = choices([(None, _("Any type"))] + [(t.id, t.name) for t in types])
    form.validate()
    stmt = (
        select(Agreement).join(Customer, Customer.id == Agreement.customer_id)
        .options(selectinload(Agreement.type), selectinload(Agreement.customer))
        .order_by(Agreement.id.desc())
    )
    stmt = in_operator_locations(stmt, Customer.location_id)
    args = {}
    if isinstance(form.state.data, AgreementState):
        stmt = stmt.where(Agreement.state == form.state.data)
        args["state"] = form.state.data.value
    if form.type.data:
        stmt = stmt.where(Agreement.type_id == form.type.data)
        args["type"] = form.type.data
    text = (form.q.data or "").strip()[:100] if not form.q.errors else ""
    if text:
        esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        key = search_key(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(or_(Customer.customer_number.ilike(f"{esc}%", escape="\\"),
                              Customer.name_key.like(f"{key}%", escape="\\"),
                              Agreement.number == text))
        args["q"] = text
    if wants_csv():
        return csv_response(
            "agreements.csv",
            ["id", "number", "type", "customer_number", "customer", "state", "conclusion_date", "valid_from",
             "issued_at", "accepted_at", "parent_id", "invalid_note"],
            ([a.id, a.number, a.type.name, a.customer.customer_number, a.customer.display_name, a.state,
              a.conclusion_date, a.valid_from, a.issued_at, a.accepted_at, a.parent_id, a.invalid_note]
             for a in db.session.scalars(stmt)),
        )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("staff/agreements/list.html", block="results", form=form, page=page, filter_args=args)


# -- detail and its actions --------------------------------------------------------------------


def _detail(agreement: Agreement, *, status: int = 200, invalidate: InvalidateForm | None = None,
            accept: AcceptForm | None = None, issue_error: str | None = None):
    versions = db.session.scalars(
        select(StoredDocument).where(StoredDocument.owner_type == "agreement", StoredDocument.owner_id == agreement.id)
        .order_by(StoredDocument.version.desc())
    ).all()
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "agreement", AuditEntry.entity_id == agreement.id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(200)
    ).all()
    return render("staff/agreements/detail.html", status=status, agreement=agreement, versions=versions, audit=audit,
                  invalidate_form=invalidate or InvalidateForm(formdata=None),
                  accept_form=accept or AcceptForm(formdata=None), issue_form=IssueForm(formdata=None),
                  issue_error=issue_error)


@bp.get("/agreements/<int:agreement_id>")
@requires("agreements.write")
def agreement_detail(agreement_id: int):
    return _detail(scoped_agreement_or_404(agreement_id))


@bp.post("/agreements/<int:agreement_id>/issue")
@requires("agreements.write")
def agreement_issue(agreement_id: int):
    agreement = scoped_agreement_or_404(agreement_id)
    form = IssueForm()
    if not form.validate():
        return _detail(agreement, status=422, issue_error=" ".join(form.csrf_token.errors) or _("Try again."))
    return carry_out(
        lambda: rules.issue_agreement(db.session, agreement, actor=operator_actor()),
        refused=lambda exc: _detail(scoped_agreement_or_404(agreement_id), status=422, issue_error=str(exc)),
        done=lambda _result: saved(_("Agreement %(number)s is issued.", number=agreement.number),
                                   url_for("staff.agreement_detail", agreement_id=agreement_id)))


@bp.post("/agreements/<int:agreement_id>/invalidate")
@requires("agreements.write")
def agreement_invalidate(agreement_id: int):
    agreement = scoped_agreement_or_404(agreement_id)
    form = InvalidateForm()
    if not form.validate():
        return _detail(agreement, status=422, invalidate=form)
    return carry_out(
        lambda: rules.invalidate_agreement(db.session, agreement, actor=operator_actor(), note=form.note.data),
        refused=lambda exc: _detail(scoped_agreement_or_404(agreement_id), status=422,
                                    invalidate=field_error(validated(InvalidateForm()), exc)),
        done=lambda _result: saved(_("The agreement is marked invalid."),
                                   url_for("staff.agreement_detail", agreement_id=agreement_id)))


@bp.post("/agreements/<int:agreement_id>/accept")
@requires("agreements.write")
def agreement_accept(agreement_id: int):
    agreement = scoped_agreement_or_404(agreement_id)
    form = AcceptForm()
    if not form.validate():
        return _detail(agreement, status=422, accept=form)
    return carry_out(
        lambda: rules.accept_by_staff(db.session, agreement, operator_actor=operator_actor(), note=form.note.data or ""),
        refused=lambda exc: _detail(scoped_agreement_or_404(agreement_id), status=422,
                                    accept=field_error(validated(AcceptForm()), exc)),
        done=lambda _result: saved(_("The signed copy is recorded: the agreement is accepted."),
                                   url_for("staff.agreement_detail", agreement_id=agreement_id)))


@bp.get("/agreements/<int:agreement_id>/pdf")
@requires("agreements.write")
def agreement_pdf(agreement_id: int):
    """The agreement's current PDF, or an older version with ?version=N (stored, never
    re-rendered here: what was issued is what is served)."""
    agreement = scoped_agreement_or_404(agreement_id)
    version = request.args.get("version", type=int)
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
    return send_document(doc)


# -- new agreement -----------------------------------------------------------------------------


def _new_form(customer: Customer, formdata=None) -> tuple[NewAgreementForm, dict]:
    form = NewAgreementForm(formdata=formdata) if formdata is not None else NewAgreementForm()
    types = db.session.scalars(select(AgreementType).order_by(AgreementType.is_annex, AgreementType.name)).all()
    services = db.session.scalars(
        select(CustomerService).where(CustomerService.customer_id == customer.id,
                                      CustomerService.state != ServiceState.CANCELLED)
        .options(selectinload(CustomerService.definition)).order_by(CustomerService.id)
    ).all()
    parents = db.session.scalars(
        select(Agreement).where(Agreement.customer_id == customer.id, Agreement.parent_id.is_(None),
                                Agreement.state.in_([AgreementState.ISSUED, AgreementState.ACCEPTED]))
        .options(selectinload(Agreement.type)).order_by(Agreement.id)
    ).all()
    form.type.choices = choices([(None, _("Choose a type"))] + [(t.id, t.name) for t in types])
    form.services.choices = choices([(s.id, f"#{s.id} {s.definition.name} ({s.state.value})") for s in services])
    form.parent.choices = choices([(None, _("None"))] + [(p.id, f"{p.type.name} {p.number}") for p in parents])
    return form, {"types": {t.id: t for t in types}, "services": {s.id: s for s in services},
                  "parents": {p.id: p for p in parents}}


@bp.route("/customers/<int:customer_id>/agreements/new", methods=["GET", "POST"])
@requires("agreements.write")
def agreement_new(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    if request.method == "GET":
        form, _ctx = _new_form(customer)
        return render("staff/agreements/new.html", customer=customer, form=form)
    form, ctx = _new_form(customer, request.form)
    valid = form.validate()
    atype = ctx["types"].get(form.type.data)
    if valid and atype is None:
        form.type.errors = [*form.type.errors, _("Choose a type.")]
        valid = False
    chosen = []
    for sid in form.services.data or []:
        if sid not in ctx["services"]:
            form.services.errors = [*form.services.errors, _("Choose among this customer's services.")]
            valid = False
            break
        chosen.append(ctx["services"][sid])
    if valid and not chosen:
        form.services.errors = [*form.services.errors, _("Choose at least one service.")]
        valid = False
    parent = ctx["parents"].get(form.parent.data) if form.parent.data else None
    if form.parent.data and parent is None:
        form.parent.errors = [*form.parent.errors, _("Choose one of this customer's agreements.")]
        valid = False
    if not valid:
        return render("staff/agreements/new.html", status=422, customer=customer, form=form)
    def refused(exc):
        customer = scoped_customer_or_404(customer_id)
        form, _ctx = _new_form(customer, request.form)
        return render("staff/agreements/new.html", status=422, customer=customer,
                      form=field_error(validated(form), exc))

    return carry_out(
        lambda: rules.create_agreement(db.session, atype, customer, chosen, actor=operator_actor(),
                                       valid_from=form.valid_from.data, parent=parent,
                                       summary=form.summary.data or ""),
        refused=refused,
        done=lambda agreement: saved(_("The draft agreement is created; issue it to number it and make the PDF."),
                                     url_for("staff.agreement_detail", agreement_id=agreement.id)))


# -- agreement types ---------------------------------------------------------------------------


@bp.get("/agreements/types")
@requires("agreements.write")
def agreement_types():
    types = db.session.scalars(select(AgreementType).order_by(AgreementType.name)).all()
    if wants_csv():
        return csv_response(
            "agreement-types.csv",
            ["id", "code", "name", "annex", "numbering", "number_format", "template", "requires_confirmation",
             "remind_days", "block_days", "valid_from", "valid_to"],
            ([t.id, t.code, t.name, t.is_annex, t.numbering, t.number_format, t.template, t.requires_confirmation,
              t.remind_days, t.block_days, t.valid_from, t.valid_to] for t in types),
        )
    return render("staff/agreements/types.html", types=types)


def _type_form(atype: AgreementType, formdata=None) -> AgreementTypeForm:
    form = AgreementTypeForm(formdata=formdata, obj=None if formdata is not None else atype)
    form.template.choices = choices([(t, t) for t in _templates()])
    return form


@bp.route("/agreements/types/<int:type_id>", methods=["GET", "POST"])
@requires("agreements.write")
def agreement_type_edit(type_id: int):
    atype = db.session.get(AgreementType, type_id)
    if atype is None:
        abort(404)
    if request.method == "GET":
        return render("staff/agreements/type_edit.html", atype=atype, form=_type_form(atype))
    form = _type_form(atype, request.form)
    if not form.validate():
        return render("staff/agreements/type_edit.html", status=422, atype=atype, form=form)
    def refused(exc):
        atype = db.session.get(AgreementType, type_id)
        return render("staff/agreements/type_edit.html", status=422, atype=atype,
                      form=field_error(validated(_type_form(atype, request.form)), exc))

    return carry_out(
        lambda: rules.update_agreement_type(
            db.session, atype, actor=operator_actor(), name=form.name.data, template=form.template.data,
            number_format=form.number_format.data, remind_days=form.remind_days.data,
            block_days=form.block_days.data, requires_confirmation=form.requires_confirmation.data,
            templates=_templates(),
        ),
        refused=refused,
        done=lambda _result: saved(_("The agreement type is saved."), url_for("staff.agreement_types")))
