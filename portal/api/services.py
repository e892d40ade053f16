"""/api/v1/services: customer services — the list (the staff list's filters), a service (state,
tariff, price, dates, pending steps), its history, an order for a customer, and the lifecycle
steps (activate, block, unblock, change plan, cancel). The steps call the same rules as the
staff action form (portal.domain.lifecycle, plan_change); the staff confirmation page is a UI
step, so a request here carries the step out at once."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import marshmallow as ma
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import (
    DecimalString,
    Schema,
    enum,
    ident,
    money,
    query_ident,
    timestamp,
    unit_price,
)
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.api.scope import one_or_404
from portal.domain import DomainError, plan_change
from portal.domain import bulk as bulk_rules
from portal.domain import lifecycle as lc
from portal.extensions import db
from portal.models import (
    ActorType,
    Customer,
    CustomerService,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)

# The order is a customer's sub-resource, the rest hang under /services: one prefix for both.
blp = Blueprint("api_services", __name__, url_prefix="/api/v1",
                description="Customer services: what a customer buys, its state and lifecycle steps.")

MAX_PRICE = Decimal("99999999.99")  # what the price column (12 digits, 4 after the point) holds
# The rules name their fields as the staff form does; the API's body says it this way.
_FIELDS = {"on": "effective_on", "target": "target_id", "definition": "definition_id"}


def _refused(error: DomainError):
    if error.field in _FIELDS:
        error.field = _FIELDS[error.field]
    if getattr(error, "errors", None):
        error.errors = {_FIELDS.get(k, k): v for k, v in error.errors.items()}
    return refusal(error)


def _sane_date(value: date) -> None:
    """Within 20 years either side of today, as the staff form (date arithmetic near year 9999
    would overflow; no real step is dated that far)."""
    today = date.today()
    low, high = date(today.year - 20, 1, 1), date(today.year + 20, 12, 31)
    if not low <= value <= high:
        raise ma.ValidationError(_("Choose a date between %(low)s and %(high)s.", low=low.isoformat(),
                                   high=high.isoformat()))


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError(_("Give a reason."))


def _price(value: Decimal | None) -> None:
    """The staff order form's bounds, with its messages."""
    if value is None:
        return
    if value < 0:
        raise ma.ValidationError(_("A price cannot be negative."))
    if value > MAX_PRICE:
        raise ma.ValidationError(_("The price is too large."))


def _variable_symbol(value: str | None) -> None:
    if value is not None and not re.fullmatch(r"[0-9]{1,10}", value):
        raise ma.ValidationError(_("Up to 10 digits."))


# -- schemas -----------------------------------------------------------------------------------


class DefinitionBriefSchema(Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)


class ServiceEventSchema(Schema):
    id = ma.fields.Integer(required=True)
    service_id = ma.fields.Integer(required=True, attribute="customer_service_id")
    kind = enum(ServiceEventKind, required=True)
    from_state = enum(ServiceState, allow_none=True, required=True)
    to_state = enum(ServiceState, allow_none=True, required=True)
    effective_on = ma.fields.Date(required=True)
    scheduled_for = ma.fields.Date(allow_none=True, required=True,
                                   metadata={"description": "Set for a step scheduled for a later day."})
    done_at = timestamp(allow_none=True, required=True, metadata={"description": "Null while pending."})
    reason = ma.fields.String(required=True)
    actor_type = enum(ActorType, required=True)
    actor_name = ma.fields.String(required=True)
    details = ma.fields.Dict(required=True)
    visible_to_customer = ma.fields.Boolean(required=True)
    created_at = timestamp(required=True)


class _Price(DecimalString):
    """Read from the rules (override, else the price change in effect, else the tariff's)."""

    def __init__(self, **kwargs):
        super().__init__(places=4, **kwargs)

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return lc.price_on(obj, date.today())


class _AllowedActions(ma.fields.List):
    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return [a.replace("_", "-") for a in lc.allowed_actions(obj)]


class _Pending(ma.fields.List):
    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return sorted(lc.pending_events(obj), key=lambda e: (e.scheduled_for, e.id))


class ServiceSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    definition = ma.fields.Nested(DefinitionBriefSchema, required=True)
    billing_plan_id = ma.fields.Integer(allow_none=True, required=True)
    state = enum(ServiceState, required=True)
    price = _Price(required=True, metadata={"description": "The price per period that applies today."})
    price_override = unit_price(allow_none=True, required=True)
    ordered_on = ma.fields.Date(required=True)
    activated_on = ma.fields.Date(allow_none=True, required=True)
    billing_from = ma.fields.Date(allow_none=True, required=True)
    billing_to = ma.fields.Date(allow_none=True, required=True)
    cancelled_on = ma.fields.Date(allow_none=True, required=True)
    commitment_until = ma.fields.Date(allow_none=True, required=True)
    variable_symbol = ma.fields.String(allow_none=True, required=True)
    installation_street = ma.fields.String(required=True)
    installation_city = ma.fields.String(required=True)
    installation_postal_code = ma.fields.String(required=True)
    replaced_by_id = ma.fields.Integer(allow_none=True, required=True,
                                       metadata={"description": "The successor after a plan change."})
    allowed_actions = _AllowedActions(ma.fields.String(), required=True, metadata={
        "description": "Steps the service's state allows: activate, block, unblock, change-plan, cancel."})
    pending = _Pending(ma.fields.Nested(ServiceEventSchema), required=True,
                       metadata={"description": "Scheduled steps not yet carried out, soonest first."})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class ServiceFilterArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(max=100),
                         metadata={"description": "Customer number, name or variable symbol."})
    state = enum(ServiceState)
    definition_id = query_ident()
    location_id = query_ident()
    customer_id = query_ident()


class OrderSchema(Schema):
    definition_id = ident(required=True)
    ordered_on = ma.fields.Date(validate=_sane_date, metadata={"description": "Default: today."})
    price_override = money(allow_none=True, validate=_price,
                           metadata={"description": "Default: the tariff's price."})
    installation_street = ma.fields.String(validate=ma.validate.Length(max=200))
    installation_city = ma.fields.String(validate=ma.validate.Length(max=100))
    installation_postal_code = ma.fields.String(validate=ma.validate.Length(max=20))
    variable_symbol = ma.fields.String(allow_none=True, validate=_variable_symbol,
                                       metadata={"pattern": r"^[0-9]{1,10}$"})
    reason = ma.fields.String(validate=ma.validate.Length(max=2000), metadata={"description": "A note."})


class ActionSchema(Schema):
    reason = ma.fields.String(required=True, validate=[ma.validate.Length(max=2000), _not_blank])
    effective_on = ma.fields.Date(allow_none=True, validate=_sane_date, metadata={
        "description": "Default: today. A future date schedules the step."})


class UnblockSchema(ActionSchema):
    credit_blocked_days = ma.fields.Boolean(metadata={"description": "Credit the blocked days (default false)."})


class ServiceCancelSchema(ActionSchema):
    effective_on = ma.fields.Date(allow_none=True, validate=_sane_date, metadata={
        "description": "Default: the earliest possible end. A future date schedules the cancellation."})
    waive_notice = ma.fields.Boolean(metadata={
        "description": "Waive the notice period and commitment (default false)."})


class ChangePlanSchema(ActionSchema):
    target_id = ident(required=True, metadata={"description": "One of the definition's allowed targets."})
    effective_on = ma.fields.Date(allow_none=True, validate=_sane_date, metadata={
        "description": "Default: the start of the service's next period."})


# -- lookups -----------------------------------------------------------------------------------


def _service(service_id: int) -> CustomerService:
    stmt = (select(CustomerService).join(Customer, Customer.id == CustomerService.customer_id)
            .where(CustomerService.id == service_id)
            .options(selectinload(CustomerService.customer),
                     selectinload(CustomerService.definition).selectinload(ServiceDefinition.allowed_targets),
                     selectinload(CustomerService.definition).selectinload(ServiceDefinition.price_changes),
                     selectinload(CustomerService.events)))
    return one_or_404(stmt, Customer.location_id)


# -- reads -------------------------------------------------------------------------------------


@blp.route("/services")
@requires("customers.read")
@blp.arguments(ServiceFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ServiceSchema))
def list_services(limit=None, cursor=None, q="", state=None, definition_id=None, location_id=None,
                  customer_id=None):
    """List customer services (ordered by id)."""
    flt = bulk_rules.ServiceFilter(state=state, definition_id=definition_id, location_id=location_id,
                                   text=(q or "").strip(), customer_id=customer_id)
    stmt = bulk_rules.filtered_services(flt, current_user.location_ids).options(
        selectinload(CustomerService.definition).selectinload(ServiceDefinition.price_changes),
        selectinload(CustomerService.events))
    return cursor_page(stmt, CustomerService.id, {"limit": limit, "cursor": cursor})


@blp.route("/services/<int:service_id>")
@requires("customers.read")
@blp.response(200, ServiceSchema)
def get_service(service_id: int):
    """Get a customer service."""
    return _service(service_id)


@blp.route("/services/<int:service_id>/history")
@requires("customers.read")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ServiceEventSchema))
def service_history(service_id: int, limit=None, cursor=None):
    """List a service's events, done and pending (ordered by id)."""
    _service(service_id)
    stmt = select(ServiceEvent).where(ServiceEvent.customer_service_id == service_id)
    return cursor_page(stmt, ServiceEvent.id, {"limit": limit, "cursor": cursor})


# -- order -------------------------------------------------------------------------------------


@blp.route("/customers/<int:customer_id>/services", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(OrderSchema)
@blp.response(201, ServiceSchema)
def order_service(body: dict, customer_id: int):
    """Order a service for a customer (service.ordered): a new service in state ordered."""
    customer = one_or_404(select(Customer).where(Customer.id == customer_id), Customer.location_id)
    definition = db.session.get(ServiceDefinition, body["definition_id"])
    if definition is None:
        return refusal(DomainError(_("Choose a tariff."), field="definition_id"))
    try:
        service = lc.order_service(
            db.session, customer, definition, actor=api_actor(), ordered_on=body.get("ordered_on") or date.today(),
            price_override=body.get("price_override"), installation_street=body.get("installation_street", ""),
            installation_city=body.get("installation_city", ""),
            installation_postal_code=body.get("installation_postal_code", ""),
            variable_symbol=body.get("variable_symbol") or None, reason=body.get("reason", ""))
    except DomainError as error:
        return _refused(error)
    db.session.commit()
    return _service(service.id), 201, {"Location": f"/api/v1/services/{service.id}"}


# -- lifecycle steps ---------------------------------------------------------------------------


def _step(service: CustomerService, carry_out):
    """Carry out one step on the service, commit, and answer with the service's new state."""
    try:
        carry_out(service, api_actor(), date.today())
    except DomainError as error:
        return _refused(error)
    db.session.commit()
    return _service(service.id)


@blp.route("/services/<int:service_id>/activate", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(ActionSchema)
@blp.response(200, ServiceSchema)
def activate_service(body: dict, service_id: int):
    """Activate an ordered service (service.activated; a future date schedules it)."""
    return _step(_service(service_id), lambda service, actor, today: lc.activate(
        db.session, service, actor=actor, on=body.get("effective_on") or today, reason=body["reason"]))


@blp.route("/services/<int:service_id>/block", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(ActionSchema)
@blp.response(200, ServiceSchema)
def block_service(body: dict, service_id: int):
    """Block an active service (service.blocked; a future date schedules it)."""
    return _step(_service(service_id), lambda service, actor, today: lc.block(
        db.session, service, actor=actor, on=body.get("effective_on") or today, reason=body["reason"]))


@blp.route("/services/<int:service_id>/unblock", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(UnblockSchema)
@blp.response(200, ServiceSchema)
def unblock_service(body: dict, service_id: int):
    """Unblock a blocked service (service.unblocked; a future date schedules it)."""
    return _step(_service(service_id), lambda service, actor, today: lc.unblock(
        db.session, service, actor=actor, on=body.get("effective_on") or today, reason=body["reason"],
        credit_blocked_days=body.get("credit_blocked_days", False)))


@blp.route("/services/<int:service_id>/cancel", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(ServiceCancelSchema)
@blp.response(200, ServiceSchema)
def cancel_service(body: dict, service_id: int):
    """Cancel a service (service.cancelled; a future date schedules it)."""
    return _step(_service(service_id), lambda service, actor, today: lc.cancel(
        db.session, service, actor=actor, on=body.get("effective_on"), reason=body["reason"],
        waive_notice=body.get("waive_notice", False)))


@blp.route("/services/<int:service_id>/change-plan", methods=["POST"])
@requires("services.lifecycle")
@blp.arguments(ChangePlanSchema)
@blp.response(200, ServiceSchema)
def change_service_plan(body: dict, service_id: int):
    """Change a service's tariff (service.changed): a successor replaces it (replaced_by_id)."""
    service = _service(service_id)
    target = {t.id: t for t in service.definition.allowed_targets}.get(body["target_id"])
    if target is None:
        return refusal(DomainError(_("Choose one of the tariffs this service may change to."), field="target_id"))
    return _step(service, lambda service, actor, today: plan_change.change_plan(
        db.session, service, target, actor=actor, on=body.get("effective_on"), reason=body["reason"]))
