"""/api/v1/customers/{id}/contacts and /addresses (list, get, add, change, remove) and
/api/v1/customer-groups (list, get, create, change) — through the same rules as the staff
forms (portal.domain.customers): the same refusals, the same audit entries."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, enum, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.api.scope import one_or_404
from portal.domain import DomainError
from portal.domain import customers as rules
from portal.extensions import db
from portal.models import (
    AddressKind,
    Contact,
    ContactKind,
    ContactPurpose,
    Customer,
    CustomerAddress,
    CustomerGroup,
)

blp = Blueprint("api_customer_details", __name__, url_prefix="/api/v1/customers",
                description="A customer's contacts (e-mails, phones) and addresses besides the billing one.")
groups_blp = Blueprint("api_customer_groups", __name__, url_prefix="/api/v1/customer-groups",
                       description="Customer groups (for lists, filters and discounts).")


# -- schemas -----------------------------------------------------------------------------------


class ContactSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    kind = enum(ContactKind, required=True)
    value = ma.fields.String(required=True)
    purpose = enum(ContactPurpose, required=True)
    primary = ma.fields.Boolean(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class ContactCreateSchema(Schema):
    kind = enum(ContactKind, required=True)
    value = ma.fields.String(required=True, validate=ma.validate.Length(max=254))
    purpose = enum(ContactPurpose, required=True)
    primary = ma.fields.Boolean(metadata={"description": "Default: false (the first of its kind is primary anyway)."})


class ContactUpdateSchema(Schema):
    """Only the fields sent change; the kind stays (remove the contact and add another)."""

    value = ma.fields.String(validate=ma.validate.Length(max=254))
    purpose = enum(ContactPurpose)
    primary = ma.fields.Boolean()


class AddressSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    kind = enum(AddressKind, required=True)
    street = ma.fields.String(required=True)
    city = ma.fields.String(required=True)
    postal_code = ma.fields.String(required=True)
    country = ma.fields.String(required=True)
    note = ma.fields.String(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class _AddressFields(Schema):
    kind = enum(AddressKind)
    street = ma.fields.String(validate=ma.validate.Length(max=200))
    city = ma.fields.String(validate=ma.validate.Length(max=100))
    postal_code = ma.fields.String(validate=ma.validate.Length(max=20))
    country = ma.fields.String(validate=ma.validate.Length(max=10))
    note = ma.fields.String(validate=ma.validate.Length(max=200))


class AddressCreateSchema(_AddressFields):
    kind = enum(AddressKind, required=True)
    street = ma.fields.String(required=True, validate=ma.validate.Length(max=200))
    city = ma.fields.String(required=True, validate=ma.validate.Length(max=100))
    postal_code = ma.fields.String(required=True, validate=ma.validate.Length(max=20))
    country = ma.fields.String(validate=ma.validate.Length(max=10),
                               metadata={"description": "Default: the customer's country."})


class AddressUpdateSchema(_AddressFields):
    """Only the fields sent change."""


class CustomerGroupSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    customer_count = ma.fields.Integer(required=True, metadata={
        "description": "Customers in the group within the token's locations."})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class GroupCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(max=100))
    description = ma.fields.String(validate=ma.validate.Length(max=2000))


class GroupUpdateSchema(Schema):
    """Only the fields sent change."""

    name = ma.fields.String(validate=ma.validate.Length(max=100))
    description = ma.fields.String(validate=ma.validate.Length(max=2000))


# -- lookups -----------------------------------------------------------------------------------


def _customer(customer_id: int) -> Customer:
    return one_or_404(select(Customer).where(Customer.id == customer_id), Customer.location_id)


def _owned(model, customer_id: int, row_id: int):
    """A contact or address of a customer the token may see; another customer's row is 404."""
    return one_or_404(select(model).join(Customer, Customer.id == model.customer_id)
                      .where(model.id == row_id, model.customer_id == customer_id), Customer.location_id)


def _location(kind: str, customer_id: int, row_id: int) -> dict:
    return {"Location": f"/api/v1/customers/{customer_id}/{kind}/{row_id}"}


# -- contacts ----------------------------------------------------------------------------------


@blp.route("/<int:customer_id>/contacts")
@requires("customers.read")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ContactSchema))
def list_contacts(customer_id: int, limit=None, cursor=None):
    """List a customer's contacts (ordered by id)."""
    _customer(customer_id)
    stmt = select(Contact).where(Contact.customer_id == customer_id)
    return cursor_page(stmt, Contact.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:customer_id>/contacts/<int:contact_id>")
@requires("customers.read")
@blp.response(200, ContactSchema)
def get_contact(customer_id: int, contact_id: int):
    """Get a customer's contact."""
    return _owned(Contact, customer_id, contact_id)


@blp.route("/<int:customer_id>/contacts", methods=["POST"])
@requires("customers.read", "customers.write")
@blp.arguments(ContactCreateSchema)
@blp.response(201, ContactSchema)
def create_contact(body: dict, customer_id: int):
    """Add a contact to a customer (contact.added)."""
    customer = _customer(customer_id)
    try:
        contact = rules.add_contact(db.session, api_actor(), customer, kind=body["kind"], value=body["value"],
                                    purpose=body["purpose"], primary=body.get("primary", False))
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return (_owned(Contact, customer_id, contact.id), 201, _location("contacts", customer_id, contact.id))


@blp.route("/<int:customer_id>/contacts/<int:contact_id>", methods=["PATCH"])
@requires("customers.read", "customers.write")
@blp.arguments(ContactUpdateSchema)
@blp.response(200, ContactSchema)
def update_contact(body: dict, customer_id: int, contact_id: int):
    """Change a contact's value, purpose or primary mark (contact.updated)."""
    contact = _owned(Contact, customer_id, contact_id)
    try:
        rules.update_contact(db.session, api_actor(), contact, value=body.get("value", contact.value),
                             purpose=body.get("purpose", contact.purpose), primary=body.get("primary", contact.primary))
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _owned(Contact, customer_id, contact_id)


@blp.route("/<int:customer_id>/contacts/<int:contact_id>", methods=["DELETE"])
@requires("customers.read", "customers.write")
@blp.response(204)
def delete_contact(customer_id: int, contact_id: int):
    """Remove a contact (contact.removed); the last e-mail of a customer invoiced by e-mail stays."""
    contact = _owned(Contact, customer_id, contact_id)
    try:
        rules.remove_contact(db.session, api_actor(), contact)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return None


# -- addresses ---------------------------------------------------------------------------------


def _address_values(address: CustomerAddress) -> dict:
    values = {name: getattr(address, name) for name in rules.ADDRESS_FIELDS}
    values["kind"] = address.kind.value
    return values


def _plain(body: dict) -> dict:
    return {k: (v.value if isinstance(v, AddressKind) else v) for k, v in body.items()}


@blp.route("/<int:customer_id>/addresses")
@requires("customers.read")
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(AddressSchema))
def list_addresses(customer_id: int, limit=None, cursor=None):
    """List a customer's addresses (ordered by id)."""
    _customer(customer_id)
    stmt = select(CustomerAddress).where(CustomerAddress.customer_id == customer_id)
    return cursor_page(stmt, CustomerAddress.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:customer_id>/addresses/<int:address_id>")
@requires("customers.read")
@blp.response(200, AddressSchema)
def get_address(customer_id: int, address_id: int):
    """Get a customer's address."""
    return _owned(CustomerAddress, customer_id, address_id)


@blp.route("/<int:customer_id>/addresses", methods=["POST"])
@requires("customers.read", "customers.write")
@blp.arguments(AddressCreateSchema)
@blp.response(201, AddressSchema)
def create_address(body: dict, customer_id: int):
    """Add a postal or installation address (address.added)."""
    customer = _customer(customer_id)
    data = {"country": customer.country, "note": "", **_plain(body)}
    try:
        address = rules.add_address(db.session, api_actor(), customer, data)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return (_owned(CustomerAddress, customer_id, address.id), 201, _location("addresses", customer_id, address.id))


@blp.route("/<int:customer_id>/addresses/<int:address_id>", methods=["PATCH"])
@requires("customers.read", "customers.write")
@blp.arguments(AddressUpdateSchema)
@blp.response(200, AddressSchema)
def update_address(body: dict, customer_id: int, address_id: int):
    """Change an address (address.updated)."""
    address = _owned(CustomerAddress, customer_id, address_id)
    try:
        rules.update_address(db.session, api_actor(), address, {**_address_values(address), **_plain(body)})
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _owned(CustomerAddress, customer_id, address_id)


@blp.route("/<int:customer_id>/addresses/<int:address_id>", methods=["DELETE"])
@requires("customers.read", "customers.write")
@blp.response(204)
def delete_address(customer_id: int, address_id: int):
    """Remove an address (address.removed)."""
    address = _owned(CustomerAddress, customer_id, address_id)
    try:
        rules.remove_address(db.session, api_actor(), address)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return None


# -- groups ------------------------------------------------------------------------------------


def _with_counts(groups: list[CustomerGroup]) -> list[dict]:
    counts = rules.group_counts(db.session, [g.id for g in groups], current_user.location_ids)
    return [{**{k: getattr(g, k) for k in ("id", "name", "description", "created_at", "updated_at")},
             "customer_count": counts.get(g.id, 0)} for g in groups]


def _group(group_id: int) -> CustomerGroup:
    # Groups are not per location (as on the staff page); only their counts are.
    group = db.session.get(CustomerGroup, group_id)
    if group is None:
        abort(404)
    return group


@groups_blp.route("")
@requires("customers.read")
@groups_blp.arguments(PageArgs, location="query", as_kwargs=True)
@groups_blp.response(200, page_schema(CustomerGroupSchema))
def list_groups(limit=None, cursor=None):
    """List customer groups (ordered by id) with their customer counts."""
    page = cursor_page(select(CustomerGroup), CustomerGroup.id, {"limit": limit, "cursor": cursor})
    return {**page, "data": _with_counts(page["data"])}


@groups_blp.route("/<int:group_id>")
@requires("customers.read")
@groups_blp.response(200, CustomerGroupSchema)
def get_group(group_id: int):
    """Get a customer group."""
    return _with_counts([_group(group_id)])[0]


@groups_blp.route("", methods=["POST"])
@requires("customers.read", "customers.write")
@groups_blp.arguments(GroupCreateSchema)
@groups_blp.response(201, CustomerGroupSchema)
def create_group(body: dict):
    """Create a customer group (customer_group.created)."""
    try:
        group = rules.create_group(db.session, api_actor(), name=body["name"], description=body.get("description", ""))
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _with_counts([_group(group.id)])[0], 201, {"Location": f"/api/v1/customer-groups/{group.id}"}


@groups_blp.route("/<int:group_id>", methods=["PATCH"])
@requires("customers.read", "customers.write")
@groups_blp.arguments(GroupUpdateSchema)
@groups_blp.response(200, CustomerGroupSchema)
def update_group(body: dict, group_id: int):
    """Rename a customer group or change its description (customer_group.updated)."""
    group = _group(group_id)
    try:
        rules.update_group(db.session, api_actor(), group, name=body.get("name", group.name),
                           description=body.get("description", group.description))
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _with_counts([_group(group_id)])[0]
