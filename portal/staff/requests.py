"""Staff area: requests — the queue (filters, CSV), and one request's page: the
conversation with staff notes, assignment, state changes, resolving, and carrying out a plan
change or a cancellation in one step. Every change goes through
`portal.domain.customer_requests`, which audits it and e-mails the customer what they may see."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, DateField, IntegerField, RadioField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from portal.domain import DomainError
from portal.domain import customer_requests as rules
from portal.domain.request_attachments import attach
from portal.extensions import db
from portal.models import (
    CustomerRequest,
    RequestAttachment,
    RequestKind,
    RequestState,
    ServiceDefinition,
)
from portal.staff import bp
from portal.staff.common import csv_response, operator_actor, wants_csv
from portal.web.access import requires
from portal.web.actions import carry_out
from portal.web.attachments import send_attachment, uploads_of
from portal.web.forms import choices, field_error
from portal.web.htmx import is_htmx, render
from portal.web.pagination import page_number, paginate

RIGHT = "requests.handle"
PER_PAGE = 25

KIND_LABELS = {
    RequestKind.QUESTION: _l("Question"),
    RequestKind.COMPLAINT: _l("Complaint"),
    RequestKind.PLAN_CHANGE: _l("Change of plan"),
    RequestKind.MOVE: _l("Move"),
    RequestKind.CANCELLATION: _l("Cancellation"),
    RequestKind.OTHER: _l("Other"),
}
STATE_LABELS = {
    RequestState.NEW: _l("New"),
    RequestState.IN_PROGRESS: _l("In progress"),
    RequestState.WAITING_FOR_CUSTOMER: _l("Waiting for customer"),
    RequestState.RESOLVED: _l("Resolved"),
    RequestState.CLOSED: _l("Closed"),
}
ACTION_LABELS = {
    "start": _l("Start working on it"),
    "wait": _l("Wait for the customer"),
    "close": _l("Close"),
    "reopen": _l("Reopen"),
    "resolve": _l("Resolve"),
    "reject": _l("Reject"),
}


# ---------------------------------------------------------------------------------- forms



def _id_or_invalid(value):
    """Empty is "nobody"; anything else not a number becomes an id no choice has, so the
    select refuses it with its message instead of reading it as "nobody"."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1

class RequestFilterForm(FlaskForm):
    """GET filters of the queue (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    kind = SelectField(_l("Type"), default="", choices=choices(
        [("", _l("All types"))] + [(k.value, label) for k, label in KIND_LABELS.items()]))
    state = SelectField(_l("State"), default="open", choices=choices(
        [("open", _l("Open (not finished)")), ("all", _l("All states"))]
        + [(s.value, label) for s, label in STATE_LABELS.items()]))
    assignee = SelectField(_l("Assigned to"), default="anyone", choices=choices(
        [("anyone", _l("Anyone")), ("me", _l("Me")), ("unassigned", _l("Nobody"))]))
    # One customer's requests (a link from the customer's page); kept as a hidden field.
    customer_id = IntegerField(_l("Customer"), validators=[Optional(), NumberRange(min=1)], widget=HiddenInput())


class AssignForm(FlaskForm):
    assignee_id = SelectField(_l("Assign to"), coerce=_id_or_invalid)


class StaffCommentForm(FlaskForm):
    body = TextAreaField(_l("Text"), validators=[DataRequired(message=_l("Write the text.")), Length(max=rules.MAX_BODY)],
                         render_kw={"rows": 5})
    visibility = RadioField(_l("Who sees it"), default="customer", choices=choices([
        ("customer", _l("The customer (sent by e-mail)")),
        ("internal", _l("Staff only (a private note)")),
    ]))
    wait_for_customer = BooleanField(_l("Then wait for the customer's answer"))
    attachments = MultipleFileField(_l("Files (optional)"),
                                    description=_l("PDF, PNG, JPEG or plain text files."),
                                    render_kw={"accept": ".pdf,.png,.jpg,.jpeg,.txt"})


class StateForm(FlaskForm):
    """A state action (the button's value); resolve and reject need the text."""

    action = SelectField(_l("Action"), choices=choices([(a, ACTION_LABELS[a]) for a in rules.STAFF_ACTIONS]))
    text = TextAreaField(_l("Resolution or reason (the customer sees it)"),
                         validators=[Optional(), Length(max=rules.MAX_BODY)], render_kw={"rows": 4})


class CarryOutForm(FlaskForm):
    on = DateField(_l("Effective on"), validators=[Optional()])
    waive_notice = BooleanField(_l("Waive the notice period and commitment"))
    message = TextAreaField(_l("Message to the customer"), validators=[Optional(), Length(max=rules.MAX_BODY)],
                            description=_l("Leave empty to send a sentence saying what was done."),
                            render_kw={"rows": 3})


# ---------------------------------------------------------------------------------- the queue


def _filters(form: RequestFilterForm) -> dict:
    return {"kind": form.kind.data or None, "state": form.state.data or "open",
            "assignee": form.assignee.data or "anyone", "customer_id": form.customer_id.data}


def _queue(form: RequestFilterForm):
    f = _filters(form)
    return rules.staff_requests_query(current_user.location_ids, operator_id=current_user.id, **f)


@bp.get("/requests")
@requires(RIGHT)
def requests():
    """The queue: open requests by default, filtered by type, state and assignee; the same
    URL with ?format=csv exports every matching row. HTMX gets the results block."""
    form = RequestFilterForm(formdata=request.args if request.args else None)
    if request.args and not form.validate():
        return render("staff/requests/index.html", block="results", status=422, form=form, page=None,
                      params={}, kind_labels=KIND_LABELS)
    stmt = _queue(form)
    if wants_csv():
        rows = [(r.id, r.created_at, r.customer.customer_number, r.customer.display_name, r.kind, r.subject,
                 r.state, r.assignee.name if r.assignee else "",
                 (r.customer_service.definition.name if r.customer_service else ""), r.updated_at)
                for r in db.session.scalars(stmt)]
        return csv_response("requests.csv", ["id", "created_at", "customer_number", "customer", "kind", "subject",
                                             "state", "assignee", "service", "updated_at"], rows)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {k: v for k, v in _filters(form).items() if v}
    return render("staff/requests/index.html", block="results", form=form, page=page, params=params,
                  kind_labels=KIND_LABELS)


# ---------------------------------------------------------------------------------- one request


def _request_or_404(request_id: int) -> CustomerRequest:
    found = rules.request_for_staff(db.session, request_id, current_user.location_ids)
    if found is None:
        abort(404)
    return found


def _assign_choices(req: CustomerRequest, form: AssignForm) -> None:
    operators = rules.assignable_operators(db.session, req.customer.location_id)
    form.assignee_id.choices = choices([(None, _l("Nobody"))] + [(op.id, op.name) for op in operators])


def _carry_form(req: CustomerRequest, formdata=None) -> CarryOutForm | None:
    if not rules.can_carry_out(req):
        return None
    form = CarryOutForm(formdata=formdata)
    if formdata is None:
        form.on.data = rules.carry_out_defaults(req)["on"]
    return form


def _detail(req: CustomerRequest, *, status: int = 200, block: str | None = None, notice: str | None = None,
            page_error: str | None = None, **forms):
    assign_form = forms.get("assign_form") or AssignForm(formdata=None, assignee_id=req.assignee_id)
    _assign_choices(req, assign_form)
    target = None
    if req.kind == RequestKind.PLAN_CHANGE and isinstance(req.payload.get("target_definition_id"), int):
        target = db.session.get(ServiceDefinition, req.payload["target_definition_id"])
    return render(
        "staff/requests/detail.html", block=block, status=status, req=req,
        comments=rules.staff_conversation(db.session, req),
        comment_form=forms.get("comment_form") or StaffCommentForm(formdata=None),
        assign_form=assign_form,
        state_form=forms.get("state_form") or StateForm(formdata=None),
        carry_form=forms["carry_form"] if "carry_form" in forms else _carry_form(req),
        actions=rules.allowed_staff_actions(req), target=target, kind_labels=KIND_LABELS,
        action_labels=ACTION_LABELS, notice=notice, page_error=page_error,
    )


@bp.get("/requests/<int:request_id>")
@requires(RIGHT)
def request_detail(request_id: int):
    return _detail(_request_or_404(request_id))


def _done(req: CustomerRequest, message: str):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("staff.request_detail", request_id=req.id))


@bp.post("/requests/<int:request_id>/assign")
@requires(RIGHT)
def request_assign(request_id: int):
    req = _request_or_404(request_id)
    form = AssignForm()
    _assign_choices(req, form)
    if form.validate():
        return carry_out(
            lambda: rules.assign(db.session, req, form.assignee_id.data, operator_actor()),
            refused=lambda exc: _detail(_request_or_404(request_id), status=422, assign_form=field_error(form, exc)),
            done=lambda _result: _done(req, _("The request is assigned.") if form.assignee_id.data
                                       else _("The request is unassigned.")))
    return _detail(req, status=422, assign_form=form)


@bp.post("/requests/<int:request_id>/comments")
@requires(RIGHT)
def request_comment(request_id: int):
    """A comment for the customer (e-mailed) or a private staff note. HTMX gets the
    conversation block back (with an empty form, or the errors)."""
    req = _request_or_404(request_id)
    form = StaffCommentForm()
    if form.validate():
        internal = form.visibility.data == "internal"
        try:
            # The files are checked before anything is written: a bad one saves nothing.
            uploads = uploads_of(form.attachments)
            comment = rules.add_staff_comment(db.session, req, form.body.data, operator_actor(), internal=internal,
                                              wait_for_customer=bool(form.wait_for_customer.data))
            attach(db.session, comment, uploads, operator_actor())
        except DomainError as exc:
            db.session.rollback()
            req = _request_or_404(request_id)
            field_error(form, exc)
        else:
            message = _("The note is saved.") if internal else _("The comment is sent to the customer.")
            if is_htmx():
                db.session.commit()
                return _detail(req, block="conversation", notice=message)
            return _done(req, message)
    return _detail(req, status=422, block="conversation", comment_form=form)


@bp.post("/requests/<int:request_id>/state")
@requires(RIGHT)
def request_state(request_id: int):
    req = _request_or_404(request_id)
    form = StateForm()
    if form.validate():
        action = form.action.data
        return carry_out(
            lambda: rules.change_state(db.session, req, action, operator_actor(), text=form.text.data or ""),
            refused=lambda exc: _detail(_request_or_404(request_id), status=422, state_form=field_error(form, exc)),
            done=lambda _result: _done(req, _("The request is now: %(state)s.", state=STATE_LABELS[req.state])))
    return _detail(req, status=422, state_form=form)


@bp.post("/requests/<int:request_id>/carry-out")
@requires(RIGHT)
def request_carry_out(request_id: int):
    """Carry out a plan change or cancellation and resolve the request, all or nothing."""
    req = _request_or_404(request_id)
    form = CarryOutForm()
    if not rules.can_carry_out(req):
        return _detail(req, status=422, carry_form=None, page_error=_("This request cannot be carried out."))
    if form.validate():
        try:
            rules.carry_out(db.session, req, operator_actor(), on=form.on.data,
                            waive_notice=bool(form.waive_notice.data), message=form.message.data or "")
        except DomainError as exc:
            db.session.rollback()
            req = _request_or_404(request_id)
            field_error(form, exc)
        else:
            return _done(req, _("Done: the request is carried out and resolved."))
    return _detail(req, status=422, carry_form=form)


@bp.get("/requests/<int:request_id>/attachments/<int:attachment_id>")
@requires(RIGHT)
def request_attachment(request_id: int, attachment_id: int):
    """A file of the conversation, as a download (the request in the operator's locations)."""
    req = _request_or_404(request_id)
    attachment = db.session.get(RequestAttachment, attachment_id) if 0 < attachment_id <= 2**31 - 1 else None
    if attachment is None or attachment.request_id != req.id:
        abort(404)
    return send_attachment(attachment)
