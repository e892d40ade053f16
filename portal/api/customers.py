"""/api/v1/customers: list (the staff list's filters), get, create, update — through the same
rules as the staff forms (portal.domain.customers)."""
from __future__ import annotations

import marshmallow as ma
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, enum, ident, money, query_ident, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.api.scope import one_or_404
from portal.domain import DomainError
from portal.domain import customers as rules
from portal.extensions import db
from portal.models import Customer, CustomerKind, Language

blp = Blueprint("api_customers", __name__, url_prefix="/api/v1/customers",
                description="Customers: people and companies who buy services.")


class CustomerSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_number = ma.fields.String(required=True)
    kind = enum(CustomerKind, required=True)
    display_name = ma.fields.String(required=True)
    first_name = ma.fields.String(allow_none=True)
    last_name = ma.fields.String(allow_none=True)
    company_name = ma.fields.String(allow_none=True)
    company_id = ma.fields.String(allow_none=True)
    vat_id = ma.fields.String(allow_none=True)
    iban = ma.fields.String(allow_none=True)
    birth_date = ma.fields.Date(allow_none=True)
    street = ma.fields.String(required=True)
    city = ma.fields.String(required=True)
    postal_code = ma.fields.String(required=True)
    country = ma.fields.String(required=True)
    language = enum(Language, required=True)
    location_id = ma.fields.Integer(required=True)
    billing_plan_id = ma.fields.Integer(allow_none=True)
    variable_symbol = ma.fields.String(required=True)
    credit_limit = money(required=True)
    dunning_exempt = ma.fields.Boolean(required=True)
    note = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    group_ids = ma.fields.Method("_group_ids", required=True,
                                 metadata={"type": "array", "items": {"type": "integer"}})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)

    def _group_ids(self, customer: Customer) -> list[int]:
        return sorted(g.id for g in customer.groups)


class CustomerFilterArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(max=100),
                         metadata={"description": "Name, number, variable symbol, company id, e-mail, phone or street."})
    location_id = query_ident()
    active = ma.fields.Boolean()
    kind = enum(CustomerKind)
    group_id = query_ident()


class _CustomerFields(Schema):
    """What a customer form has; the rules check the values (the same messages as the form)."""

    kind = enum(CustomerKind)
    location_id = ident()
    first_name = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100))
    last_name = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100))
    company_name = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    company_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    vat_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    iban = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=50))
    birth_date = ma.fields.Date(allow_none=True)
    street = ma.fields.String(validate=ma.validate.Length(max=200))
    city = ma.fields.String(validate=ma.validate.Length(max=100))
    postal_code = ma.fields.String(validate=ma.validate.Length(max=20))
    country = ma.fields.String(validate=ma.validate.Length(equal=2))
    language = enum(Language)
    billing_plan_id = ident(allow_none=True)
    credit_limit = money()
    note = ma.fields.String(validate=ma.validate.Length(max=5000))
    active = ma.fields.Boolean()
    group_ids = ma.fields.List(ident())


class CustomerCreateSchema(_CustomerFields):
    kind = enum(CustomerKind, required=True)
    location_id = ident(required=True)
    customer_number = ma.fields.String(validate=ma.validate.Length(max=20),
                                       metadata={"description": "Default: the next free number."})
    variable_symbol = ma.fields.String(validate=ma.validate.Length(max=10),
                                       metadata={"description": "Default: derived from the number."})


class CustomerUpdateSchema(_CustomerFields):
    """Only the fields sent change; the customer number and variable symbol stay."""


def _scoped_customer(customer_id: int) -> Customer:
    return one_or_404(select(Customer).where(Customer.id == customer_id)
                      .options(selectinload(Customer.groups)), Customer.location_id)


def _form_values(customer: Customer) -> dict:
    """The customer as the form would show it: the base an update changes."""
    values = {name: getattr(customer, name) for name in rules.CUSTOMER_FIELDS}
    values["kind"] = customer.kind.value
    values["language"] = customer.language.value
    values["group_ids"] = [g.id for g in customer.groups]
    return values


def _plain(body: dict) -> dict:
    return {k: (v.value if hasattr(v, "value") and not isinstance(v, (int, str)) else v) for k, v in body.items()}


@blp.route("")
@requires("customers.read")
@blp.arguments(CustomerFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(CustomerSchema))
def list_customers(limit=None, cursor=None, q="", location_id=None, active=None, kind=None, group_id=None):
    """List customers (ordered by id)."""
    filters = rules.CustomerFilters(query=q or "", location_id=location_id, active=active, kind=kind,
                                    group_id=group_id)
    stmt = rules.search_statement(filters, current_user.location_ids).options(selectinload(Customer.groups))
    return cursor_page(stmt, Customer.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:customer_id>")
@requires("customers.read")
@blp.response(200, CustomerSchema)
def get_customer(customer_id: int):
    """Get a customer."""
    return _scoped_customer(customer_id)


@blp.route("", methods=["POST"])
@requires("customers.write")
@blp.arguments(CustomerCreateSchema)
@blp.response(201, CustomerSchema)
def create_customer(body: dict):
    """Create a customer (customer.created)."""
    data = {"active": True, "country": "CZ", "language": "cs", **_plain(body)}
    try:
        customer = rules.create_customer(db.session, api_actor(), data, location_ids=current_user.location_ids)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _scoped_customer(customer.id), 201, {"Location": f"/api/v1/customers/{customer.id}"}


@blp.route("/<int:customer_id>", methods=["PATCH"])
@requires("customers.write")
@blp.arguments(CustomerUpdateSchema)
@blp.response(200, CustomerSchema)
def update_customer(body: dict, customer_id: int):
    """Change a customer's fields (customer.updated)."""
    customer = _scoped_customer(customer_id)
    data = {**_form_values(customer), **_plain(body)}
    try:
        rules.update_customer(db.session, api_actor(), customer, data, location_ids=current_user.location_ids)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _scoped_customer(customer_id)
