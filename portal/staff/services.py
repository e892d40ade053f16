"""Staff area: services — the list (filters, CSV), a service's page (state, tariff, price,
dates, pending steps, history, audit), its lifecycle steps (order, activate, block, unblock,
change plan, cancel; a confirmation page before the irreversible ones), and bulk block,
unblock and cancel (preview → dry run → apply, refused if the preview no longer holds)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask import abort, flash, redirect, request, url_for
from flask_babel import _, ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
)

from portal.domain import DomainError, plan_change
from portal.domain import bulk as bulk_rules
from portal.domain import lifecycle as lc
from portal.extensions import db
from portal.models import (
    Agreement,
    AuditEntry,
    Customer,
    CustomerService,
    Location,
    ServiceDefinition,
    ServiceEvent,
    ServiceState,
)
from portal.models.agreements import agreement_services
from portal.staff import bp
from portal.staff.common import csv_response, operator_actor, scoped_customer_or_404, wants_csv
from portal.staff.network_panel import network_panel, network_state_labels, network_state_or_none
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, int_or_none, validated
from portal.web.htmx import is_htmx, render
from portal.web.pagination import page_number, paginate

PER_PAGE = 50

# URL slug → (domain action, label)
ACTIONS = {
    "activate": ("activate", _l("Activate")),
    "block": ("block", _l("Block")),
    "unblock": ("unblock", _l("Unblock")),
    "change-plan": ("change_plan", _l("Change plan")),
    "cancel": ("cancel", _l("Cancel")),
}
SLUG_OF = {action: slug for slug, (action, _label) in ACTIONS.items()}
# Steps that cannot be taken back: the form leads to a confirmation page first.
NEEDS_CONFIRMATION = {"change_plan", "cancel"}


def _state_or_none(value):
    if isinstance(value, ServiceState):
        return value
    try:
        return ServiceState(value)
    except ValueError:
        return None


# -- forms -------------------------------------------------------------------------------------


def _sane_date(form, field) -> None:
    """Effective dates within 20 years either side of today (date arithmetic on year 9999
    would overflow; no real step is dated that far)."""
    if field.data is None:
        return
    today = date.today()
    low, high = date(today.year - 20, 1, 1), date(today.year + 20, 12, 31)
    if not low <= field.data <= high:
        raise StopValidation(_("Choose a date between %(low)s and %(high)s.", low=low.isoformat(),
                               high=high.isoformat()))


MAX_PRICE = Decimal("99999999.99")  # what the price column (12 digits, 4 after the point) holds


def _finite(form, field) -> None:
    if field.data is not None and not field.data.is_finite():
        raise StopValidation(_("Enter a number."))


class ServiceFilterForm(FlaskForm):
    """GET filters of the list (no CSRF: they change nothing). Unknown values mean "any"."""

    class Meta:
        csrf = False

    q = StringField(_l("Customer"), validators=[Optional(), Length(max=100)],
                    description=_l("Customer number, name or variable symbol"))
    state = SelectField(_l("State"), coerce=_state_or_none, validate_choice=False)
    definition = SelectField(_l("Tariff"), coerce=int_or_none, validate_choice=False)
    location = SelectField(_l("Location"), coerce=int_or_none, validate_choice=False)
    network = SelectField(_l("Network"), coerce=network_state_or_none, validate_choice=False)


class ActionForm(FlaskForm):
    """One lifecycle step: a reason, an optional effective date and the step's own options."""

    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Give a reason.")), Length(max=2000)])
    on = DateField(_l("Effective date"), validators=[Optional(), _sane_date],
                   description=_l("Empty: today (cancel: the earliest possible end; plan change: the next period). "
                                  "A future date schedules the step."))
    target = SelectField(_l("New tariff"), coerce=int_or_none, validate_choice=False)
    credit_blocked_days = BooleanField(_l("Credit the blocked days"))
    waive_notice = BooleanField(_l("Waive the notice period and commitment"))
    confirm = HiddenField()


class OrderForm(FlaskForm):
    definition = SelectField(_l("Tariff"), coerce=int_or_none, validate_choice=False,
                             validators=[InputRequired(message=_l("Choose a tariff."))])
    ordered_on = DateField(_l("Order date"), validators=[InputRequired(message=_l("Enter the order date.")),
                                                         _sane_date])
    price_override = DecimalField(_l("Price override"), places=2, validators=[
        Optional(), _finite, NumberRange(min=0, message=_l("A price cannot be negative.")),
        NumberRange(max=MAX_PRICE, message=_l("The price is too large."))],
        description=_l("Empty: the tariff's price."))
    installation_street = StringField(_l("Installation street"), validators=[Optional(), Length(max=200)])
    installation_city = StringField(_l("Installation city"), validators=[Optional(), Length(max=100)])
    installation_postal_code = StringField(_l("Installation postal code"), validators=[Optional(), Length(max=20)])
    variable_symbol = StringField(_l("Variable symbol"), validators=[
        Optional(), Regexp(r"^\d{1,10}$", message=_l("Up to 10 digits."))])
    reason = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])


class BulkForm(FlaskForm):
    """The bulk step as previewed: the service ids and the preview's signature travel along."""

    action = HiddenField()
    on = DateField(_l("Effective date"), validators=[InputRequired(message=_l("Enter the effective date.")),
                                                     _sane_date])
    waive_notice = BooleanField(_l("Waive the notice period and commitment"))
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(message=_l("Give a reason.")), Length(max=2000)])
    signature = HiddenField()
    mode = HiddenField()


def _field_error(form, exc: DomainError) -> None:
    name = {"on": "on", "target": "target", "reason": "reason", "definition": "definition",
            "price_override": "price_override", "ids": None, "action": None}.get(exc.field or "", None)
    target = getattr(form, name, None) if name else None
    if target is not None:
        target.errors = [*target.errors, str(exc)]
    else:
        form.form_errors.append(str(exc))


# -- lookups -----------------------------------------------------------------------------------


def scoped_service_or_404(service_id: int) -> CustomerService:
    stmt = (
        select(CustomerService)
        .join(Customer, Customer.id == CustomerService.customer_id)
        .where(CustomerService.id == service_id)
        .options(selectinload(CustomerService.customer).selectinload(Customer.location),
                 selectinload(CustomerService.definition).selectinload(ServiceDefinition.allowed_targets),
                 selectinload(CustomerService.events))
    )
    service = db.session.scalar(in_operator_locations(stmt, Customer.location_id))
    if service is None:
        abort(404)
    return service


def _filter_from(form: ServiceFilterForm) -> bulk_rules.ServiceFilter:
    form.validate()
    return bulk_rules.ServiceFilter(
        state=form.state.data if isinstance(form.state.data, ServiceState) else None,
        definition_id=form.definition.data,
        location_id=form.location.data,
        network_state=form.network.data,
        text=(form.q.data or "").strip()[:100] if not form.q.errors else "",
    )


def _filter_form() -> ServiceFilterForm:
    form = ServiceFilterForm(request.args)
    form.state.choices = choices([(None, _("Any state"))] + [(s.value, _state_label(s)) for s in ServiceState])
    definitions = db.session.execute(
        select(ServiceDefinition.id, ServiceDefinition.name).order_by(ServiceDefinition.name)
    ).all()
    form.definition.choices = choices([(None, _("Any tariff"))] + [(d.id, d.name) for d in definitions])
    locations = db.session.execute(
        in_operator_locations(select(Location.id, Location.name).order_by(Location.name), Location.id)
    ).all()
    form.location.choices = choices([(None, _("Any location"))] + [(loc.id, loc.name) for loc in locations])
    form.network.choices = choices([(None, _("Any network state"))] + list(network_state_labels().items()))
    return form


def _state_label(state: ServiceState) -> str:
    return {ServiceState.ORDERED: _("Ordered"), ServiceState.ACTIVE: _("Active"),
            ServiceState.BLOCKED: _("Blocked"), ServiceState.CANCELLED: _("Cancelled")}[state]


def _filter_args(flt: bulk_rules.ServiceFilter) -> dict:
    return {k: v for k, v in {"q": flt.text, "state": flt.state.value if flt.state else None,
                              "definition": flt.definition_id, "location": flt.location_id,
                              "network": flt.network_state.value if flt.network_state else None}.items() if v}


# -- list --------------------------------------------------------------------------------------


@bp.get("/services")
@requires("customers.read")
def services():
    form = _filter_form()
    flt = _filter_from(form)
    stmt = bulk_rules.filtered_services(flt, current_user.location_ids)
    today = date.today()
    if wants_csv():
        return csv_response(
            "services.csv",
            ["id", "customer_number", "customer", "location", "tariff", "state", "price", "ordered_on",
             "activated_on", "billing_from", "billing_to", "commitment_until", "cancelled_on"],
            ([s.id, s.customer.customer_number, s.customer.display_name, s.customer.location.name,
              s.definition.name, s.state, lc.price_on(s, today), s.ordered_on, s.activated_on, s.billing_from,
              s.billing_to, s.commitment_until, s.cancelled_on]
             for s in db.session.scalars(stmt.options(selectinload(CustomerService.definition)
                                                      .selectinload(ServiceDefinition.price_changes)))),
        )
    page = paginate(stmt.options(selectinload(CustomerService.definition).selectinload(ServiceDefinition.price_changes)),
                    page_number(request.args.get("page")), PER_PAGE)
    can_bulk = current_user.has_right("services.lifecycle")
    return render("staff/services/list.html", block="results", form=form, page=page, today=today,
                  filter_args=_filter_args(flt), can_bulk=can_bulk, price_on=lc.price_on)


# -- detail ------------------------------------------------------------------------------------


def _detail_context(service: CustomerService) -> dict:
    today = date.today()
    pending = sorted(lc.pending_events(service), key=lambda e: (e.scheduled_for, e.id))
    history = sorted((e for e in service.events if e not in pending), key=lambda e: (e.effective_on, e.id),
                     reverse=True)
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "customer_service", AuditEntry.entity_id == service.id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(200)
    ).all()
    agreements = db.session.scalars(
        select(Agreement).join(agreement_services, agreement_services.c.agreement_id == Agreement.id)
        .where(agreement_services.c.customer_service_id == service.id)
        .options(selectinload(Agreement.type)).order_by(Agreement.id)
    ).all()
    related = {}
    predecessor = db.session.scalar(select(CustomerService).where(CustomerService.replaced_by_id == service.id))
    if predecessor is not None:
        related["predecessor"] = predecessor
    if service.replaced_by_id:
        related["successor"] = db.session.get(CustomerService, service.replaced_by_id)
    can_act = current_user.has_right("services.lifecycle")
    return {
        "service": service,
        "customer": service.customer,
        "currency": service.customer.location.currency.value,
        "price": lc.price_on(service, today),
        "pending": pending,
        "history": history,
        "audit": audit,
        "agreements": agreements,
        "related": related,
        "actions": [(SLUG_OF[a], ACTIONS[SLUG_OF[a]][1]) for a in lc.allowed_actions(service)] if can_act else [],
        "earliest_end": lc.earliest_end_date(service, today) if service.state != ServiceState.CANCELLED else None,
        "today": today,
        "network": network_panel(service, can_act),
    }


@bp.get("/services/<int:service_id>")
@requires("customers.read")
def service_detail(service_id: int):
    service = scoped_service_or_404(service_id)
    return render("staff/services/detail.html", block="panel", **_detail_context(service))


# -- one lifecycle step ------------------------------------------------------------------------


def _action_form(service: CustomerService, action: str, formdata=None) -> ActionForm:
    form = ActionForm(formdata=formdata) if formdata is not None else ActionForm()
    if action == "change_plan":
        targets = sorted(service.definition.allowed_targets, key=lambda d: d.name)
        form.target.choices = choices([(None, _("Choose a tariff"))] + [(t.id, t.name) for t in targets])
    else:
        form.target.choices = choices([(None, "—")])
    return form


def _action_page(service, action, form, *, status=200, confirm=None):
    ctx = {"service": service, "action": action, "slug": SLUG_OF[action], "label": ACTIONS[SLUG_OF[action]][1],
           "form": form, "confirm": confirm, "today": date.today(),
           "currency": service.customer.location.currency.value,
           # Inside the service page (HTMX) the form refreshes its panel; opened on its own
           # (a new tab, a bookmark, no JavaScript) it is a plain form that posts and redirects.
           "in_panel": is_htmx()}
    if action == "cancel" and service.state != ServiceState.CANCELLED:
        ctx["earliest_end"] = lc.earliest_end_date(service, date.today())
    body, code = render("staff/services/action.html", block="action_form", status=status, **ctx)
    if is_htmx():
        # Errors and the confirmation replace the form in place; success refreshes the panel.
        return body, code, {"HX-Retarget": "#service-actions", "HX-Reswap": "innerHTML"}
    return body, code


def _check_action(service: CustomerService, slug: str) -> str:
    if slug not in ACTIONS:
        abort(404)
    return ACTIONS[slug][0]


@bp.get("/services/<int:service_id>/<slug>")
@requires("services.lifecycle")
def service_action(service_id: int, slug: str):
    service = scoped_service_or_404(service_id)
    action = _check_action(service, slug)
    form = _action_form(service, action)
    if action not in lc.allowed_actions(service):
        form.form_errors.append(_("A service in state “%(state)s” cannot take this step.",
                                  state=_state_label(service.state)))
        return _action_page(service, action, form, status=422)
    return _action_page(service, action, form)


def _target(service: CustomerService, form: ActionForm) -> ServiceDefinition | None:
    allowed = {t.id: t for t in service.definition.allowed_targets}
    target = allowed.get(form.target.data)
    if target is None:
        form.target.errors = [*form.target.errors, _("Choose one of the tariffs this service may change to.")]
    return target


def _confirmation(service: CustomerService, action: str, form: ActionForm, target) -> dict:
    if action == "cancel":
        return {"on": lc.check_cancel(service, on=form.on.data, waive_notice=form.waive_notice.data)}
    on = lc.check_change_plan(service, target, on=form.on.data)
    return {"on": on, "target": target, "preview": lc.plan_change_preview(service, target, on)}


def _apply(service: CustomerService, action: str, form: ActionForm, target):
    actor, on, reason, today = operator_actor(), form.on.data, form.reason.data, date.today()
    if action == "activate":
        return lc.activate(db.session, service, actor=actor, on=on or today, reason=reason)
    if action == "block":
        return lc.block(db.session, service, actor=actor, on=on or today, reason=reason)
    if action == "unblock":
        return lc.unblock(db.session, service, actor=actor, on=on or today, reason=reason,
                          credit_blocked_days=form.credit_blocked_days.data)
    if action == "cancel":
        return lc.cancel(db.session, service, actor=actor, on=on, reason=reason, waive_notice=form.waive_notice.data)
    return plan_change.change_plan(db.session, service, target, actor=actor, on=on, reason=reason)


@bp.post("/services/<int:service_id>/<slug>")
@requires("services.lifecycle")
def service_action_post(service_id: int, slug: str):
    service = scoped_service_or_404(service_id)
    action = _check_action(service, slug)
    form = _action_form(service, action, request.form)
    valid = form.validate()
    target = _target(service, form) if action == "change_plan" else None
    if not valid or (action == "change_plan" and target is None):
        return _action_page(service, action, form, status=422)
    if action not in lc.allowed_actions(service):
        form.form_errors.append(_("A service in state “%(state)s” cannot take this step.",
                                  state=_state_label(service.state)))
        return _action_page(service, action, form, status=422)
    if action in NEEDS_CONFIRMATION and form.confirm.data != "yes":
        try:
            confirm = _confirmation(service, action, form, target)
        except DomainError as exc:
            _field_error(form, exc)
            return _action_page(service, action, form, status=422)
        return _action_page(service, action, form, confirm=confirm)
    try:
        result = _apply(service, action, form, target)
    except DomainError as exc:
        db.session.rollback()
        service = scoped_service_or_404(service_id)
        form = _action_form(service, action, request.form)
        form.validate()
        form.confirm.data = ""
        _field_error(form, exc)
        return _action_page(service, action, form, status=422)
    db.session.commit()
    if action == "change_plan":
        message = _("The plan change to %(name)s is recorded.", name=result.definition.name)
    elif isinstance(result, ServiceEvent) and result.done_at is None:
        message = _("The step is scheduled for %(date)s.", date=result.scheduled_for.isoformat())
    else:
        message = _("Done: the service is %(state)s.", state=_state_label(service.state))
    if is_htmx():
        shown = scoped_service_or_404(service_id)
        return render("staff/services/detail.html", block="panel", message=message, **_detail_context(shown))
    flash(message, "success")
    return redirect(url_for("staff.service_detail", service_id=service_id))


# -- order -------------------------------------------------------------------------------------


def _order_form(formdata=None) -> OrderForm:
    form = OrderForm(formdata=formdata) if formdata is not None else OrderForm()
    today = date.today()
    definitions = db.session.scalars(
        select(ServiceDefinition).where(ServiceDefinition.active.is_(True), ServiceDefinition.valid_from <= today,
                                        (ServiceDefinition.valid_to.is_(None)) | (ServiceDefinition.valid_to >= today))
        .order_by(ServiceDefinition.name)
    ).all()
    form.definition.choices = choices([(None, _("Choose a tariff"))] + [(d.id, f"{d.name} ({d.code})")
                                                                          for d in definitions])
    return form


@bp.route("/customers/<int:customer_id>/services/new", methods=["GET", "POST"])
@requires("services.lifecycle")
def service_order(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    if request.method == "GET":
        form = _order_form()
        form.ordered_on.data = date.today()
        return render("staff/services/order.html", customer=customer, form=form)
    form = _order_form(request.form)
    if not form.validate():
        return render("staff/services/order.html", status=422, customer=customer, form=form)
    definition = db.session.get(ServiceDefinition, form.definition.data) if form.definition.data else None
    if definition is None:
        form.definition.errors = [*form.definition.errors, _("Choose a tariff.")]
        return render("staff/services/order.html", status=422, customer=customer, form=form)
    def refused(exc):
        form = validated(_order_form(request.form))
        _field_error(form, exc)
        return render("staff/services/order.html", status=422, customer=scoped_customer_or_404(customer_id), form=form)

    return carry_out(
        lambda: lc.order_service(
            db.session, customer, definition, actor=operator_actor(), ordered_on=form.ordered_on.data,
            price_override=form.price_override.data, installation_street=form.installation_street.data or "",
            installation_city=form.installation_city.data or "",
            installation_postal_code=form.installation_postal_code.data or "",
            variable_symbol=form.variable_symbol.data or None, reason=form.reason.data or "",
        ),
        refused=refused,
        done=lambda service: saved(_("The service is ordered."),
                                   url_for("staff.service_detail", service_id=service.id)))


# -- bulk --------------------------------------------------------------------------------------


def _bulk_ids() -> list[int]:
    source = request.form if request.method == "POST" else request.args
    ids = []
    for raw in source.getlist("ids"):
        try:
            ids.append(int(raw))
        except ValueError:
            continue
    return ids


def _bulk_selection(form: BulkForm | None = None):
    """The chosen services: ticked ids, or everything the list filter shows (select=filter)."""
    if request.method == "GET" and request.args.get("select") == "filter":
        flt = _filter_from(_filter_form())
        return bulk_rules.services_by_filter(db.session, flt, current_user.location_ids)
    return bulk_rules.services_by_ids(db.session, _bulk_ids(), current_user.location_ids)


def _bulk_page(form: BulkForm, preview=None, *, status=200, result=None, error=None):
    return render("staff/services/bulk.html", status=status, form=form, preview=preview, result=result,
                  error=error, today=date.today(), actions={a: ACTIONS[SLUG_OF[a]][1] for a in bulk_rules.ACTIONS})


@bp.get("/services/bulk")
@requires("services.lifecycle")
def services_bulk():
    """Preview: which of the chosen services the step affects, which are skipped and why.
    Opened without a choice (no step, no services) it is the empty page: nothing to refuse yet."""
    if not any(key in request.args for key in ("action", "ids", "select")):
        form = BulkForm(formdata=None, meta={"csrf": False})
        form.on.data = date.today()
        return _bulk_page(form)
    form = BulkForm(formdata=request.args, meta={"csrf": False})
    action = request.args.get("action", "")
    form.action.data = action
    if not request.args.get("on"):
        form.on.data = date.today()
        form.on.errors = []
    elif not form.on.validate(form):
        return _bulk_page(form, status=422, error=" ".join(str(e) for e in form.on.errors))
    form.reason.errors = []
    try:
        services = _bulk_selection(form)
        preview = bulk_rules.preview(services, action, on=form.on.data, today=date.today(),
                                     waive_notice=form.waive_notice.data)
    except DomainError as exc:
        return _bulk_page(form, status=422, error=str(exc))
    form.signature.data = preview.signature
    return _bulk_page(form, preview)


@bp.post("/services/bulk")
@requires("services.lifecycle")
def services_bulk_apply():
    """Dry run (mode=dry_run: carried out, reported, rolled back) or apply (mode=apply)."""
    form = BulkForm(request.form)
    action = form.action.data or ""
    today = date.today()
    try:
        services = bulk_rules.services_by_ids(db.session, _bulk_ids(), current_user.location_ids)
        on = form.on.data if form.on.validate(form) else None
        preview = bulk_rules.preview(services, action, on=on or today, today=today,
                                     waive_notice=form.waive_notice.data)
    except DomainError as exc:
        return _bulk_page(form, status=422, error=str(exc))
    if not form.validate():
        return _bulk_page(form, preview, status=422)
    dry_run = form.mode.data != "apply"
    try:
        result = bulk_rules.apply(db.session, services, action, on=form.on.data, reason=form.reason.data,
                                  actor=operator_actor(), signature=form.signature.data, today=today,
                                  waive_notice=form.waive_notice.data, dry_run=dry_run)
    except bulk_rules.PreviewChanged as exc:
        db.session.rollback()
        return _bulk_page(form, status=409, error=str(exc))
    except DomainError as exc:
        db.session.rollback()
        services = bulk_rules.services_by_ids(db.session, _bulk_ids(), current_user.location_ids)
        preview = bulk_rules.preview(services, action, on=form.on.data, today=today,
                                     waive_notice=form.waive_notice.data)
        _field_error(form, exc)
        return _bulk_page(form, preview, status=422)
    if dry_run:
        db.session.rollback()
        services = bulk_rules.services_by_ids(db.session, _bulk_ids(), current_user.location_ids)
        preview = bulk_rules.preview(services, action, on=form.on.data, today=today,
                                     waive_notice=form.waive_notice.data)
        return _bulk_page(form, preview, result=result)
    db.session.commit()
    flash(ngettext("%(num)d service changed (%(skipped)d skipped).", "%(num)d services changed (%(skipped)d skipped).", len(result.applied), skipped=result.skipped),
          "success")
    return redirect(url_for("staff.services"))
