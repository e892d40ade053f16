"""Selfcare services: the list, a service's page, changing its plan (preview, confirm, or a
request to staff where the plan is not changeable in selfcare), and cancelling a service
(logged in, or logged out through an e-mailed link)."""
from __future__ import annotations

from datetime import date

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.domain import DomainError
from portal.domain import cancellation as cancellation_rules
from portal.domain import customer_requests as requests_rules
from portal.domain import network as network_rules
from portal.domain import profile as profile_rules
from portal.domain.actors import Actor
from portal.domain.agreements import covering_agreement
from portal.domain.lifecycle import (
    next_period_start,
    pending_plan_changes,
    plan_change_preview,
    price_on,
    without_pending_successors,
)
from portal.domain.plan_change import change_plan
from portal.extensions import db, limiter
from portal.models import (
    ActorType,
    Agreement,
    AgreementState,
    CustomerService,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from portal.models.agreements import agreement_services
from portal.selfcare import bp
from portal.selfcare.common import current_customer_id, customer_actor, customer_writes
from portal.selfcare.forms import CancelForm, CancelIdentifyForm, PlanChangeForm, PlanPreviewForm
from portal.web.access import customer_required, owned_or_404
from portal.web.forms import choices, field_error, int_or_none
from portal.web.htmx import render


@bp.get("/services")
@customer_required
def services():
    rows = db.session.scalars(
        select(CustomerService)
        .options(joinedload(CustomerService.definition).selectinload(ServiceDefinition.price_changes))
        .where(CustomerService.customer_id == current_customer_id())
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
        CustomerService.replaced_by_id == service.id, CustomerService.customer_id == current_customer_id()))
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
               Agreement.customer_id == current_customer_id(), Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.conclusion_date, Agreement.id)
    ).all()
    usage = profile_rules.service_usage(db.session, service)
    # The customer's own access credentials (to set up the router), while the service runs.
    access = (network_rules.identity_of(db.session, service)
              if service.state in (ServiceState.ACTIVE, ServiceState.BLOCKED) else None)
    plan_form = PlanPreviewForm(formdata=None)
    plan = _plan_context(service, plan_form)
    plan_form.on.data = plan["default_on"]
    cancellable = service.state != ServiceState.CANCELLED and not any(
        e.kind in (ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED) for e in scheduled)
    plan = {k: v for k, v in plan.items() if k != "service"}
    return render("selfcare/service_detail.html", service=service, price=price_on(service, date.today()),
                  history=list(reversed(history)),
                  scheduled=scheduled, pending_change=pending_change, agreements=agreements, usage=usage, cancellable=cancellable,
                  access=access, access_address=network_rules.address_text(access.ip_address) if access else "",
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
                db.session, current_user.customer, customer_actor(), kind="plan_change",
                subject=_("Change of plan to %(name)s", name=target.customer_name)[:200],
                message=_("Please change %(old)s to %(new)s from %(date)s.", old=service.definition.customer_name,
                          new=target.customer_name, date=on.isoformat()),
                service=service, target_definition_id=target.id,
            )
            created.payload = {**created.payload, "effective_on": on.isoformat()}
        else:
            successor = change_plan(db.session, service, target, actor=customer_actor(), on=on,
                                    reason="Changed by the customer in selfcare")
    except DomainError as exc:
        db.session.rollback()
        service = owned_or_404(CustomerService, service_id)
        form_again = PlanChangeForm()
        ctx = _plan_context(service, form_again)
        _check_plan_form(form_again, ctx)
        field_error(form_again, _PlanError(exc))
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
    return _cancel_flow(current_user.customer, current_user.email, customer_actor(), url_for("selfcare.cancel_choose"),
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
        wanted = int_or_none(request.args.get("service_id"))
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
                        field_error(form, exc)
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

