"""Staff area: dunning — the overview by level, debt recovery cases, a run previewed for a
date and carried out as a background job (with progress), blocking exceptions (postpone
until a date, never block; revoke), and the reminder letters with their PDFs.

Location rule: a run covers every customer of every location (it may block services
anywhere), so its preview and start need an operator without location limits
(`dunning.check_run_scope`); cases, exceptions and reminders are shown and changed only
for the customers of the operator's locations."""
from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import contains_eager
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.documents import document_for, send_document
from portal.domain import DomainError
from portal.domain.dunning import (
    check_run_scope,
    dunning_overview,
    exempt_from_blocking,
    postpone_blocking,
    revoke_exception,
    run_dunning,
)
from portal.extensions import db
from portal.jobs import (
    enqueue_dunning_run,
)
from portal.models import (
    BlockingException,
    CaseState,
    Customer,
    DebtRecoveryCase,
    DocumentKind,
    ExceptionKind,
    Reminder,
)
from portal.staff import bp
from portal.staff.billing import clean_text
from portal.staff.common import csv_response, operator_actor, wants_csv
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, field_error
from portal.web.htmx import render
from portal.web.jobs import job_or_404, job_status, resume_step
from portal.web.pagination import page_number, paginate

PER_PAGE = 50


class RunForm(FlaskForm):
    """The run itself: a POST, CSRF-protected."""

    on = DateField(_l("Run as of"), validators=[DataRequired()])


class RunPreviewForm(RunForm):
    """The date of a preview: a GET that writes nothing, so no CSRF token (a GET form never
    carries one)."""

    class Meta:
        csrf = False


class ExceptionForm(FlaskForm):
    customer = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=20)])
    kind = SelectField(_l("Exception"), choices=choices([
        (ExceptionKind.POSTPONE.value, _l("Postpone blocking until a date")),
        (ExceptionKind.NEVER_BLOCK.value, _l("Never block"))]))
    until = DateField(_l("Until (inclusive)"), validators=[Optional()],
                      description=_l("Required to postpone."))
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Give a reason.")), Length(max=1000)])


class CaseFilterForm(FlaskForm):
    class Meta:
        csrf = False

    level = StringField(_l("Level"), validators=[Optional(), Length(max=3)])
    state = SelectField(_l("State"), choices=choices([("", _l("Open (any state)"))]
                                                     + [(s.value, s.value) for s in CaseState]),
                        validators=[Optional()])


class ReminderFilterForm(FlaskForm):
    class Meta:
        csrf = False

    customer = StringField(_l("Customer number"), validators=[Optional(), Length(max=20)])
    level = StringField(_l("Level"), validators=[Optional(), Length(max=3)])


def _scope_allows_run() -> bool:
    try:
        check_run_scope(current_user.location_ids)
    except DomainError:
        return False
    return True


def _int(raw) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- overview and cases


@bp.get("/dunning")
@requires("dunning.run")
def dunning():
    levels = dunning_overview(db.session, on=date.today(), location_ids=current_user.location_ids)
    return render("staff/dunning/index.html", levels=levels, can_run=_scope_allows_run())


@bp.get("/dunning/cases")
@requires("dunning.run")
def dunning_cases():
    form = CaseFilterForm(formdata=request.args)
    form.validate()
    stmt = in_operator_locations(
        select(DebtRecoveryCase).join(Customer, Customer.id == DebtRecoveryCase.customer_id)
        .options(contains_eager(DebtRecoveryCase.customer)), Customer.location_id)
    if form.state.data in {s.value for s in CaseState}:
        stmt = stmt.where(DebtRecoveryCase.state == CaseState(form.state.data))
    else:
        stmt = stmt.where(DebtRecoveryCase.state != CaseState.CLOSED)
    level = _int(form.level.data)
    if level is not None:
        stmt = stmt.where(DebtRecoveryCase.level == level)
    stmt = stmt.order_by(DebtRecoveryCase.level.desc(), DebtRecoveryCase.opened_on, DebtRecoveryCase.id)
    if wants_csv():
        rows = ((c.id, c.customer.customer_number, c.customer.display_name, c.state, c.level, c.opened_on,
                 c.blocked_on, c.postponed_until, c.closed_on) for c in db.session.scalars(stmt))
        return csv_response("dunning-cases.csv", ["id", "customer_number", "customer", "state", "level", "opened_on",
                                                  "blocked_on", "postponed_until", "closed_on"], rows)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {k: v for k, v in request.args.items() if k in form._fields and v}
    return render("staff/dunning/cases.html", block="case_table", form=form, page=page, params=params)


# ---------------------------------------------------------------- runs


@bp.get("/dunning/run")
@requires("dunning.run")
def dunning_run():
    """Choose a date → preview (a dry run: nothing written, no e-mail) → confirm (POST)."""
    if not _scope_allows_run():
        abort(403)
    form = RunPreviewForm(formdata=request.args if request.args.get("on") else None)
    preview = None
    status = 200
    if request.args.get("on"):
        if form.validate():
            preview = run_dunning(db.session, on=form.on.data, actor=operator_actor(), dry_run=True)
            db.session.rollback()
        else:
            status = 422
    else:
        form.on.data = date.today()
    return render("staff/dunning/run.html", status=status, form=form, preview=preview,
                  confirm=RunForm(data={"on": form.on.data}))


@bp.post("/dunning/run")
@requires("dunning.run")
def dunning_run_start():
    if not _scope_allows_run():
        abort(403)
    form = RunForm()
    if form.validate_on_submit():
        job = enqueue_dunning_run(form.on.data, actor=operator_actor())  # commits; inline with an immediate queue
        flash(_("The dunning run was queued."), "success")
        return redirect(url_for("staff.dunning_job", job_id=job.id))
    return render("staff/dunning/run.html", status=422, form=form, preview=None, confirm=form)


@bp.get("/dunning/runs/<int:job_id>")
@requires("dunning.run")
def dunning_job(job_id: int):
    """A dunning run's progress (HTMX polls the status block every second) and result."""
    if not _scope_allows_run():
        abort(403)
    job = job_or_404(job_id, "dunning_run")
    return render("staff/dunning/job.html", block="job_status", **job_status(job), result=job.result or {})


@bp.post("/dunning/runs/<int:job_id>/resume")
@requires("dunning.run")
def dunning_job_resume(job_id: int):
    """Run an interrupted dunning run again: reminders already sent are not sent twice."""
    if not _scope_allows_run():
        abort(403)
    job = job_or_404(job_id, "dunning_run", reap=False)
    return resume_step(job, actor=operator_actor(), resumed=_("The dunning run was resumed."),
                       page=lambda j: url_for("staff.dunning_job", job_id=j.id))


# ---------------------------------------------------------------- exceptions


def _exceptions_stmt():
    return in_operator_locations(
        select(BlockingException).join(Customer, Customer.id == BlockingException.customer_id)
        .options(contains_eager(BlockingException.customer)), Customer.location_id,
    ).order_by(BlockingException.revoked_at.is_not(None), BlockingException.id.desc())


def _exceptions_page(form: ExceptionForm, status: int = 200):
    stmt = _exceptions_stmt()
    if not request.args.get("all"):
        stmt = stmt.where(BlockingException.revoked_at.is_(None))
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("staff/dunning/exceptions.html", block="exception_table", status=status, form=form, page=page,
                  params={"all": request.args.get("all")} if request.args.get("all") else {}, today=date.today())


@bp.get("/dunning/exceptions")
@requires("dunning.run")
def dunning_exceptions():
    if wants_csv():
        rows = ((e.id, e.customer.customer_number, e.kind, e.until, e.reason, e.created_by_name, e.created_at,
                 e.revoked_at) for e in db.session.scalars(_exceptions_stmt()))
        return csv_response("blocking-exceptions.csv", ["id", "customer_number", "kind", "until", "reason",
                                                        "created_by", "created_at", "revoked_at"], rows)
    form = ExceptionForm(formdata=None, customer=request.args.get("customer") or "")
    return _exceptions_page(form)


@bp.post("/dunning/exceptions")
@requires("dunning.run")
def dunning_exception_add():
    form = ExceptionForm()
    if form.validate_on_submit():
        customer = db.session.scalar(in_operator_locations(
            select(Customer).where(Customer.customer_number == form.customer.data.strip()), Customer.location_id))
        if customer is None:
            field_error(form, _("No customer has the number %(number)s.", number=form.customer.data), "customer")
        elif form.kind.data == ExceptionKind.POSTPONE.value and form.until.data is None:
            field_error(form, _("Choose the date until which blocking waits."), "until")
        elif form.kind.data == ExceptionKind.NEVER_BLOCK.value and form.until.data is not None:
            field_error(form, _("\"Never block\" has no end date: revoke it when it should end, or postpone "
                                "blocking until a date instead."), "until")
        else:
            postpone = form.kind.data == ExceptionKind.POSTPONE.value
            return carry_out(
                lambda: postpone_blocking(db.session, customer, until=form.until.data, reason=form.reason.data,
                                          actor=operator_actor()) if postpone
                else exempt_from_blocking(db.session, customer, reason=form.reason.data, actor=operator_actor()),
                refused=lambda exc: _exceptions_page(field_error(form, exc, "reason"), 422),
                done=lambda _result: saved(_("The exception for %(number)s was recorded.",
                                             number=customer.customer_number), url_for("staff.dunning_exceptions")))
    return _exceptions_page(form, 422)


@bp.post("/dunning/exceptions/<int:exception_id>/revoke")
@requires("dunning.run")
def dunning_exception_revoke(exception_id: int):
    exc = db.session.scalars(_exceptions_stmt().where(BlockingException.id == exception_id)).first()
    if exc is None:
        abort(404)
    return carry_out(
        lambda: revoke_exception(db.session, exc, actor=operator_actor()),
        refused=lambda error: _exceptions_page(field_error(ExceptionForm(formdata=None), str(error)), 422),
        done=lambda _result: saved(_("The exception was revoked."), url_for("staff.dunning_exceptions")))


# ---------------------------------------------------------------- reminders


@bp.get("/dunning/reminders")
@requires("dunning.run")
def dunning_reminders():
    form = ReminderFilterForm(formdata=request.args)
    form.validate()
    stmt = in_operator_locations(
        select(Reminder).join(Customer, Customer.id == Reminder.customer_id)
        .options(contains_eager(Reminder.case).contains_eager(DebtRecoveryCase.customer))
        .join(DebtRecoveryCase, DebtRecoveryCase.id == Reminder.case_id), Customer.location_id)
    number = clean_text(form.customer.data)
    if number:
        stmt = stmt.where(Customer.customer_number == number)
    level = _int(form.level.data)
    if level is not None:
        stmt = stmt.where(Reminder.level == level)
    stmt = stmt.order_by(Reminder.issued_on.desc(), Reminder.id.desc())
    if wants_csv():
        rows = ((r.id, r.case.customer.customer_number, r.case.customer.display_name, r.level, r.issued_on, r.pay_by,
                 r.block_on, r.amount_due, r.fee, r.sent_at) for r in db.session.scalars(stmt))
        return csv_response("reminders.csv", ["id", "customer_number", "customer", "level", "issued_on", "pay_by",
                                              "block_on", "amount_due", "fee", "sent_at"], rows)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {k: v for k, v in request.args.items() if k in form._fields and v}
    return render("staff/dunning/reminders.html", block="reminder_table", form=form, page=page, params=params)


@bp.get("/dunning/reminders/<int:reminder_id>/pdf")
@requires("dunning.run")
def dunning_reminder_pdf(reminder_id: int):
    reminder = db.session.scalar(in_operator_locations(
        select(Reminder).join(Customer, Customer.id == Reminder.customer_id).where(Reminder.id == reminder_id),
        Customer.location_id))
    if reminder is None:
        abort(404)
    doc = document_for(db.session, DocumentKind.REMINDER, reminder)
    db.session.commit()  # the first download renders and stores the letter
    return send_document(doc)
