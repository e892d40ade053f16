"""Selfcare pages. Every row is looked up through the logged-in customer: lists filter by
`current_user.customer_id`, single rows come from `owned_or_404`. Lists load what their
templates show in a fixed number of queries (selectinload / joinedload), whatever the size."""
from __future__ import annotations

from datetime import date
from functools import wraps

import segno
from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from portal.auth.sessions import active_sessions, current_auth_session, start_session
from portal.domain import DomainError
from portal.domain import customer_requests as requests_rules
from portal.domain import profile as profile_rules
from portal.domain import security as security_rules
from portal.domain.actors import Actor
from portal.domain.overview import customer_overview, open_invoices_query
from portal.extensions import db
from portal.models import (
    Agreement,
    AgreementState,
    Contact,
    CustomerRequest,
    CustomerService,
    Invoice,
    InvoiceLine,
    InvoiceVat,
    Payment,
    PaymentAllocation,
    ServiceEvent,
)
from portal.models.agreements import agreement_services
from portal.selfcare import bp
from portal.selfcare.forms import (
    AddressForm,
    CommentForm,
    ContactForm,
    EmptyForm,
    InvoiceFilterForm,
    LanguageForm,
    NewRequestForm,
    NotificationsForm,
    PasswordForm,
    ProofForm,
    RemoveContactForm,
    TotpConfirmForm,
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


@bp.get("/")
@customer_required
def dashboard():
    overview = customer_overview(db.session, _cid())
    return render("selfcare/dashboard.html", overview=overview, customer=current_user.customer)


# ---------------------------------------------------------------------------------- services

@bp.get("/services")
@customer_required
def services():
    rows = db.session.scalars(
        select(CustomerService)
        .options(joinedload(CustomerService.definition))
        .where(CustomerService.customer_id == _cid())
        .order_by(CustomerService.state == "cancelled", CustomerService.id)
    ).all()
    return render("selfcare/services.html", services=rows, currency=current_user.customer.location.currency.value)


@bp.get("/services/<int:service_id>")
@customer_required
def service_detail(service_id: int):
    service = owned_or_404(CustomerService, service_id)
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
    return render("selfcare/service_detail.html", service=service, history=list(reversed(history)),
                  scheduled=scheduled, agreements=agreements, usage=usage,
                  currency=current_user.customer.location.currency.value)


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
                  acceptances=agreement.acceptances)


# ---------------------------------------------------------------------------------- invoices

def _invoice_years(customer_id: int) -> list[int]:
    return list(db.session.scalars(
        select(Invoice.year).where(Invoice.customer_id == customer_id).distinct().order_by(Invoice.year.desc())
    ))


@bp.get("/invoices")
@customer_required
def invoices():
    years = _invoice_years(_cid())
    form = InvoiceFilterForm(formdata=request.args)
    form.year.choices = choices([("", _("All years"))] + [(y, str(y)) for y in years])
    year = form.year.data if form.year.data in years else None
    unpaid = bool(form.unpaid.data)
    if unpaid:
        stmt = open_invoices_query(_cid()).order_by(None).order_by(Invoice.due_date.desc(), Invoice.id.desc())
    else:
        stmt = select(Invoice).where(Invoice.customer_id == _cid()).order_by(Invoice.issue_date.desc(), Invoice.id.desc())
    if year is not None:
        stmt = stmt.where(Invoice.year == year)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    params = {"year": year, "unpaid": "y" if unpaid else None}
    return render("selfcare/invoices.html", block="invoice_table", page=page, form=form, params=params,
                  today=date.today())


@bp.get("/invoices/<int:invoice_id>")
@customer_required
def invoice_detail(invoice_id: int):
    invoice = owned_or_404(Invoice, invoice_id)
    lines = db.session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position, InvoiceLine.id)
    ).all()
    vat = db.session.scalars(
        select(InvoiceVat).where(InvoiceVat.invoice_id == invoice.id).order_by(InvoiceVat.vat_rate)
    ).all()
    allocations = db.session.scalars(
        select(PaymentAllocation)
        .options(joinedload(PaymentAllocation.payment))
        .where(PaymentAllocation.invoice_id == invoice.id)
        .order_by(PaymentAllocation.at, PaymentAllocation.id)
    ).all()
    corrects = None
    if invoice.corrects_id is not None:
        corrects = db.session.scalar(
            select(Invoice).where(Invoice.id == invoice.corrects_id, Invoice.customer_id == _cid())
        )
    return render("selfcare/invoice_detail.html", invoice=invoice, lines=lines, vat=vat, allocations=allocations,
                  corrects=corrects, supplier=invoice.supplier or {}, today=date.today())


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
    services = requests_rules.customer_services_for_requests(db.session, _cid())
    form.service_id.choices = choices([("", "—")] + [
        (s.id, s.definition.customer_name + (f" — {s.installation_address}" if s.installation_address else ""))
        for s in services
    ])
    seen, targets = set(), []
    for s in services:
        for d in requests_rules.plan_targets(s):
            if d.id not in seen:
                seen.add(d.id)
                targets.append((d.id, d.customer_name))
    form.target_definition_id.choices = choices([("", "—")] + targets)


def _requests_page(form: NewRequestForm, status: int = 200):
    page = paginate(requests_rules.requests_query(_cid()), page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/requests.html", block="request_form" if status != 200 else None, status=status,
                  page=page, form=form)


@bp.get("/requests")
@customer_required
def requests():
    form = NewRequestForm(formdata=None)
    _request_form_choices(form)
    return _requests_page(form)


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
