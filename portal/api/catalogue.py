"""/api/v1/catalogue (read): service definitions (tariffs) with their prices and plan-change
targets, service groups, billing plans and discounts. The right is the staff catalogue
pages' one (`catalogue.write`, which they need for reading too); discounts are those of
customers in the token's locations, as on the staff discount list."""
from __future__ import annotations

from datetime import date

import marshmallow as ma
from flask import abort
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.api.auth import requires
from portal.api.fields import DecimalString, Schema, enum, query_ident, timestamp, unit_price
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.domain import catalogue as rules
from portal.extensions import db
from portal.models import (
    BillingPlan,
    Delivery,
    Discount,
    DiscountKind,
    PaymentMethod,
    Period,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
)

RIGHT = "catalogue.write"  # as portal/staff/catalogue.py: one right to read and to edit

blp = Blueprint("api_catalogue", __name__, url_prefix="/api/v1/catalogue",
                description="The catalogue: tariffs and their prices, service groups, billing plans, discounts.")


class _PriceToday(DecimalString):
    """The definition's price effective today (its own price before the first change)."""

    def __init__(self, **kwargs):
        super().__init__(places=4, **kwargs)

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return rules.price_on(obj, date.today())


class _Ids(ma.fields.List):
    def __init__(self, relation: str, **kwargs):
        self.relation = relation
        super().__init__(ma.fields.Integer(), **kwargs)

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return sorted(row.id for row in getattr(obj, self.relation))


class PriceChangeSchema(Schema):
    id = ma.fields.Integer(required=True)
    new_price = unit_price(required=True)
    effective_from = ma.fields.Date(required=True)
    note = ma.fields.String(required=True)


class DefinitionSchema(Schema):
    id = ma.fields.Integer(required=True)
    group_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True, metadata={"description": "Shown in selfcare and on invoices."})
    description = ma.fields.String(required=True)
    price = unit_price(required=True, metadata={"description": "The price before the first price change."})
    price_today = _PriceToday(required=True)
    price_changes = ma.fields.List(ma.fields.Nested(PriceChangeSchema), required=True,
                                   metadata={"description": "Prices from a date, oldest first."})
    price_includes_vat = ma.fields.Boolean(required=True)
    vat_rate = unit_price(required=True)
    period = enum(Period, required=True)
    commitment_months = ma.fields.Integer(required=True)
    notice_days = ma.fields.Integer(required=True)
    selfcare_changeable = ma.fields.Boolean(required=True)
    allowed_target_ids = _Ids("allowed_targets", required=True, metadata={
        "description": "Definitions a service of this one may change to (POST /services/{id}/change-plan)."})
    usage_tracker_id = ma.fields.Integer(allow_none=True, required=True)
    valid_from = ma.fields.Date(required=True)
    valid_to = ma.fields.Date(allow_none=True, required=True)
    active = ma.fields.Boolean(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class DefinitionFilterArgs(PageArgs):
    group_id = query_ident()
    active = ma.fields.Boolean()


class ServiceGroupSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = enum(ServiceGroupKind, required=True)
    position = ma.fields.Integer(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class BillingPlanSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True)
    invoice_day = ma.fields.Integer(required=True)
    due_days = ma.fields.Integer(required=True)
    delivery = enum(Delivery, required=True)
    payment_method = enum(PaymentMethod, required=True)
    block_enabled = ma.fields.Boolean(required=True)
    series = ma.fields.String(required=True)
    constant_symbol = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class DiscountSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = enum(DiscountKind, required=True)
    value = unit_price(required=True, metadata={"description": "Percent or an amount, by `kind`."})
    customer_id = ma.fields.Integer(required=True, metadata={
        "description": "The customer it belongs to (for a discount on one service: that service's customer)."})
    customer_service_id = ma.fields.Integer(allow_none=True, required=True,
                                            metadata={"description": "Null: all the customer's services."})
    service_group_id = ma.fields.Integer(allow_none=True, required=True)
    valid_from = ma.fields.Date(required=True)
    valid_to = ma.fields.Date(allow_none=True, required=True)
    min_commitment_months = ma.fields.Integer(required=True)
    shown_on_invoice = ma.fields.Boolean(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class DiscountFilterArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(max=100),
                         metadata={"description": "Name or customer number."})
    current = ma.fields.Boolean(metadata={"description": "Only discounts valid today."})


def _by_id(model, row_id: int, *options):
    row = db.session.scalar(select(model).where(model.id == row_id).options(*options))
    if row is None:
        abort(404)
    return row


_DEFINITION_LOADS = (selectinload(ServiceDefinition.price_changes), selectinload(ServiceDefinition.allowed_targets))


@blp.route("/definitions")
@requires(RIGHT)
@blp.arguments(DefinitionFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(DefinitionSchema))
def list_definitions(limit=None, cursor=None, group_id=None, active=None):
    """List service definitions (tariffs) with their prices (ordered by id)."""
    stmt = select(ServiceDefinition).options(*_DEFINITION_LOADS)
    if group_id is not None:
        stmt = stmt.where(ServiceDefinition.group_id == group_id)
    if active is not None:
        stmt = stmt.where(ServiceDefinition.active.is_(active))
    return cursor_page(stmt, ServiceDefinition.id, {"limit": limit, "cursor": cursor})


@blp.route("/definitions/<int:definition_id>")
@requires(RIGHT)
@blp.response(200, DefinitionSchema)
def get_definition(definition_id: int):
    """Get a service definition (tariff) with its prices."""
    return _by_id(ServiceDefinition, definition_id, *_DEFINITION_LOADS)


@blp.route("/service-groups")
@requires(RIGHT)
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ServiceGroupSchema))
def list_service_groups(limit=None, cursor=None):
    """List service groups (ordered by id; `position` is the catalogue's order)."""
    return cursor_page(select(ServiceGroup), ServiceGroup.id, {"limit": limit, "cursor": cursor})


@blp.route("/service-groups/<int:group_id>")
@requires(RIGHT)
@blp.response(200, ServiceGroupSchema)
def get_service_group(group_id: int):
    """Get a service group."""
    return _by_id(ServiceGroup, group_id)


@blp.route("/billing-plans")
@requires(RIGHT)
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(BillingPlanSchema))
def list_billing_plans(limit=None, cursor=None):
    """List billing plans (ordered by id)."""
    return cursor_page(select(BillingPlan), BillingPlan.id, {"limit": limit, "cursor": cursor})


@blp.route("/billing-plans/<int:plan_id>")
@requires(RIGHT)
@blp.response(200, BillingPlanSchema)
def get_billing_plan(plan_id: int):
    """Get a billing plan."""
    return _by_id(BillingPlan, plan_id)


def _discount_rows(page: dict) -> dict:
    """(Discount, Customer) rows → discounts naming their customer."""
    return {**page, "data": [_discount_out(discount, customer) for discount, customer in page["data"]]}


def _discount_out(discount: Discount, customer) -> dict:
    return {**{name: getattr(discount, name) for name in DiscountSchema._declared_fields}, "customer_id": customer.id}


@blp.route("/discounts")
@requires(RIGHT)
@blp.arguments(DiscountFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(DiscountSchema))
def list_discounts(limit=None, cursor=None, q="", current=None):
    """List discounts of the customers in the token's locations (ordered by id)."""
    stmt = rules.discounts_statement(current_user.location_ids, text=(q or "").strip(),
                                     current_on=date.today() if current else None)
    return _discount_rows(cursor_page(stmt, Discount.id, {"limit": limit, "cursor": cursor}, scalars=False))


@blp.route("/discounts/<int:discount_id>")
@requires(RIGHT)
@blp.response(200, DiscountSchema)
def get_discount(discount_id: int):
    """Get a discount (404 when its customer is outside the token's locations)."""
    row = db.session.execute(rules.discounts_statement(current_user.location_ids)
                             .where(Discount.id == discount_id)).first()
    if row is None:
        abort(404)
    return _discount_out(*row)
