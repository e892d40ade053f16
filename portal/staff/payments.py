"""Staff area: payments — the list, bank statement upload (CAMT.053/.054, ABO, MT940, Fio
CSV, CSV), the unmatched queue with suggested matches, manual pairing, unpairing and manual
entry.

Location rules: a payment whose customer is known belongs to the customer's location and is
seen only by operators of that location; an unidentified payment (no customer) is nobody's
yet and waits in the queue for every payments operator, but it can only be paired with
customers and invoices of the operator's locations. Importing a bank statement pairs money
with any customer, so it needs an operator without location limits; so does a manual payment
without a named customer (its variable symbol may point anywhere)."""
from __future__ import annotations

from datetime import date

from flask import abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import or_, select
from sqlalchemy.orm import contains_eager, selectinload
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.domain import DomainError
from portal.domain.payments import (
    STAFF_QUEUE_STATES,
    allocate,
    assign_customer,
    record_payment,
    suggest_matches,
    unpair,
)
from portal.domain.statements import MAX_FILE_SIZE, check_statement
from portal.extensions import db
from portal.jobs import (
    enqueue_statement_import,
)
from portal.models import (
    AuditEntry,
    Currency,
    Customer,
    Invoice,
    JobState,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    StatementImport,
)
from portal.staff import bp
from portal.staff.billing import clean_text
from portal.staff.common import csv_response, operator_actor, wants_csv
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, field_error
from portal.web.htmx import is_htmx, render
from portal.web.jobs import job_or_404, job_status, resume_step
from portal.web.pagination import page_number, paginate

PER_PAGE = 50


# ---------------------------------------------------------------- forms


class PaymentFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("VS, payer, message or customer number"), validators=[Optional(), Length(max=100)])
    state = SelectField(_l("State"), choices=choices([("", _l("Any"))] + [(s.value, s.value) for s in PaymentState]),
                        validators=[Optional()])
    source = SelectField(_l("Source"), choices=choices([("", _l("Any"))] + [(s.value, s.value) for s in PaymentSource]),
                         validators=[Optional()])
    received_from = DateField(_l("Received from"), validators=[Optional()])
    received_to = DateField(_l("Received to"), validators=[Optional()])


class ImportForm(FlaskForm):
    statement = FileField(_l("Bank statement"), validators=[FileRequired(_l("Choose a file."))],
                          description=_l("CAMT.053 or CAMT.054 XML, ABO/GPC, MT940, Fio CSV or CSV (UTF-8 or "
                                         "Windows-1250), at most 10 MB."))


class PaymentForm(FlaskForm):
    amount = StringField(_l("Amount"), validators=[DataRequired(), Length(max=20)])
    currency = SelectField(_l("Currency"), choices=choices([(c.value, c.value) for c in Currency]))
    received_on = DateField(_l("Received on"), validators=[DataRequired()])
    source = SelectField(_l("Source"), choices=choices([
        (PaymentSource.MANUAL.value, _l("Bank transfer entered by hand")), (PaymentSource.CASH.value, _l("Cash")),
        (PaymentSource.CARD.value, _l("Card"))]))
    customer = StringField(_l("Customer number"), validators=[Optional(), Length(max=20)])
    variable_symbol = StringField(_l("Variable symbol"), validators=[Optional(), Length(max=20)])
    message = TextAreaField(_l("Note"), validators=[Optional(), Length(max=300)])


class AssignForm(FlaskForm):
    customer = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=20)])


class AllocateForm(FlaskForm):
    invoice = StringField(_l("Invoice number"), validators=[DataRequired(), Length(max=40)])
    amount = StringField(_l("Amount"), validators=[DataRequired(), Length(max=20)])


class UnpairForm(FlaskForm):
    allocation = StringField(validators=[Optional(), Length(max=20)])


# ---------------------------------------------------------------- helpers


def _scoped_payments():
    """Payments the operator may see: unidentified ones, and those of their locations' customers."""
    stmt = select(Payment).outerjoin(Customer, Customer.id == Payment.customer_id).options(
        contains_eager(Payment.customer))
    ids = current_user.location_ids
    if ids is not None:
        stmt = stmt.where(or_(Payment.customer_id.is_(None), Customer.location_id.in_(ids)))
    return stmt


def _payment_or_404(payment_id: int) -> Payment:
    payment = db.session.scalars(_scoped_payments().where(Payment.id == payment_id)).first()
    if payment is None:
        abort(404)
    return payment


def _customer_by_number(number: str) -> Customer | None:
    stmt = in_operator_locations(select(Customer).where(Customer.customer_number == (number or "").strip()),
                                 Customer.location_id)
    return db.session.scalar(stmt)


def _invoice_by_number(number: str) -> Invoice | None:
    stmt = in_operator_locations(select(Invoice).where(Invoice.number == (number or "").strip()),
                                 Invoice.location_id)
    return db.session.scalar(stmt)


def _filtered(form: PaymentFilterForm, stmt):
    q = clean_text(form.q.data)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Payment.variable_symbol == q, Payment.counterparty_name.ilike(like),
                              Payment.message.ilike(like), Customer.customer_number == q))
    if form.state.data in {s.value for s in PaymentState}:
        stmt = stmt.where(Payment.state == PaymentState(form.state.data))
    if form.source.data in {s.value for s in PaymentSource}:
        stmt = stmt.where(Payment.source == PaymentSource(form.source.data))
    if form.received_from.data:
        stmt = stmt.where(Payment.received_on >= form.received_from.data)
    if form.received_to.data:
        stmt = stmt.where(Payment.received_on <= form.received_to.data)
    return stmt


PAYMENT_CSV_HEADER = ["id", "received_on", "amount", "currency", "state", "unallocated", "variable_symbol",
                      "constant_symbol", "specific_symbol", "source", "customer_number", "counterparty_name",
                      "counterparty_account", "message", "bank_reference"]


def _csv_rows(stmt):
    for p in db.session.scalars(stmt):
        yield (p.id, p.received_on, p.amount, p.currency, p.state, p.unallocated, p.variable_symbol,
               p.constant_symbol, p.specific_symbol, p.source, p.customer.customer_number if p.customer else None,
               p.counterparty_name, p.counterparty_account, p.message, p.bank_reference)


def _list(template: str, endpoint: str, stmt, filename: str):
    form = PaymentFilterForm(formdata=request.args)
    form.validate()
    stmt = _filtered(form, stmt).order_by(Payment.received_on.desc(), Payment.id.desc())
    if wants_csv():
        return csv_response(filename, PAYMENT_CSV_HEADER, _csv_rows(stmt))
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {k: v for k, v in request.args.items() if k in form._fields and v}
    return render(template, block="payment_table", form=form, page=page, params=params, endpoint=endpoint)


# ---------------------------------------------------------------- lists


@bp.get("/payments")
@requires("payments.write")
def payments():
    return _list("staff/payments/index.html", "staff.payments", _scoped_payments(), "payments.csv")


@bp.get("/payments/unmatched")
@requires("payments.write")
def payments_unmatched():
    """The staff queue: money waiting for a decision (unmatched, or partly allocated)."""
    stmt = _scoped_payments().where(Payment.state.in_(STAFF_QUEUE_STATES))
    return _list("staff/payments/unmatched.html", "staff.payments_unmatched", stmt, "unmatched-payments.csv")


# ---------------------------------------------------------------- one payment


def _detail(payment: Payment, status: int = 200, **forms):
    allocations = list(db.session.scalars(
        select(PaymentAllocation).options(selectinload(PaymentAllocation.invoice))
        .where(PaymentAllocation.payment_id == payment.id).order_by(PaymentAllocation.id)))
    suggestions = suggest_matches(db.session, payment, location_ids=current_user.location_ids)
    return render("staff/payments/detail.html", status=status, payment=payment, allocations=allocations,
                  suggestions=suggestions, assign_form=forms.get("assign_form") or AssignForm(),
                  allocate_form=forms.get("allocate_form") or AllocateForm(),
                  unpair_form=forms.get("unpair_form") or UnpairForm())


@bp.get("/payments/<int:payment_id>")
@requires("payments.write")
def payment_detail(payment_id: int):
    return _detail(_payment_or_404(payment_id))


@bp.post("/payments/<int:payment_id>/assign")
@requires("payments.write")
def payment_assign(payment_id: int):
    payment = _payment_or_404(payment_id)
    form = AssignForm()
    if form.validate_on_submit():
        customer = _customer_by_number(form.customer.data)
        if customer is None:
            field_error(form, _("No customer has the number %(number)s.", number=form.customer.data), "customer")
        else:
            return carry_out(
                lambda: assign_customer(db.session, payment, customer, actor=operator_actor()),
                refused=lambda exc: _detail(_payment_or_404(payment_id), 422,
                                            assign_form=field_error(form, exc, "customer")),
                done=lambda _result: saved(_("The payment was assigned to %(customer)s.",
                                             customer=customer.customer_number),
                                           url_for("staff.payment_detail", payment_id=payment_id)))
    return _detail(payment, 422, assign_form=form)


@bp.post("/payments/<int:payment_id>/allocate")
@requires("payments.write")
def payment_allocate(payment_id: int):
    payment = _payment_or_404(payment_id)
    form = AllocateForm()
    if form.validate_on_submit():
        invoice = _invoice_by_number(form.invoice.data)
        if invoice is None:
            field_error(form, _("No invoice has the number %(number)s.", number=form.invoice.data), "invoice")
        else:
            return carry_out(
                lambda: allocate(db.session, payment, invoice,
                                 (form.amount.data or "").replace(",", ".").replace(" ", ""), actor=operator_actor()),
                refused=lambda exc: _detail(_payment_or_404(payment_id), 422,
                                            allocate_form=field_error(form, exc, "amount")),
                done=lambda _result: saved(_("The payment was paired with invoice %(number)s.", number=invoice.number),
                                           url_for("staff.payment_detail", payment_id=payment_id)))
    return _detail(payment, 422, allocate_form=form)


@bp.post("/payments/<int:payment_id>/unpair")
@requires("payments.write")
def payment_unpair(payment_id: int):
    payment = _payment_or_404(payment_id)
    form = UnpairForm()
    if form.validate_on_submit():
        allocation = None
        raw = (form.allocation.data or "").strip()
        if raw:
            allocation = db.session.get(PaymentAllocation, int(raw)) if raw.isdigit() else None
            if allocation is None or allocation.payment_id != payment.id:
                field_error(form, _("This allocation does not belong to the payment."), "allocation")
                return _detail(payment, 422, unpair_form=form)
        return carry_out(
            lambda: unpair(db.session, payment, actor=operator_actor(), allocation=allocation),
            refused=lambda exc: _detail(_payment_or_404(payment_id), 422,
                                        unpair_form=field_error(form, exc, "allocation")),
            done=lambda _result: saved(_("The payment was unpaired."),
                                       url_for("staff.payment_detail", payment_id=payment_id)))
    return _detail(payment, 422, unpair_form=form)


# ---------------------------------------------------------------- manual entry


@bp.route("/payments/new", methods=["GET", "POST"])
@requires("payments.write")
def payment_new():
    form = PaymentForm()
    if request.method == "GET":
        form.received_on.data = date.today()
        return render("staff/payments/new.html", form=form)
    if form.validate_on_submit():
        customer = None
        number = (form.customer.data or "").strip()
        if number:
            customer = _customer_by_number(number)
            if customer is None:
                field_error(form, _("No customer has the number %(number)s.", number=number), "customer")
        elif current_user.location_ids is not None:
            field_error(form, _("Name the customer: you work with some locations only."), "customer")
        if not form.errors and not form.form_errors:
            return carry_out(
                lambda: record_payment(
                    db.session, amount=(form.amount.data or "").replace(",", ".").replace(" ", ""),
                    currency=form.currency.data, received_on=form.received_on.data, actor=operator_actor(),
                    variable_symbol=form.variable_symbol.data, source=PaymentSource(form.source.data),
                    customer=customer, message=form.message.data or ""),
                refused=lambda exc: render("staff/payments/new.html", status=422,
                                           form=field_error(form, exc, "amount")),
                done=lambda payment: saved(_("The payment was recorded."),
                                           url_for("staff.payment_detail", payment_id=payment.id)))
    return render("staff/payments/new.html", status=422, form=form)


# ---------------------------------------------------------------- statement import


def _check_upload(form: ImportForm) -> bytes | None:
    """The uploaded bytes, or None with the reason on the field: size, text encoding. The
    format is told by the content (banks name their exports .gpc, .sta, .txt, .xml…), by
    `check_statement`, which names what it expected when it knows none."""
    storage = form.statement.data
    data = storage.stream.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        form.statement.errors = [_("The file is larger than %(mb)d MB.", mb=MAX_FILE_SIZE // (1024 * 1024))]
        return None
    if not data.strip():
        form.statement.errors = [_("The file is empty.")]
        return None
    if b"\x00" in data:
        form.statement.errors = [_("The file is not a text statement (binary, or UTF-16): save it as a UTF-8 or "
                                   "Windows-1250 CSV, or as CAMT.053 XML.")]
        return None
    return data


@bp.route("/payments/import", methods=["GET", "POST"])
@requires("payments.write")
def payment_import():
    """Upload a statement. It is checked whole here (a bad file gets its message next to the
    field and imports nothing); recording and pairing its payments runs as a job, whose page
    shows the progress and then the summary."""
    if current_user.location_ids is not None:
        abort(403)
    form = ImportForm()
    if request.method == "GET":
        return render("staff/payments/import.html", form=form, imports=_recent_imports())
    if form.validate_on_submit():
        data = _check_upload(form)
        if data is not None:
            try:
                check_statement(db.session, data)
            except DomainError as exc:
                db.session.rollback()
                form.statement.errors = [str(exc)]
            else:
                # Commits the job; with an immediate queue (tests) it has run by now.
                job = enqueue_statement_import(form.statement.data.filename or "statement", data,
                                               actor=operator_actor())
                return redirect(url_for("staff.statement_import_job", job_id=job.id))
    return render("staff/payments/import.html", status=422, form=form, imports=_recent_imports())


@bp.get("/payments/import/jobs/<int:job_id>")
@requires("payments.write")
def statement_import_job(job_id: int):
    """An import's progress (HTMX polls the status block every second); once done, its summary."""
    if current_user.location_ids is not None:
        abort(403)
    job = job_or_404(job_id, "statement_import")
    import_id = (job.result or {}).get("statement_import_id") if job.state == JobState.DONE else None
    if import_id is not None:
        target = url_for("staff.statement_import", import_id=import_id)
        if is_htmx():
            return "", 204, {"HX-Redirect": target}
        return redirect(target)
    return render("staff/payments/import_job.html", block="job_status", **job_status(job),
                  file_name=(job.params or {}).get("file_name", ""))


@bp.post("/payments/import/jobs/<int:job_id>/resume")
@requires("payments.write")
def statement_import_job_resume(job_id: int):
    """Import again the statement an interrupted job was importing (nothing of it was kept)."""
    if current_user.location_ids is not None:
        abort(403)
    job = job_or_404(job_id, "statement_import", reap=False)
    return resume_step(job, actor=operator_actor(), resumed=_("The import was resumed."),
                       page=lambda j: url_for("staff.statement_import_job", job_id=j.id))


def _recent_imports() -> list[StatementImport]:
    return list(db.session.scalars(select(StatementImport).order_by(StatementImport.id.desc()).limit(10)))


@bp.get("/payments/imports/<int:import_id>")
@requires("payments.write")
def statement_import(import_id: int):
    if current_user.location_ids is not None:
        abort(403)
    imported = db.session.get(StatementImport, import_id)
    if imported is None:
        abort(404)
    stmt = (select(Payment).options(selectinload(Payment.customer)).where(Payment.statement_import_id == import_id)
            .order_by(Payment.id))
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    entry = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "statement.imported", AuditEntry.entity_type == "statement_import",
        AuditEntry.entity_id == import_id).order_by(AuditEntry.id)).first()
    reversals = (entry.changes or {}).get("reversals", []) if entry is not None else []
    return render("staff/payments/import_result.html", block="payment_table", imported=imported, page=page,
                  reversals=reversals, params={"import_id": import_id}, endpoint="staff.statement_import")
