"""Selfcare pages. Every row is looked up through the logged-in customer: lists filter by
`current_user.customer_id`, single rows come from `owned_or_404`. Lists load what their
templates show in a fixed number of queries (selectinload / joinedload), whatever the size."""
from __future__ import annotations

from datetime import date
from functools import cache, wraps

import segno
from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload, selectinload

from portal.documents import (
    document_for,
    invoice_supplier,
    kind_for,
    render_statement,
    send_document,
    send_pdf,
    statement_file_name,
)
from portal.documents.qr import payment_qr
from portal.domain import DomainError
from portal.domain import cancellation as cancellation_rules
from portal.domain import customer_requests as requests_rules
from portal.domain import dunning as dunning_rules
from portal.domain import profile as profile_rules
from portal.domain import security as security_rules
from portal.domain.actors import Actor
from portal.domain.agreements import (
    acceptance_deadline,
    awaiting_acceptance,
    blocking_date,
    covering_agreement,
)
from portal.domain.balance import customer_statement, describe_entry
from portal.domain.lifecycle import (
    next_period_start,
    pending_plan_changes,
    plan_change_preview,
    price_on,
    without_pending_successors,
)
from portal.domain.overview import customer_overview, open_invoices_query
from portal.domain.plan_change import change_plan
from portal.extensions import db, limiter
from portal.models import (
    ActorType,
    Agreement,
    AgreementState,
    Contact,
    CustomerRequest,
    CustomerService,
    Invoice,
    InvoiceLine,
    InvoiceType,
    InvoiceVat,
    Payment,
    PaymentAllocation,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from portal.models.agreements import agreement_services
from portal.security.sessions import active_sessions, current_auth_session, start_session
from portal.selfcare import bp
from portal.selfcare.forms import (
    AddressForm,
    CancelForm,
    CancelIdentifyForm,
    CommentForm,
    ContactForm,
    EmptyForm,
    InvoiceFilterForm,
    LanguageForm,
    NewRequestForm,
    NotificationsForm,
    PasswordForm,
    PlanChangeForm,
    PlanPreviewForm,
    ProofForm,
    RemoveContactForm,
    StatementForm,
    TotpConfirmForm,
    _int_or_none,
    choices,
)
from portal.web.access import customer_required, owned_or_404
from portal.web.htmx import is_htmx, render
from portal.web.pagination import page_number, paginate

PER_PAGE = 25


def _actor() -> Actor:
    return Actor.customer(current_user, ip=request.remote_addr, request_id=g.get("request_id"))


def _cid() -> int:
    return current_user.customer_id


def customer_writes(view):
    """A selfcare change: a logged-in customer, and not staff viewing as the customer
    (those sessions are read-only)."""

    @wraps(view)
    @customer_required
    def wrapped(*args, **kwargs):
        if current_user.impersonator_id:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _field_error(form, exc: DomainError) -> None:
    """Put a rule's refusal next to its field, or above the form."""
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None:
        target.errors = [*target.errors, str(exc)]
    else:
        form.form_errors.append(str(exc))


def _blocking_notice(overview, today: date) -> dict | None:
    """The dashboard's warning when dunning will block services: the forecast, plus how to pay."""
    active = [s for s in overview.services if s.state == ServiceState.ACTIVE]
    forecast = dunning_rules.blocking_forecast(db.session, _cid(), active, today)
    if forecast is None:
        return None
    return {**forecast, "supplier": invoice_supplier(forecast["invoice"]), "qr": _payment_qr(forecast["invoice"])}


@bp.get("/")
@customer_required
def dashboard():
    today = date.today()
    overview = customer_overview(db.session, _cid(), today)
    # A scheduled plan change is the pending change of one service, not a second service.
    pending = pending_plan_changes(db.session, overview.services)
    overview.services = without_pending_successors(overview.services, pending)
    awaiting = [{"agreement": a, "deadline": acceptance_deadline(a)}
                for a in awaiting_acceptance(db.session, _cid())]
    return render("selfcare/dashboard.html", overview=overview, customer=current_user.customer,
                  blocking=_blocking_notice(overview, today), awaiting=awaiting, today=today, pending=pending)


# ---------------------------------------------------------------------------------- services

@bp.get("/services")
@customer_required
def services():
    rows = db.session.scalars(
        select(CustomerService)
        .options(joinedload(CustomerService.definition).selectinload(ServiceDefinition.price_changes))
        .where(CustomerService.customer_id == _cid())
        .order_by(CustomerService.state == "cancelled", CustomerService.id)
    ).all()
    pending = pending_plan_changes(db.session, rows)
    rows = without_pending_successors(rows, pending)
    today = date.today()
    prices = {s.id: price_on(s, today) for s in rows}
    return render("selfcare/services.html", services=rows, prices=prices, pending=pending,
                  currency=current_user.customer.location.currency.value)


@bp.get("/services/<int:service_id>")
@customer_required
def service_detail(service_id: int):
    service = owned_or_404(CustomerService, service_id)
    predecessor = db.session.scalar(select(CustomerService).where(
        CustomerService.replaced_by_id == service.id, CustomerService.customer_id == _cid()))
    if predecessor is not None and predecessor.id in pending_plan_changes(db.session, [predecessor, service]):
        # Not a service of its own yet: the pending change is shown on the service it changes.
        return redirect(url_for("selfcare.service_detail", service_id=predecessor.id))
    pending_change = pending_plan_changes(db.session, [service]).get(service.id)
    events = db.session.scalars(
        select(ServiceEvent)
        .where(ServiceEvent.customer_service_id == service.id, ServiceEvent.visible_to_customer.is_(True))
        .order_by(ServiceEvent.effective_on, ServiceEvent.id)
    ).all()
    scheduled = [e for e in events if e.scheduled_for is not None and e.done_at is None]
    history = [e for e in events if not (e.scheduled_for is not None and e.done_at is None)]
    agreements = db.session.scalars(
        select(Agreement)
        .options(joinedload(Agreement.type))
        .join(agreement_services, agreement_services.c.agreement_id == Agreement.id)
        .where(agreement_services.c.customer_service_id == service.id,
               Agreement.customer_id == _cid(), Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.conclusion_date, Agreement.id)
    ).all()
    usage = profile_rules.service_usage(db.session, service)
    plan_form = PlanPreviewForm(formdata=None)
    plan = _plan_context(service, plan_form)
    plan_form.on.data = plan["default_on"]
    cancellable = service.state != ServiceState.CANCELLED and not any(
        e.kind in (ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED) for e in scheduled)
    plan = {k: v for k, v in plan.items() if k != "service"}
    return render("selfcare/service_detail.html", service=service, price=price_on(service, date.today()),
                  history=list(reversed(history)),
                  scheduled=scheduled, pending_change=pending_change, agreements=agreements, usage=usage, cancellable=cancellable,
                  currency=current_user.customer.location.currency.value,
                  form=plan_form, preview=None, confirm_form=None, **{**plan, "changeable": plan["changeable"] and cancellable})


# ---------------------------------------------------------------------------------- plan change
# On the service page: a target and a date → a preview (htmx swaps the block in on every
# change; without JavaScript the same URL is a full page) → confirm (POST). A definition that
# is not changeable in selfcare turns the confirmation into a plan-change request for staff.

def _plan_context(service: CustomerService, form) -> dict:
    targets = requests_rules.plan_targets(service)
    form.target_id.choices = choices([("", "—")] + [(d.id, d.customer_name) for d in targets])
    changeable = service.state in (ServiceState.ACTIVE, ServiceState.BLOCKED) and bool(targets)
    return {"service": service, "targets": {d.id: d for d in targets}, "changeable": changeable,
            "direct": bool(service.definition.selfcare_changeable),
            "default_on": max(next_period_start(service.definition.period, date.today()), date.today()),
            "today": date.today()}


def _check_plan_form(form, ctx: dict) -> bool:
    ok = form.validate()
    if form.target_id.data is not None and form.target_id.data not in ctx["targets"]:
        form.target_id.errors = [*form.target_id.errors, _("Choose one of the plans offered for this service.")]
        ok = False
    if form.on.data is not None and form.on.data < date.today():
        form.on.errors = [*form.on.errors, _("The change cannot take effect in the past.")]
        ok = False
    if ok and _before_billing_start(ctx["service"], form.on.data):
        form.on.errors = [*form.on.errors, _("The change must take effect after billing started.")]
        ok = False
    return ok


def _before_billing_start(service: CustomerService, on: date) -> bool:
    return service.billing_from is not None and on <= service.billing_from


def _plan_preview(ctx: dict, form) -> dict:
    service, target, on = ctx["service"], ctx["targets"][form.target_id.data], form.on.data
    preview = plan_change_preview(service, target, on)
    parent = covering_agreement(db.session, service) if ctx["direct"] else None
    return {**preview, "target": target, "annex_to": parent}


def _plan_page(service: CustomerService, form, status: int = 200, preview: dict | None = None, ctx: dict | None = None):
    ctx = ctx or _plan_context(service, form)
    return render("selfcare/plan_change.html", block="plan_preview", status=status, form=form, preview=preview,
                  confirm_form=PlanChangeForm(formdata=None, target_id=form.target_id.data, on=form.on.data),
                  currency=current_user.customer.location.currency.value, **ctx)


@bp.get("/services/<int:service_id>/plan")
@customer_required
def plan_change(service_id: int):
    service = owned_or_404(CustomerService, service_id)
    if not request.args:
        form = PlanPreviewForm(formdata=None)
        ctx = _plan_context(service, form)
        form.on.data = ctx["default_on"]
        return _plan_page(service, form, ctx=ctx)
    form = PlanPreviewForm(formdata=request.args)
    ctx = _plan_context(service, form)
    if not ctx["changeable"] or not _check_plan_form(form, ctx):
        return _plan_page(service, form, status=422, ctx=ctx)
    return _plan_page(service, form, preview=_plan_preview(ctx, form), ctx=ctx)


@bp.post("/services/<int:service_id>/plan")
@customer_writes
def plan_change_confirm(service_id: int):
    service = owned_or_404(CustomerService, service_id)
    form = PlanChangeForm()
    ctx = _plan_context(service, form)
    if not ctx["changeable"] or not _check_plan_form(form, ctx):
        return _plan_page(service, form, status=422, ctx=ctx)
    target, on = ctx["targets"][form.target_id.data], form.on.data
    try:
        if not ctx["direct"]:
            created = requests_rules.create_request(
                db.session, current_user.customer, _actor(), kind="plan_change",
                subject=_("Change of plan to %(name)s", name=target.customer_name)[:200],
                message=_("Please change %(old)s to %(new)s from %(date)s.", old=service.definition.customer_name,
                          new=target.customer_name, date=on.isoformat()),
                service=service, target_definition_id=target.id,
            )
            created.payload = {**created.payload, "effective_on": on.isoformat()}
        else:
            successor = change_plan(db.session, service, target, actor=_actor(), on=on,
                                    reason="Changed by the customer in selfcare")
    except DomainError as exc:
        db.session.rollback()
        service = owned_or_404(CustomerService, service_id)
        form_again = PlanChangeForm()
        ctx = _plan_context(service, form_again)
        _check_plan_form(form_again, ctx)
        _field_error(form_again, _PlanError(exc))
        return _plan_page(service, form_again, status=422, ctx=ctx)
    db.session.commit()
    if not ctx["direct"]:
        flash(_("Your request to change the plan has been sent. We will answer here and by e-mail."), "success")
        return redirect(url_for("selfcare.request_detail", request_id=created.id))
    flash(_("Your plan changes to %(name)s on %(date)s.", name=target.customer_name, date=format_date(on)), "success")
    # A scheduled change is shown on the service that changes; a change today is the successor.
    shown = service if service.state != ServiceState.CANCELLED else successor
    return redirect(url_for("selfcare.service_detail", service_id=shown.id))


class _PlanError(DomainError):
    """A rule's refusal mapped onto the plan form's fields (lifecycle says `target`/`on`)."""

    def __init__(self, exc: DomainError):
        field = {"target": "target_id", "target_definition_id": "target_id", "service_id": None}.get(
            exc.field, exc.field)
        super().__init__(str(exc), field=field)


# ---------------------------------------------------------------------------------- agreements

@bp.get("/agreements")
@customer_required
def agreements():
    # Drafts are staff's work in progress; the customer sees agreements once issued.
    rows = db.session.scalars(
        select(Agreement)
        .options(joinedload(Agreement.type), joinedload(Agreement.parent))
        .where(Agreement.customer_id == _cid(), Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.conclusion_date.desc(), Agreement.id.desc())
    ).all()
    return render("selfcare/agreements.html", agreements=rows)


@bp.get("/agreements/<int:agreement_id>")
@customer_required
def agreement_detail(agreement_id: int):
    agreement = owned_or_404(Agreement, agreement_id)
    if agreement.state == AgreementState.DRAFT:
        abort(404)
    services = db.session.scalars(
        select(CustomerService)
        .options(joinedload(CustomerService.definition))
        .join(agreement_services, agreement_services.c.customer_service_id == CustomerService.id)
        .where(agreement_services.c.agreement_id == agreement.id, CustomerService.customer_id == _cid())
        .order_by(CustomerService.id)
    ).all()
    annexes = db.session.scalars(
        select(Agreement)
        .options(joinedload(Agreement.type))
        .where(Agreement.parent_id == agreement.id, Agreement.customer_id == _cid(),
               Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.id)
    ).all()
    return render("selfcare/agreement_detail.html", agreement=agreement, services=services, annexes=annexes,
                  acceptances=agreement.acceptances, deadline=acceptance_deadline(agreement),
                  block_on=blocking_date(agreement), today=date.today())


# ---------------------------------------------------------------------------------- invoices

def _invoice_years(customer_id: int) -> list[int]:
    return list(db.session.scalars(_invoice_list_statements()["years"], {"customer_id": customer_id}))


@cache
def _invoice_list_statements() -> dict:
    """The invoice list's statements, built once with bound parameters (building them and
    their cache keys cost about a millisecond a page)."""
    customer_id = bindparam("customer_id")
    unpaid = open_invoices_query(customer_id).order_by(None).order_by(Invoice.due_date.desc(), Invoice.id.desc())
    every = select(Invoice).where(Invoice.customer_id == customer_id).order_by(Invoice.issue_date.desc(), Invoice.id.desc())
    year = bindparam("year")
    return {
        "years": select(Invoice.year).where(Invoice.customer_id == customer_id).distinct().order_by(Invoice.year.desc()),
        (True, False): unpaid, (True, True): unpaid.where(Invoice.year == year),
        (False, False): every, (False, True): every.where(Invoice.year == year),
    }


@bp.get("/invoices")
@customer_required
def invoices():
    years = _invoice_years(_cid())
    form = InvoiceFilterForm(formdata=request.args)
    form.year.choices = choices([("", _("All years"))] + [(y, str(y)) for y in years])
    year = form.year.data if form.year.data in years else None
    unpaid = bool(form.unpaid.data)
    stmt = _invoice_list_statements()[unpaid, year is not None]
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE,
                    params={"customer_id": _cid(), "year": year} if year is not None else {"customer_id": _cid()})
    params = {"year": year, "unpaid": "y" if unpaid else None}
    return render("selfcare/invoices.html", block="invoice_table", page=page, form=form, params=params,
                  today=date.today())


def _payment_qr(invoice: Invoice) -> dict | None:
    """What to scan to pay what is left on `invoice` (its amount due already counts credit
    notes and payments): the same QR the printed invoice carries, for the amount due now."""
    supplier = invoice_supplier(invoice)
    found = payment_qr(
        currency=invoice.currency.value, iban=supplier.get("iban"), amount=invoice.amount_due,
        variable_symbol=invoice.variable_symbol, constant_symbol=invoice.constant_symbol,
        due_date=invoice.due_date, message=f"Invoice {invoice.number}", payee_name=supplier.get("name") or "",
        bic=supplier.get("bic"),
    )
    if invoice.type == InvoiceType.CREDIT_NOTE or found is None:
        return None
    payload, svg = found
    return {"payload": payload, "svg": svg, "label": "QR Platba" if invoice.currency.value == "CZK" else "EPC QR (SEPA)"}


@bp.get("/invoices/<int:invoice_id>/pdf")
@customer_required
def invoice_pdf(invoice_id: int):
    invoice = owned_or_404(Invoice, invoice_id)
    doc = document_for(db.session, kind_for(invoice), invoice)
    # The first download renders and stores the file (and points the invoice at it).
    db.session.commit()
    return send_document(doc)


@cache
def _invoice_detail_statements():
    """The invoice page's statements, built once with bound parameters (building them and
    their cache keys cost ~0.3 ms a page)."""
    invoice_id = bindparam("invoice_id")
    return (
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position, InvoiceLine.id),
        select(InvoiceVat).where(InvoiceVat.invoice_id == invoice_id).order_by(InvoiceVat.vat_rate),
        select(PaymentAllocation)
        .options(joinedload(PaymentAllocation.payment))
        .where(PaymentAllocation.invoice_id == invoice_id)
        .order_by(PaymentAllocation.at, PaymentAllocation.id),
        select(Invoice).where(Invoice.id == invoice_id, Invoice.customer_id == bindparam("customer_id")),
    )


@bp.get("/invoices/<int:invoice_id>")
@customer_required
def invoice_detail(invoice_id: int):
    invoice = owned_or_404(Invoice, invoice_id)
    lines_stmt, vat_stmt, allocations_stmt, corrects_stmt = _invoice_detail_statements()
    params = {"invoice_id": invoice.id}
    lines = db.session.scalars(lines_stmt, params).all()
    vat = db.session.scalars(vat_stmt, params).all()
    allocations = db.session.scalars(allocations_stmt, params).all()
    corrects = None
    if invoice.corrects_id is not None:
        corrects = db.session.scalar(corrects_stmt, {"invoice_id": invoice.corrects_id, "customer_id": _cid()})
    return render("selfcare/invoice_detail.html", invoice=invoice, lines=lines, vat=vat, allocations=allocations,
                  corrects=corrects, supplier=invoice_supplier(invoice), today=date.today(), qr=_payment_qr(invoice))


# ---------------------------------------------------------------------------------- statement

@bp.get("/statement")
@customer_required
def statement():
    """The account statement for a period (default: this year so far), as a page or, with
    ?format=pdf, as a PDF rendered on demand (a snapshot of the ledger, not stored)."""
    today = date.today()
    if "start" in request.args or "end" in request.args:
        form = StatementForm(formdata=request.args)
        valid = form.validate()
    else:
        form = StatementForm(formdata=None, start=date(today.year, 1, 1), end=today)
        valid = True
    if not valid:
        return render("selfcare/statement.html", status=422, form=form, statement=None)
    result = customer_statement(db.session, _cid(), form.start.data, form.end.data)
    if request.args.get("format") == "pdf":
        customer = current_user.customer
        return send_pdf(render_statement(customer, result), statement_file_name(customer, result))
    return render("selfcare/statement.html", form=form, statement=result,
                  describe=lambda entry: describe_entry(entry, _))


# ---------------------------------------------------------------------------------- payments

@bp.get("/payments")
@customer_required
def payments():
    stmt = (
        select(Payment)
        .options(selectinload(Payment.allocations).joinedload(PaymentAllocation.invoice))
        .where(Payment.customer_id == _cid())
        .order_by(Payment.received_on.desc(), Payment.id.desc())
    )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/payments.html", block="payment_table", page=page)


# ---------------------------------------------------------------------------------- requests

def _request_form_choices(form: NewRequestForm) -> None:
    """The services, and as new plans only the allowed plan-change targets of the chosen
    service (of the only one when the customer has one): htmx refreshes the list when the
    service changes; without JavaScript a plan of another service is refused next to the field."""
    services = requests_rules.customer_services_for_requests(db.session, _cid())
    form.service_id.choices = choices([("", "—")] + [
        (s.id, s.definition.customer_name + (f" — {s.installation_address}" if s.installation_address else ""))
        for s in services
    ])
    chosen = next((s for s in services if s.id == form.service_id.data), None)
    if chosen is None and len(services) == 1:
        chosen = services[0]
    targets = requests_rules.plan_targets(chosen) if chosen is not None else []
    form.target_definition_id.choices = choices([("", "—")] + [(d.id, d.customer_name) for d in targets])


def _requests_page(form: NewRequestForm, status: int = 200, block: str | None = None):
    page = paginate(requests_rules.requests_query(_cid()), page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/requests.html", block=block or ("request_form" if status != 200 else None), status=status,
                  page=page, form=form)


@bp.get("/requests")
@customer_required
def requests():
    # ?service_id=… (htmx on choosing the service, or a plain link) fills the form in,
    # so its plan list is that service's; only the form block goes back to htmx.
    form = NewRequestForm(formdata=request.args if "service_id" in request.args else None)
    _request_form_choices(form)
    return _requests_page(form, block="request_form" if "service_id" in request.args else None)


@bp.post("/requests")
@customer_writes
def request_create():
    form = NewRequestForm()
    _request_form_choices(form)
    if form.validate():
        # Another customer's service id is a 404, like any other foreign id.
        service = owned_or_404(CustomerService, form.service_id.data) if form.service_id.data is not None else None
        try:
            created = requests_rules.create_request(
                db.session, current_user.customer, _actor(), kind=form.kind.data, subject=form.subject.data,
                message=form.message.data, service=service, target_definition_id=form.target_definition_id.data,
                new_address={"street": form.new_street.data, "city": form.new_city.data,
                             "postal_code": form.new_postal_code.data},
            )
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Your request has been sent. We will answer here and by e-mail."), "success")
            return redirect(url_for("selfcare.request_detail", request_id=created.id))
    return _requests_page(form, status=422)


def _request_page(customer_request: CustomerRequest, form: CommentForm, status: int = 200):
    comments = requests_rules.visible_comments(db.session, customer_request)
    service = customer_request.customer_service
    return render("selfcare/request_detail.html", block="comment_form" if status != 200 else None, status=status,
                  req=customer_request, comments=comments, form=form, service=service)


@bp.get("/requests/<int:request_id>")
@customer_required
def request_detail(request_id: int):
    return _request_page(owned_or_404(CustomerRequest, request_id), CommentForm(formdata=None))


@bp.post("/requests/<int:request_id>/comments")
@customer_writes
def request_comment(request_id: int):
    customer_request = owned_or_404(CustomerRequest, request_id)
    form = CommentForm()
    if form.validate():
        try:
            requests_rules.add_customer_comment(db.session, customer_request, current_user.customer,
                                                form.body.data, _actor())
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Your reply has been sent."), "success")
            return redirect(url_for("selfcare.request_detail", request_id=customer_request.id))
    return _request_page(customer_request, form, status=422)


# ---------------------------------------------------------------------------------- cancellation
# Two ways in: logged in (the customer's own services at once), or logged out through a link
# e-mailed to an address we know for the customer. Both lead to the same step 2: choose the
# service and the end date → review → confirm.

def _service_label(service: CustomerService) -> str:
    return service.definition.customer_name + (f" — {service.installation_address}" if service.installation_address else "")


@bp.route("/cancel", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["CANCEL_LIMIT_PER_IP"], methods=["POST"])
def cancel():
    if current_user.is_authenticated and current_user.is_customer:
        return redirect(url_for("selfcare.cancel_choose"))
    form = CancelIdentifyForm()
    if form.validate_on_submit():
        customer = cancellation_rules.identify(db.session, form.customer_number.data, form.email.data)
        if customer is not None:
            token = cancellation_rules.make_link_token(current_app.config["SECRET_KEY"], customer, form.email.data)
            link = url_for("selfcare.cancel_link", token=token, _external=True)
            cancellation_rules.send_link(db.session, customer, form.email.data, link)
            db.session.commit()
        # The same answer either way: the form must not tell who is a customer.
        flash(_("If the details match, we sent a link to that address. It works for 24 hours."), "success")
        return redirect(url_for("selfcare.cancel", sent=1))
    status = 422 if request.method == "POST" else 200
    return render("selfcare/cancel_identify.html", status=status, form=form)


@bp.route("/cancel/services", methods=["GET", "POST"])
@customer_required
def cancel_choose():
    if request.method == "POST" and current_user.impersonator_id:
        abort(403)
    return _cancel_flow(current_user.customer, current_user.email, _actor(), url_for("selfcare.cancel_choose"),
                        logged_in=True)


@bp.route("/cancel/link/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["CANCEL_LIMIT_PER_IP"], methods=["POST"])
def cancel_link(token: str):
    found = cancellation_rules.read_link_token(db.session, current_app.config["SECRET_KEY"], token)
    if found is None:
        return render("selfcare/cancel_invalid.html", status=410)
    customer, email = found
    actor = Actor(ActorType.CUSTOMER, customer.id, email, request.remote_addr, g.get("request_id"))
    return _cancel_flow(customer, email, actor, url_for("selfcare.cancel_link", token=token), logged_in=False)


@bp.get("/cancel/done")
def cancel_done():
    return render("selfcare/cancel_done.html")


def _own_service_or_404(customer_id: int, service_id: int | None) -> CustomerService | None:
    if service_id is None:
        return None
    service = db.session.scalar(
        select(CustomerService).where(CustomerService.id == service_id, CustomerService.customer_id == customer_id)
    )
    if service is None:
        abort(404)
    return service


def _cancel_flow(customer, email: str | None, actor: Actor, action: str, *, logged_in: bool):
    today = date.today()
    services = cancellation_rules.cancellable_services(db.session, customer.id)
    terms = [{"service": s, "earliest": cancellation_rules.earliest_end(s, today)} for s in services]
    if request.method == "POST":
        form = CancelForm()
    else:
        wanted = _int_or_none(request.args.get("service_id"))
        _own_service_or_404(customer.id, wanted)
        chosen = next((s for s in services if s.id == wanted), services[0] if services else None)
        # The end date starts at the earliest possible one for the service shown first.
        form = CancelForm(formdata=None, service_id=chosen.id if chosen else None,
                          end_date=cancellation_rules.earliest_end(chosen, today) if chosen else None)
    form.service_id.choices = choices([(s.id, _service_label(s)) for s in services])
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate():
            # Another customer's service id is a 404, like any other foreign id.
            own = _own_service_or_404(customer.id, form.service_id.data)
            service = next((s for s in services if own is not None and s.id == own.id), None)
            if own is None:  # blank or not a number
                form.service_id.errors = [*form.service_id.errors, _("Choose the service to cancel.")]
            elif service is None:
                form.service_id.errors = [*form.service_id.errors,
                                          _("This service is already cancelled or its end is already scheduled.")]
            else:
                earliest = cancellation_rules.earliest_end(service, today)
                end_date = form.end_date.data or earliest
                if end_date < earliest:
                    form.end_date.errors = [*form.end_date.errors, _("The earliest possible end date is %(date)s.",
                                                                     date=format_date(earliest))]
                elif form.confirm.data != "yes":
                    return render("selfcare/cancel_confirm.html", service=service, end_date=end_date,
                                  earliest=earliest, action=action, form=form, logged_in=logged_in)
                else:
                    try:
                        done = cancellation_rules.cancel_by_customer(db.session, service, end_date=end_date,
                                                                     actor=actor, email=email, today=today)
                    except DomainError as exc:
                        db.session.rollback()
                        _field_error(form, exc)
                    else:
                        db.session.commit()
                        flash(_("%(service)s is cancelled with the end date %(date)s. We sent the confirmation to %(email)s.",
                                service=service.definition.customer_name, date=format_date(done.end_date),
                                email=email or "—"), "success")
                        if logged_in:
                            return redirect(url_for("selfcare.service_detail", service_id=service.id))
                        return redirect(url_for("selfcare.cancel_done"))
    return render("selfcare/cancel_choose.html", status=status, form=form, terms=terms, action=action,
                  customer=customer, logged_in=logged_in, today=today)


# ---------------------------------------------------------------------------------- profile

PROFILE_FORMS = {
    "contact": ContactForm,
    "address": AddressForm,
    "language": LanguageForm,
    "notifications": NotificationsForm,
    "password": PasswordForm,
}


def _profile_page(status: int = 200, failed: str | None = None, **bound):
    """The profile page with every form; `bound` carries the one that was sent (with its
    errors), the others show the current values. An HTMX request gets the failed section."""
    customer = current_user.customer
    defaults = {
        "contact": lambda: ContactForm(formdata=None),
        "address": lambda: AddressForm(formdata=None, obj=customer),
        "language": lambda: LanguageForm(formdata=None, language=(current_user.language or customer.language).value),
        "notifications": lambda: NotificationsForm(formdata=None, notify_email=current_user.notify_email),
        "password": lambda: PasswordForm(formdata=None),
    }
    forms = {name: bound.get(name) or make() for name, make in defaults.items()}
    contacts = db.session.scalars(
        select(Contact).where(Contact.customer_id == customer.id).order_by(Contact.kind, Contact.id)
    ).all()
    block = f"{failed}_section" if failed else None
    return render("selfcare/profile.html", block=block, status=status, customer=customer, contacts=contacts,
                  remove_form=RemoveContactForm(formdata=None), **{f"{k}_form": v for k, v in forms.items()})


def _profile_done(message: str):
    flash(message, "success")
    if is_htmx():
        # htmx would follow a 302 inside the XHR; HX-Redirect makes the browser load the page.
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url_for("selfcare.profile")
        return response
    return redirect(url_for("selfcare.profile"))


@bp.get("/profile")
@customer_required
def profile():
    return _profile_page()


def _profile_change(name: str, apply, success: str):
    """Validate the form `name`, apply the rule, commit and redirect; or 422 with errors."""
    form = PROFILE_FORMS[name]()
    if form.validate():
        try:
            apply(form)
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            return _profile_done(success)
    return _profile_page(status=422, failed=name, **{name: form})


@bp.post("/profile/contacts")
@customer_writes
def profile_contact_add():
    return _profile_change(
        "contact",
        lambda f: profile_rules.add_contact(db.session, current_user.customer, f.kind.data, f.value.data,
                                            f.purpose.data, _actor()),
        _("The contact has been added."),
    )


@bp.post("/profile/contacts/<int:contact_id>/remove")
@customer_writes
def profile_contact_remove(contact_id: int):
    contact = owned_or_404(Contact, contact_id)
    form = RemoveContactForm()
    if not form.validate():
        abort(400)
    try:
        profile_rules.remove_contact(db.session, current_user.customer, contact, _actor())
    except DomainError as exc:
        db.session.rollback()
        contact_form = ContactForm(formdata=None)
        contact_form.form_errors.append(str(exc))
        return _profile_page(status=422, failed="contact", contact=contact_form)
    db.session.commit()
    return _profile_done(_("The contact has been removed."))


@bp.post("/profile/address")
@customer_writes
def profile_address():
    return _profile_change(
        "address",
        lambda f: profile_rules.update_billing_address(
            db.session, current_user.customer, street=f.street.data, city=f.city.data,
            postal_code=f.postal_code.data, country=f.country.data, actor=_actor()),
        _("Your billing address has been saved. Invoices already issued keep the address they were issued with."),
    )


@bp.post("/profile/language")
@customer_writes
def profile_language():
    return _profile_change(
        "language",
        lambda f: profile_rules.set_language(db.session, current_user, f.language.data, _actor()),
        _("Your language has been saved."),
    )


@bp.post("/profile/notifications")
@customer_writes
def profile_notifications():
    return _profile_change(
        "notifications",
        lambda f: profile_rules.set_notifications(db.session, current_user, f.notify_email.data, _actor()),
        _("Your notification preference has been saved."),
    )


@bp.post("/profile/password")
@customer_writes
def profile_password():
    login = current_user._get_current_object()

    def apply(f):
        profile_rules.change_password(db.session, login, f.current_password.data, f.new_password.data, _actor())
        # Every session ended, this one too: carry on in a fresh one (a new cookie).
        start_session(login)

    return _profile_change("password", apply, _("Your password has been changed. Other devices have been logged out."))


# ---------------------------------------------------------------------------------- security

def _issuer() -> str:
    return current_app.config.get("SITE_NAME") or current_app.config.get("SUPPLIER_NAME") or "Portal"


def _security_page(status: int = 200, failed: str | None = None, **bound):
    login = current_user
    secret = security_rules.pending_secret(login)
    qr = None
    if secret:
        uri = security_rules.enrolment_uri(login, secret, _issuer())
        qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    this_session = current_auth_session()
    forms = {
        "confirm": bound.get("confirm") or TotpConfirmForm(formdata=None),
        "disable": bound.get("disable") or ProofForm(formdata=None, prefix="disable"),
        "codes": bound.get("codes") or ProofForm(formdata=None, prefix="codes"),
    }
    return render(
        "selfcare/security.html", block=f"{failed}_section" if failed else None, status=status,
        login=login, enabled=security_rules.totp_enabled(login), secret=secret, qr=qr,
        recovery_left=len(login.recovery_code_hashes or []),
        logins=security_rules.recent_logins(db.session, login), describe_browser=security_rules.describe_browser,
        sessions=active_sessions(login), this_session_id=this_session.id if this_session else None,
        empty_form=EmptyForm(formdata=None), confirm_form=forms["confirm"], disable_form=forms["disable"],
        codes_form=forms["codes"],
    )


@bp.get("/security")
@customer_required
def security():
    return _security_page()


@bp.post("/security/totp")
@customer_writes
def security_totp_start():
    if not EmptyForm().validate():
        abort(400)
    try:
        security_rules.start_totp_enrolment(db.session, current_user, _actor())
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("selfcare.security"))
    db.session.commit()
    return redirect(url_for("selfcare.security", _anchor="totp"))


def _show_codes(codes: list[str], message: str):
    # Shown once, in this response: only their hashes are stored.
    return render("selfcare/recovery_codes.html", codes=codes, message=message)


@bp.post("/security/totp/confirm")
@customer_writes
def security_totp_confirm():
    form = TotpConfirmForm()
    if form.validate():
        try:
            codes = security_rules.confirm_totp(db.session, current_user, form.code.data, _actor())
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            return _show_codes(codes, _("Two-factor authentication is on. From now on, logging in asks for a code from your app."))
    return _security_page(status=422, failed="confirm", confirm=form)


@bp.post("/security/totp/disable")
@customer_writes
def security_totp_disable():
    form = ProofForm(prefix="disable")
    if form.validate():
        try:
            security_rules.disable_totp(db.session, current_user, form.proof.data, _actor())
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Two-factor authentication is off."), "success")
            return redirect(url_for("selfcare.security"))
    return _security_page(status=422, failed="disable", disable=form)


@bp.post("/security/recovery-codes")
@customer_writes
def security_recovery_codes():
    form = ProofForm(prefix="codes")
    if form.validate():
        try:
            codes = security_rules.regenerate_recovery_codes(db.session, current_user, form.proof.data, _actor())
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc)
        else:
            db.session.commit()
            return _show_codes(codes, _("New recovery codes. The old ones no longer work."))
    return _security_page(status=422, failed="codes", codes=form)


@bp.post("/security/sessions/logout-others")
@customer_writes
def security_logout_others():
    if not EmptyForm().validate():
        abort(400)
    count = security_rules.log_out_other_sessions(db.session, current_user, current_auth_session(), _actor())
    db.session.commit()
    flash(_("Logged out of %(n)d other sessions.", n=count), "success")
    return redirect(url_for("selfcare.security"))
