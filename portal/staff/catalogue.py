"""Staff area: catalogue — service groups, service definitions (tariffs) and their prices,
billing plans, discounts. One right for reading and writing: `catalogue.write`. The rules
(allowed VAT rates, prices from a date, what may change once sold) are in
`portal.domain.catalogue`; these views parse forms and show the refusals next to fields."""
from __future__ import annotations

from datetime import date

from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal.domain import catalogue as rules
from portal.extensions import db
from portal.models import (
    BillingPlan,
    Customer,
    Delivery,
    Discount,
    DiscountKind,
    PaymentMethod,
    Period,
    PriceChange,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
    UsageTracker,
)
from portal.staff import bp
from portal.staff.common import (
    csv_response,
    get_or_404,
    operator_actor,
    scoped_customer_or_404,
    wants_csv,
)
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, MultiCheckboxField, choices, field_error, int_or_none
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate

RIGHT = "catalogue.write"
PER_PAGE = 25


def _number_text(value: str | None) -> str:
    """'1 234,50' as people type it → '1234.50' (the rule checks the number)."""
    return (value or "").replace("\u00a0", "").replace(" ", "").replace(",", ".")


def _today() -> date:
    return date.today()


# ---------------------------------------------------------------------------------- forms

class GroupForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)])
    kind = SelectField(_l("Kind"), choices=choices([(k.value, k.value) for k in ServiceGroupKind]))
    position = IntegerField(_l("Position in lists"), default=0, validators=[Optional()])


class DefinitionForm(FlaskForm):
    group_id = SelectField(_l("Group"), coerce=int_or_none, validate_choice=False)
    code = StringField(_l("Code"), validators=[InputRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    customer_name = StringField(_l("Name for customers"), validators=[InputRequired(), Length(max=200)],
                                description=_l("Shown in selfcare and on invoices."))
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    price = StringField(_l("Price per period"), description=_l("Later changes take effect from a date."))
    price_includes_vat = BooleanField(_l("The price includes VAT"), default=True)
    vat_rate = SelectField(_l("VAT rate"),
                           choices=choices([(f"{r:.2f}", f"{r.normalize():f} %") for r in rules.VAT_RATES]),
                           validate_choice=False)
    period = SelectField(_l("Billing period"), choices=choices([(p.value, p.value) for p in Period]),
                         validate_choice=False)
    commitment_months = IntegerField(_l("Commitment (months)"), default=0, validators=[InputRequired()])
    notice_days = IntegerField(_l("Notice period (days)"), default=30, validators=[InputRequired()])
    selfcare_changeable = BooleanField(_l("Customers may change it in selfcare"))
    target_ids = MultiCheckboxField(_l("Customers may change to"), coerce=int, validate_choice=False)
    usage_tracker_id = SelectField(_l("Usage metering"), coerce=int_or_none, validate_choice=False)
    valid_from = DateField(_l("Sold from"), validators=[InputRequired()])
    valid_to = DateField(_l("Sold until"), validators=[Optional()])
    active = BooleanField(_l("Active"), default=True)


class PriceChangeForm(FlaskForm):
    new_price = StringField(_l("New price"), validators=[InputRequired()])
    effective_from = DateField(_l("From"), validators=[InputRequired()])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])


class PlanForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)])
    customer_name = StringField(_l("Name for customers"), validators=[InputRequired(), Length(max=200)])
    invoice_day = IntegerField(_l("Invoice day"), default=1, validators=[InputRequired()])
    due_days = IntegerField(_l("Due in (days)"), default=14, validators=[InputRequired()])
    delivery = SelectField(_l("Delivery"), choices=choices([(d.value, d.value) for d in Delivery]),
                           validate_choice=False)
    payment_method = SelectField(_l("Payment method"), choices=choices([(m.value, m.value) for m in PaymentMethod]),
                                 validate_choice=False)
    block_enabled = BooleanField(_l("Dunning may block services"), default=True)
    series = StringField(_l("Invoice number series"), default="FV", validators=[InputRequired(), Length(max=10)])
    constant_symbol = StringField(_l("Constant symbol"), default="0308", validators=[InputRequired(), Length(max=4)])
    active = BooleanField(_l("Active"), default=True)


class DiscountForm(FlaskForm):
    customer_number = StringField(_l("Customer number"), validators=[InputRequired(), Length(max=40)])
    customer_service_id = IntegerField(_l("Service id"), validators=[Optional(), NumberRange(min=1, max=2**31 - 1)],
                                       description=_l("Empty: every service of the customer."))
    service_group_id = SelectField(_l("Only services of the group"), coerce=int_or_none, validate_choice=False)
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=choices([(k.value, k.value) for k in DiscountKind]), validate_choice=False)
    value = StringField(_l("Value"), validators=[InputRequired()],
                        description=_l("Percent, or an amount per period."))
    valid_from = DateField(_l("From"), validators=[InputRequired()])
    valid_to = DateField(_l("Until"), validators=[Optional()])
    min_commitment_months = IntegerField(_l("Only with a commitment of at least (months)"), default=0,
                                         validators=[InputRequired()])
    shown_on_invoice = BooleanField(_l("Shown on the invoice"), default=True)


class DiscountEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    valid_to = DateField(_l("Until"), validators=[Optional()])
    shown_on_invoice = BooleanField(_l("Shown on the invoice"))


# ------------------------------------------------------------------------------ overview

def _definitions_query():
    return (select(ServiceDefinition)
            .options(selectinload(ServiceDefinition.group), selectinload(ServiceDefinition.price_changes),
                     selectinload(ServiceDefinition.allowed_targets))
            .join(ServiceGroup, ServiceDefinition.group_id == ServiceGroup.id)
            .order_by(ServiceGroup.position, ServiceGroup.name, ServiceDefinition.code))


def _next_change(definition: ServiceDefinition, today: date) -> PriceChange | None:
    return next((c for c in definition.price_changes if c.effective_from > today), None)


@bp.get("/catalogue")
@requires(RIGHT)
def catalogue():
    """Groups, services (with today's price and the next change), billing plans; the CSV is
    the list of services."""
    today = _today()
    definitions = list(db.session.scalars(_definitions_query()))
    if wants_csv():
        return csv_response(
            "services.csv",
            ["code", "name", "customer_name", "group", "price_today", "price_includes_vat", "vat_rate", "period",
             "commitment_months", "notice_days", "selfcare_changeable", "allowed_targets", "next_price",
             "next_price_from", "valid_from", "valid_to", "active"],
            ([d.code, d.name, d.customer_name, d.group.name, rules.price_on(d, today), d.price_includes_vat,
              d.vat_rate, d.period, d.commitment_months, d.notice_days, d.selfcare_changeable,
              " ".join(t.code for t in d.allowed_targets),
              (_next_change(d, today).new_price if _next_change(d, today) else None),
              (_next_change(d, today).effective_from if _next_change(d, today) else None),
              d.valid_from, d.valid_to, d.active] for d in definitions),
        )
    groups = list(db.session.scalars(select(ServiceGroup).order_by(ServiceGroup.position, ServiceGroup.name)))
    plans = list(db.session.scalars(select(BillingPlan).order_by(BillingPlan.name)))
    return render("staff/catalogue/index.html", groups=groups, definitions=definitions, plans=plans, today=today,
                  price_on=rules.price_on, next_change=_next_change)


# -------------------------------------------------------------------------------- groups

def _group_page(form: GroupForm, group: ServiceGroup | None, status: int = 200):
    return render("staff/catalogue/group.html", block="group_form" if status == 422 else None, status=status,
                  form=form, group=group)


def _save_group(group: ServiceGroup | None):
    form = GroupForm(obj=group) if request.method == "GET" else GroupForm()
    if request.method == "GET":
        return _group_page(form, group)
    if form.validate():
        return carry_out(
            lambda: rules.save_group(db.session, operator_actor(), group, name=form.name.data, kind=form.kind.data,
                                     position=form.position.data or 0),
            refused=lambda exc: _group_page(field_error(form, exc), group, status=422),
            done=lambda result: saved(_("Group “%(name)s” saved.", name=result.name),
                                      url_for("staff.catalogue", _anchor="groups"), htmx_form=True))
    return _group_page(form, group, status=422)


@bp.route("/catalogue/groups/new", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_group_new():
    return _save_group(None)


@bp.route("/catalogue/groups/<int:group_id>", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_group(group_id: int):
    return _save_group(get_or_404(ServiceGroup, group_id))


# --------------------------------------------------------------------------- definitions

def _definition_choices(form: DefinitionForm, definition: ServiceDefinition | None) -> None:
    groups = db.session.execute(select(ServiceGroup.id, ServiceGroup.name).order_by(ServiceGroup.position,
                                                                                   ServiceGroup.name)).all()
    form.group_id.choices = choices([("", _("Choose…"))] + [(str(i), n) for i, n in groups])
    others = db.session.execute(select(ServiceDefinition.id, ServiceDefinition.code, ServiceDefinition.name)
                                .order_by(ServiceDefinition.code)).all()
    form.target_ids.choices = choices([(i, f"{c} — {n}") for i, c, n in others
                                       if definition is None or i != definition.id])
    trackers = db.session.execute(select(UsageTracker.id, UsageTracker.name).order_by(UsageTracker.name)).all()
    form.usage_tracker_id.choices = choices([("", _("None"))] + [(str(i), n) for i, n in trackers])


def _definition_input(form: DefinitionForm) -> rules.DefinitionInput:
    return rules.DefinitionInput(
        group_id=form.group_id.data, code=form.code.data, name=form.name.data,
        customer_name=form.customer_name.data, description=form.description.data or "",
        price=_number_text(form.price.data) if form.price is not None else None, price_includes_vat=form.price_includes_vat.data,
        vat_rate=form.vat_rate.data, period=form.period.data, commitment_months=form.commitment_months.data,
        notice_days=form.notice_days.data, selfcare_changeable=form.selfcare_changeable.data,
        usage_tracker_id=form.usage_tracker_id.data, valid_from=form.valid_from.data, valid_to=form.valid_to.data,
        active=form.active.data, target_ids=form.target_ids.data or [],
    )


def _definition_page(definition: ServiceDefinition | None, form: DefinitionForm, price_form: PriceChangeForm | None,
                     status: int = 200, block: str | None = None):
    today = _today()
    ctx = {"definition": definition, "form": form, "price_form": price_form, "today": today,
           "empty_form": EmptyForm(formdata=None)}
    if definition is not None:
        ctx.update(
            price_today=rules.price_on(definition, today),
            earliest=rules.earliest_price_change(db.session, definition, today),
            last_charged=rules.last_charged_day(db.session, definition),
            in_use=rules.definition_in_use(db.session, definition),
        )
    return render("staff/catalogue/definition.html", block=block, status=status, **ctx)


def _edit_form(definition: ServiceDefinition) -> DefinitionForm:
    """The edit form filled from the definition (not from the request)."""
    form = DefinitionForm(obj=definition, formdata=None)
    form.vat_rate.data = f"{definition.vat_rate:.2f}"
    form.period.data = definition.period.value
    form.target_ids.data = [t.id for t in definition.allowed_targets]
    _definition_choices(form, definition)
    return form


@bp.route("/catalogue/services/new", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_definition_new():
    form = DefinitionForm()
    _definition_choices(form, None)
    if request.method == "GET":
        form.valid_from.data = _today()
        return _definition_page(None, form, None)
    if form.validate():
        return carry_out(
            lambda: rules.create_definition(db.session, operator_actor(), _definition_input(form)),
            refused=lambda exc: _definition_page(None, field_error(form, exc), None, status=422,
                                                 block="definition_form"),
            done=lambda definition: saved(_("Service “%(code)s” created.", code=definition.code),
                                          url_for("staff.catalogue_definition", definition_id=definition.id),
                                          htmx_form=True))
    return _definition_page(None, form, None, status=422, block="definition_form")


@bp.route("/catalogue/services/<int:definition_id>", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_definition(definition_id: int):
    definition = get_or_404(ServiceDefinition, definition_id)
    if request.method == "GET":
        form = _edit_form(definition)
        price_form = PriceChangeForm(formdata=None)
        price_form.effective_from.data = rules.earliest_price_change(db.session, definition, _today())
        return _definition_page(definition, form, price_form)
    form = DefinitionForm()
    _definition_choices(form, definition)
    del form.price  # the price changes from a date: see catalogue_price_change
    if form.validate():
        return carry_out(
            lambda: rules.update_definition(db.session, operator_actor(), definition, _definition_input(form)),
            refused=lambda exc: _definition_page(definition, field_error(form, exc), PriceChangeForm(formdata=None),
                                                 status=422, block="definition_form"),
            done=lambda changes: saved(_("Saved.") if changes else _("Nothing changed."),
                                       url_for("staff.catalogue_definition", definition_id=definition.id),
                                       htmx_form=True))
    return _definition_page(definition, form, PriceChangeForm(formdata=None), status=422, block="definition_form")


@bp.post("/catalogue/services/<int:definition_id>/price")
@requires(RIGHT)
def catalogue_price_change(definition_id: int):
    definition = get_or_404(ServiceDefinition, definition_id)
    form = PriceChangeForm()
    if form.validate():
        return carry_out(
            lambda: rules.schedule_price_change(db.session, operator_actor(), definition,
                                                new_price=_number_text(form.new_price.data),
                                                effective_from=form.effective_from.data, note=form.note.data or "",
                                                today=_today()),
            refused=lambda exc: _definition_page(definition, _edit_form(definition), field_error(form, exc),
                                                 status=422, block="price_form_block"),
            done=lambda change: saved(_("The new price applies from %(day)s.", day=change.effective_from.isoformat()),
                                      url_for("staff.catalogue_definition", definition_id=definition.id,
                                              _anchor="prices"), htmx_form=True))
    return _definition_page(definition, _edit_form(definition), form, status=422, block="price_form_block")


@bp.post("/catalogue/services/<int:definition_id>/price/<int:change_id>/cancel")
@requires(RIGHT)
def catalogue_price_cancel(definition_id: int, change_id: int):
    change = get_or_404(PriceChange, change_id)
    if change.definition_id != definition_id:
        abort(404)
    if not EmptyForm().validate():
        abort(400)
    prices = url_for("staff.catalogue_definition", definition_id=definition_id, _anchor="prices")
    return carry_out(lambda: rules.cancel_price_change(db.session, operator_actor(), change, today=_today()),
                     refused=lambda exc: refused(exc, prices),
                     done=lambda _result: saved(_("The price change was withdrawn."), prices))


# --------------------------------------------------------------------------- billing plans

def _plan_input(form: PlanForm) -> rules.PlanInput:
    return rules.PlanInput(
        name=form.name.data, customer_name=form.customer_name.data, invoice_day=form.invoice_day.data,
        due_days=form.due_days.data, delivery=form.delivery.data, payment_method=form.payment_method.data,
        block_enabled=form.block_enabled.data, series=form.series.data, constant_symbol=form.constant_symbol.data,
        active=form.active.data,
    )


def _save_plan(plan: BillingPlan | None):
    if request.method == "GET":
        form = PlanForm(obj=plan)
        if plan is not None:
            form.delivery.data, form.payment_method.data = plan.delivery.value, plan.payment_method.value
        return render("staff/catalogue/plan.html", form=form, plan=plan)
    form = PlanForm()
    if form.validate():
        return carry_out(
            lambda: rules.save_billing_plan(db.session, operator_actor(), plan, _plan_input(form)),
            refused=lambda exc: render("staff/catalogue/plan.html", block="plan_form", status=422,
                                       form=field_error(form, exc), plan=plan),
            done=lambda result: saved(_("Billing plan “%(name)s” saved.", name=result.name),
                                      url_for("staff.catalogue", _anchor="plans"), htmx_form=True))
    return render("staff/catalogue/plan.html", block="plan_form", status=422, form=form, plan=plan)


@bp.route("/catalogue/plans/new", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_plan_new():
    return _save_plan(None)


@bp.route("/catalogue/plans/<int:plan_id>", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_plan(plan_id: int):
    return _save_plan(get_or_404(BillingPlan, plan_id))


# ------------------------------------------------------------------------------ discounts

def _discounts_query(params: dict):
    """Discounts of customers in the operator's locations (`rules.discounts_statement`)."""
    return rules.discounts_statement(current_user.location_ids, text=params.get("q") or "",
                                     current_on=_today() if params.get("current") else None)


@bp.get("/catalogue/discounts")
@requires(RIGHT)
def catalogue_discounts():
    params = {"q": (request.args.get("q") or "").strip()[:100], "current": request.args.get("current") == "1"}
    stmt = _discounts_query(params)
    if wants_csv():
        rows = db.session.execute(stmt).all()
        return csv_response(
            "discounts.csv",
            ["id", "customer_number", "customer_service_id", "name", "kind", "value", "valid_from", "valid_to",
             "min_commitment_months", "shown_on_invoice"],
            ([d.id, c.customer_number, d.customer_service_id, d.name, d.kind, d.value, d.valid_from, d.valid_to,
              d.min_commitment_months, d.shown_on_invoice] for d, c in rows),
        )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE, scalars=False)
    shown = {k: ("1" if v is True else v) for k, v in params.items() if v}
    return render("staff/catalogue/discounts.html", block="discount_table", page=page, params=shown, today=_today())


def _discount_choices(form) -> None:
    groups = db.session.execute(select(ServiceGroup.id, ServiceGroup.name).order_by(ServiceGroup.name)).all()
    form.service_group_id.choices = choices([("", _("Any group"))] + [(str(i), n) for i, n in groups])


@bp.route("/catalogue/discounts/new", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_discount_new():
    form = DiscountForm()
    _discount_choices(form)
    if request.method == "GET":
        form.customer_number.data = request.args.get("customer", "")[:40]
        form.valid_from.data = _today()
        return render("staff/catalogue/discount.html", form=form, discount=None)
    if form.validate():
        number = form.customer_number.data.strip()
        stmt = in_operator_locations(select(Customer).where(Customer.customer_number == number), Customer.location_id)
        customer = db.session.scalar(stmt)
        if customer is None:
            form.customer_number.errors = [_("No customer with this number.")]
        else:
            data = rules.DiscountInput(
                name=form.name.data, kind=form.kind.data, value=_number_text(form.value.data),
                customer_id=customer.id, customer_service_id=form.customer_service_id.data,
                service_group_id=form.service_group_id.data, valid_from=form.valid_from.data,
                valid_to=form.valid_to.data, min_commitment_months=form.min_commitment_months.data,
                shown_on_invoice=form.shown_on_invoice.data,
            )
            return carry_out(
                lambda: rules.create_discount(db.session, operator_actor(), data, customer),
                refused=lambda exc: render("staff/catalogue/discount.html", block="discount_form", status=422,
                                           form=field_error(form, exc), discount=None),
                done=lambda discount: saved(_("Discount “%(name)s” created.", name=discount.name),
                                            url_for("staff.catalogue_discount", discount_id=discount.id),
                                            htmx_form=True))
    return render("staff/catalogue/discount.html", block="discount_form", status=422, form=form, discount=None)


def _scoped_discount_or_404(discount_id: int) -> tuple[Discount, Customer]:
    if not 0 < discount_id <= 2**31 - 1:
        abort(404)
    row = db.session.execute(_discounts_query({}).where(Discount.id == discount_id)).first()
    if row is None:
        abort(404)
    return row[0], row[1]


@bp.route("/catalogue/discounts/<int:discount_id>", methods=["GET", "POST"])
@requires(RIGHT)
def catalogue_discount(discount_id: int):
    discount, customer = _scoped_discount_or_404(discount_id)
    scoped_customer_or_404(customer.id)
    if request.method == "GET":
        return render("staff/catalogue/discount.html", form=DiscountEditForm(obj=discount), discount=discount,
                      customer=customer)
    form = DiscountEditForm()
    if form.validate():
        return carry_out(
            lambda: rules.update_discount(db.session, operator_actor(), discount, name=form.name.data,
                                          valid_to=form.valid_to.data, shown_on_invoice=form.shown_on_invoice.data),
            refused=lambda exc: _discount_page(field_error(form, exc), discount, customer),
            done=lambda changes: saved(_("Saved.") if changes else _("Nothing changed."),
                                       url_for("staff.catalogue_discount", discount_id=discount.id), htmx_form=True))
    return _discount_page(form, discount, customer)


def _discount_page(form, discount: Discount, customer):
    return render("staff/catalogue/discount.html", block="discount_form", status=422, form=form, discount=discount,
                  customer=customer)
