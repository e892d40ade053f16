"""Staff area: billing — preview and start billing runs (carried out by a background job,
never in the web worker), follow a run, the run history, and invoices with their credit
notes, cancellation, PDF and re-sending.

Location rule: a billing run bills every location, so its preview, start, history and run
pages need an operator without location limits (`billing.request_billing_run`); an operator
limited to locations works with the invoices of their locations only."""
from __future__ import annotations

import re
from datetime import date

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from wtforms import DateField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.documents import document_for, kind_for, send_document
from portal.domain import DomainError
from portal.domain.billing import (
    billing_period,
    cancel_invoice,
    issue_credit_note,
    preview_billing,
    preview_customer,
    request_billing_run,
    send_invoice,
)
from portal.domain.payments import HALF_CENT
from portal.extensions import db
from portal.jobs import (
    enqueue_billing_run,
    reap_interrupted_jobs,
)
from portal.models import (
    BillingRun,
    BillingRunState,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    Job,
    PaymentAllocation,
)
from portal.staff import bp
from portal.staff.common import csv_response, operator_actor, wants_csv
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, field_error
from portal.web.htmx import render
from portal.web.jobs import job_status, resume_step
from portal.web.pagination import Page, page_number, paginate

PER_PAGE = 50
PREVIEW_PER_PAGE = 25
_PERIOD_RE = re.compile(r"^\d{4}-\d{2}$")


# ---------------------------------------------------------------- forms


def clean_text(value) -> str:
    """A filter's text as a query may use it: stripped, without NUL (PostgreSQL refuses it in
    text; the app's NUL handling covers posted forms, not query strings)."""
    return (value or "").replace("\x00", "").strip()


class PeriodForm(FlaskForm):
    period = StringField(_l("Period (YYYY-MM)"), validators=[DataRequired(), Length(max=7)])
    issue_date = DateField(_l("Issue date"), validators=[Optional()],
                           description=_l("Empty: the day the run is carried out."))


class PeriodPreviewForm(PeriodForm):
    """The period of a preview: a GET that writes nothing, so no CSRF token (one would only
    leak into the URL)."""

    class Meta:
        csrf = False


class InvoiceFilterForm(FlaskForm):
    class Meta:
        csrf = False

    number = StringField(_l("Number or variable symbol"), validators=[Optional(), Length(max=40)])
    customer = StringField(_l("Customer (number or name)"), validators=[Optional(), Length(max=100)])
    state = SelectField(_l("State"), choices=choices([
        ("", _l("Any")), ("issued", _l("Issued")), ("cancelled", _l("Cancelled")),
        ("unpaid", _l("Unpaid")), ("overdue", _l("Overdue")), ("paid", _l("Paid")),
    ]), validators=[Optional()])
    type = SelectField(_l("Type"), choices=choices([
        ("", _l("Any")), ("invoice", _l("Invoice")), ("credit_note", _l("Credit note")), ("advance", _l("Advance")),
    ]), validators=[Optional()])
    period = StringField(_l("Period (YYYY-MM)"), validators=[Optional(), Length(max=7)])


class CreditNoteForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Give a reason.")), Length(max=1000)])
    lines = SelectMultipleField(_l("Lines to credit"), coerce=int, validate_choice=False,
                                description=_l("None chosen: the whole invoice."))


class CancelForm(FlaskForm):
    cancel_reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Give a reason.")), Length(max=1000)])


class SendForm(FlaskForm):
    to = StringField(_l("E-mail"), validators=[Optional(), Length(max=254)],
                     description=_l("Empty: the customer's billing e-mail."))


# ---------------------------------------------------------------- helpers


def _all_locations() -> bool:
    return current_user.location_ids is None


def _require_all_locations() -> None:
    if not _all_locations():
        abort(403)


def _scoped_invoice_or_404(invoice_id: int, *options) -> Invoice:
    stmt = in_operator_locations(select(Invoice).where(Invoice.id == invoice_id), Invoice.location_id)
    if options:
        stmt = stmt.options(*options)
    invoice = db.session.scalar(stmt)
    if invoice is None:
        abort(404)
    return invoice


def _list_page(items: list, page: int, per_page: int) -> Page:
    start = (page - 1) * per_page
    return Page(items=items[start:start + per_page], page=page, per_page=per_page, total=len(items))


def _recent_runs(limit: int = 5) -> list[BillingRun]:
    return list(db.session.scalars(select(BillingRun).order_by(BillingRun.id.desc()).limit(limit)))


# ---------------------------------------------------------------- billing runs


@bp.get("/billing")
@requires("billing.run")
def billing():
    """Choose a period → preview (with ?period=) → confirm (POST /billing/runs)."""
    form = PeriodPreviewForm(formdata=request.args if request.args.get("period") else None)
    preview = customers = None
    status = 200
    if _all_locations() and request.args.get("period"):
        try:
            preview = preview_billing(db.session, form.period.data or "")
        except DomainError as exc:
            field_error(form, exc, "period")
            status = 422
        else:
            customers = _list_page(preview.per_customer, page_number(request.args.get("page")), PREVIEW_PER_PAGE)
        db.session.rollback()  # the preview wrote nothing; end the read transaction
    if not form.period.data:
        today = date.today()
        form.period.data = f"{today.year:04d}-{today.month:02d}"
    params = {"period": form.period.data,
              "issue_date": form.issue_date.data.isoformat() if form.issue_date.data else None}
    confirm = PeriodForm(data={"period": form.period.data, "issue_date": form.issue_date.data})
    return render("staff/billing/index.html", block="preview_customers" if request.args.get("page") else None,
                  status=status, form=form, confirm=confirm, preview=preview, customers=customers, params=params,
                  runs=_recent_runs() if _all_locations() else [], all_locations=_all_locations())


@bp.get("/billing/preview/<int:customer_id>")
@requires("billing.run")
def billing_preview_customer(customer_id: int):
    """The preview's drill-down: the invoices one customer would get, line by line."""
    _require_all_locations()
    period = clean_text(request.args.get("period"))
    try:
        start, _end = billing_period(period)
        invoices = preview_customer(db.session, period, customer_id)
    except DomainError as exc:
        db.session.rollback()
        return render("staff/billing/preview_customer.html", block="drilldown", status=422, error=str(exc),
                      invoices=[], customer=None, period=period)
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        abort(404)
    db.session.rollback()  # the preview wrote nothing; end the read transaction
    return render("staff/billing/preview_customer.html", block="drilldown", invoices=invoices, customer=customer,
                  period=f"{start:%Y-%m}", error=None)


@bp.post("/billing/runs")
@requires("billing.run")
def billing_run_start():
    _require_all_locations()
    form = PeriodForm()
    if form.validate_on_submit():
        try:
            billing_period(form.period.data)
            reap_interrupted_jobs()  # a run of this month whose worker died does not block it
            run = request_billing_run(db.session, form.period.data, actor=operator_actor(),
                                      location_ids=current_user.location_ids, issue_date=form.issue_date.data)
        except DomainError as exc:
            db.session.rollback()
            field_error(form, exc, "period")
        else:
            run_id = run.id
            enqueue_billing_run(run, actor=operator_actor())  # commits; runs inline with an immediate queue
            flash(_("Billing run %(id)s was queued.", id=run_id), "success")
            return redirect(url_for("staff.billing_run", run_id=run_id))
    return render("staff/billing/index.html", status=422, form=form, confirm=form, preview=None, customers=None,
                  params={}, runs=_recent_runs(), all_locations=True)


@bp.get("/billing/runs")
@requires("billing.run")
def billing_runs():
    _require_all_locations()
    stmt = select(BillingRun).order_by(BillingRun.id.desc())
    if wants_csv():
        rows = ((r.id, r.period_start.strftime("%Y-%m"), r.issue_date, r.state, r.started_by_name, r.started_at,
                 r.finished_at, r.customers_count, r.invoices_count, r.charges_count, r.net_total, r.vat_total,
                 r.gross_total, r.error) for r in db.session.scalars(stmt))
        return csv_response("billing-runs.csv", ["id", "period", "issue_date", "state", "started_by", "started_at",
                                                 "finished_at", "customers", "invoices", "charges", "net", "vat",
                                                 "gross", "error"], rows)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("staff/billing/runs.html", block="runs_table", page=page)


def _run_view(run_id: int) -> dict:
    reap_interrupted_jobs()  # a run whose worker is gone shows as interrupted, not running forever
    run = db.session.get(BillingRun, run_id)
    if run is None:
        abort(404)
    status = job_status(db.session.get(Job, run.job_id) if run.job_id else None)
    job = status["job"]
    # The run's own state counts too: a run without a job, or failed by itself, is finished.
    status["finished"] = run.state in (BillingRunState.DONE, BillingRunState.FAILED) or status["finished"]
    status["failed"] = run.state == BillingRunState.FAILED or status["failed"]
    error = run.error or (job.error if job is not None else "")
    return {"run": run, **status, "error": error}


@bp.get("/billing/runs/<int:run_id>")
@requires("billing.run")
def billing_run(run_id: int):
    """The run's progress (HTMX polls the status block every second until it is done) and result."""
    _require_all_locations()
    ctx = _run_view(run_id)
    return render("staff/billing/run.html", block="run_status", **ctx)


@bp.post("/billing/runs/<int:run_id>/resume")
@requires("billing.run")
def billing_run_resume(run_id: int):
    """Carry on an interrupted run: the batches its lost worker committed stay, a new job
    bills the rest (same invoices and numbers as an uninterrupted run)."""
    _require_all_locations()
    run = db.session.get(BillingRun, run_id)
    job = db.session.get(Job, run.job_id) if run is not None and run.job_id else None
    if job is None:
        abort(404)
    return resume_step(job, actor=operator_actor(), resumed=_("Billing run %(id)s was resumed.", id=run_id),
                       page=lambda _job: url_for("staff.billing_run", run_id=run_id))


# ---------------------------------------------------------------- invoices


def _invoice_query(form: InvoiceFilterForm):
    stmt = in_operator_locations(select(Invoice), Invoice.location_id)
    number = clean_text(form.number.data)
    if number:
        stmt = stmt.where(or_(Invoice.number.ilike(f"%{number}%"), Invoice.variable_symbol == number))
    customer = clean_text(form.customer.data)
    if customer:
        stmt = stmt.where(or_(Invoice.customer_number == customer, Invoice.customer_name.ilike(f"%{customer}%")))
    if form.type.data in {t.value for t in InvoiceType}:
        stmt = stmt.where(Invoice.type == InvoiceType(form.type.data))
    period = clean_text(form.period.data)
    if period and _PERIOD_RE.match(period):
        try:
            start, end = billing_period(period)
        except DomainError:
            pass
        else:
            stmt = stmt.where(Invoice.period_start >= start, Invoice.period_start <= end)
    due = Invoice.gross_total - Invoice.paid_amount - Invoice.credited_amount
    state = form.state.data
    if state in ("issued", "cancelled"):
        stmt = stmt.where(Invoice.state == InvoiceState(state))
    elif state in ("unpaid", "overdue", "paid"):
        stmt = stmt.where(Invoice.state == InvoiceState.ISSUED, Invoice.type != InvoiceType.CREDIT_NOTE)
        stmt = stmt.where(due <= HALF_CENT) if state == "paid" else stmt.where(due > HALF_CENT)
        if state == "overdue":
            stmt = stmt.where(Invoice.due_date < date.today())
    return stmt.order_by(Invoice.issue_date.desc(), Invoice.id.desc())


@bp.get("/billing/invoices")
@requires("billing.run")
def invoices():
    form = InvoiceFilterForm(formdata=request.args)
    form.validate()
    stmt = _invoice_query(form)
    if wants_csv():
        rows = ((i.number, i.type, i.state, i.customer_number, i.customer_name, i.issue_date, i.due_date,
                 i.period_start, i.currency, i.net_total, i.vat_total, i.gross_total, i.paid_amount,
                 i.credited_amount, i.amount_due, i.variable_symbol) for i in db.session.scalars(stmt))
        return csv_response("invoices.csv", ["number", "type", "state", "customer_number", "customer", "issue_date",
                                             "due_date", "period", "currency", "net", "vat", "gross", "paid",
                                             "credited", "due", "variable_symbol"], rows)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {k: v for k, v in request.args.items() if k in form._fields and v}
    return render("staff/billing/invoices.html", block="invoice_table", form=form, page=page, params=params,
                  today=date.today())


def _detail_context(invoice: Invoice, **forms) -> dict:
    credit_notes = list(db.session.scalars(
        select(Invoice).where(Invoice.corrects_id == invoice.id).order_by(Invoice.id)))
    allocations = list(db.session.scalars(
        select(PaymentAllocation).options(selectinload(PaymentAllocation.payment))
        .where(PaymentAllocation.invoice_id == invoice.id).order_by(PaymentAllocation.at, PaymentAllocation.id)))
    credited_lines = dict(db.session.execute(
        select(InvoiceLine.corrects_line_id, func.sum(InvoiceLine.gross))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.corrects_id == invoice.id, Invoice.state == InvoiceState.ISSUED,
               InvoiceLine.corrects_line_id.is_not(None))
        .group_by(InvoiceLine.corrects_line_id)).all())
    credit_form = forms.get("credit_form") or CreditNoteForm()
    credit_form.lines.choices = choices((ln.id, f"{ln.position}. {ln.description}") for ln in invoice.lines)
    return {
        "invoice": invoice, "credit_notes": credit_notes, "allocations": allocations,
        "credited_lines": credited_lines, "credit_form": credit_form,
        "cancel_form": forms.get("cancel_form") or CancelForm(), "send_form": forms.get("send_form") or SendForm(),
        "corrects": invoice.corrects if invoice.corrects_id else None, "today": date.today(),
    }


def _load_detail(invoice_id: int) -> Invoice:
    return _scoped_invoice_or_404(invoice_id, selectinload(Invoice.lines), selectinload(Invoice.vat_breakdown))


@bp.get("/billing/invoices/<int:invoice_id>")
@requires("billing.run")
def invoice_detail(invoice_id: int):
    invoice = _load_detail(invoice_id)
    return render("staff/billing/invoice_detail.html", **_detail_context(invoice))


@bp.get("/billing/invoices/<int:invoice_id>/pdf")
@requires("billing.run")
def invoice_pdf(invoice_id: int):
    invoice = _scoped_invoice_or_404(invoice_id)
    doc = document_for(db.session, kind_for(invoice), invoice)
    db.session.commit()  # the first download renders and stores the file
    return send_document(doc)


def _invoice_refused(invoice: Invoice | int, **forms):
    """The invoice page again with a form's errors (loaded anew after a rollback)."""
    if isinstance(invoice, int):
        invoice = _load_detail(invoice)
    return render("staff/billing/invoice_detail.html", status=422, **_detail_context(invoice, **forms))


@bp.post("/billing/invoices/<int:invoice_id>/credit-note")
@requires("billing.run")
def invoice_credit_note(invoice_id: int):
    invoice = _load_detail(invoice_id)
    form = CreditNoteForm()
    form.lines.choices = choices((ln.id, str(ln.position)) for ln in invoice.lines)
    if not form.validate_on_submit():
        return _invoice_refused(invoice, credit_form=form)
    return carry_out(
        lambda: issue_credit_note(db.session, invoice, actor=operator_actor(), reason=form.reason.data,
                                  line_ids=form.lines.data or None),
        refused=lambda exc: _invoice_refused(invoice_id, credit_form=field_error(form, exc, "lines")),
        done=lambda note: saved(_("Credit note %(number)s was issued.", number=note.number),
                                url_for("staff.invoice_detail", invoice_id=invoice_id)))


@bp.post("/billing/invoices/<int:invoice_id>/cancel")
@requires("billing.run")
def invoice_cancel(invoice_id: int):
    invoice = _load_detail(invoice_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _invoice_refused(invoice, cancel_form=form)
    return carry_out(
        lambda: cancel_invoice(db.session, invoice, actor=operator_actor(), reason=form.cancel_reason.data),
        refused=lambda exc: _invoice_refused(invoice_id, cancel_form=field_error(form, exc, "cancel_reason")),
        done=lambda note: saved(_("Invoice %(number)s was cancelled.", number=invoice.number)
                                + (" " + _("Credit note %(number)s was issued.", number=note.number) if note else ""),
                                url_for("staff.invoice_detail", invoice_id=invoice_id)))


@bp.post("/billing/invoices/<int:invoice_id>/send")
@requires("billing.run")
def invoice_send(invoice_id: int):
    invoice = _load_detail(invoice_id)
    form = SendForm()
    if form.validate_on_submit():
        return carry_out(
            lambda: send_invoice(db.session, invoice, actor=operator_actor(), to=form.to.data),
            refused=lambda exc: _invoice_refused(invoice_id, send_form=field_error(form, exc, "to")),
            done=lambda row: saved(_("Invoice %(number)s was sent to %(to)s.", number=invoice.number, to=row.to),
                                   url_for("staff.invoice_detail", invoice_id=invoice_id)))
    return _invoice_refused(invoice, send_form=form)
