"""/api/v1/payments: the staff payments list (its filters), the unmatched queue, a payment with
its pairing, and recording money received from a bank or a payment gateway. A recorded
payment is paired at once like a line of an imported statement (portal.domain.payments:
identified by its variable symbol, then its invoices paid) and a bank reference already
recorded for the same source is refused, as the import skips it; the Idempotency-Key makes
a retry safe. Like the statement import, recording needs a token without location limits
(the variable symbol may point at any customer).

Scope as on the staff pages: a payment of a known customer belongs to the customer's
location; an unidentified payment is nobody's yet and every payments token sees it."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, decimal, enum, money, query_ident, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.domain import DomainError
from portal.domain.acceptance import local_date
from portal.domain.payments import STAFF_QUEUE_STATES, InvalidPayment, record_payment
from portal.extensions import db
from portal.models import (
    Currency,
    Customer,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
)

blp = Blueprint("api_payments", __name__, url_prefix="/api/v1/payments",
                description="Payments: money received, and how it is paired with invoices.")


class AllocationSchema(Schema):
    id = ma.fields.Integer(required=True)
    invoice_id = ma.fields.Integer(required=True)
    invoice_number = ma.fields.Function(lambda a: a.invoice.number, required=True, metadata={"type": "string"})
    amount = money(required=True)
    at = timestamp(required=True)


class PaymentSchema(Schema):
    id = ma.fields.Integer(required=True)
    received_on = ma.fields.Date(required=True)
    amount = money(required=True)
    currency = enum(Currency, required=True)
    state = enum(PaymentState, required=True)
    unallocated = money(required=True, metadata={"description": "Not paired: customer credit, or waiting for staff."})
    source = enum(PaymentSource, required=True)
    variable_symbol = ma.fields.String(allow_none=True, required=True)
    constant_symbol = ma.fields.String(allow_none=True, required=True)
    specific_symbol = ma.fields.String(allow_none=True, required=True)
    counterparty_account = ma.fields.String(allow_none=True, required=True)
    counterparty_name = ma.fields.String(allow_none=True, required=True)
    message = ma.fields.String(required=True)
    bank_reference = ma.fields.String(allow_none=True, required=True)
    statement_import_id = ma.fields.Integer(allow_none=True, required=True)
    customer_id = ma.fields.Integer(allow_none=True, required=True)
    note = ma.fields.String(required=True)
    reversed_on = ma.fields.Date(allow_none=True, required=True)
    allocations = ma.fields.List(ma.fields.Nested(AllocationSchema), required=True)
    created_at = timestamp(required=True)


class PaymentFilterArgs(PageArgs):
    q = ma.fields.String(validate=ma.validate.Length(max=100),
                         metadata={"description": "Variable symbol or customer number (exact), payer or message (part)."})
    state = enum(PaymentState)
    source = enum(PaymentSource)
    customer_id = query_ident()
    received_from = ma.fields.Date()
    received_to = ma.fields.Date()


class PaymentCreateSchema(Schema):
    amount = decimal(required=True, metadata={"description": "Greater than zero, at most two decimals."})
    currency = enum(Currency, required=True)
    received_on = ma.fields.Date(metadata={"description": "The day the money was received."})
    received_at = timestamp(metadata={"description": "Or the moment (with its zone): its day in the portal's "
                                                     "time zone counts. received_on wins when both are sent."})
    source = ma.fields.Enum(PaymentSource, by_value=True, load_default=PaymentSource.BANK_IMPORT,
                            validate=ma.validate.OneOf([PaymentSource.BANK_IMPORT, PaymentSource.CARD]),
                            metadata={"description": "bank_import: a bank's transaction (a later statement "
                                                     "with the same reference adds nothing); card: a gateway's."})
    variable_symbol = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    constant_symbol = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=10))
    specific_symbol = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    counterparty_account = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=50))
    counterparty_name = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    bank_reference = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100),
                                      metadata={"description": "The bank's (or gateway's) id of the transaction; "
                                                               "one already recorded for the source is refused."})
    message = ma.fields.String(validate=ma.validate.Length(max=300), metadata={"description": "The payer's message."})


def _scoped_payments():
    """Unidentified payments, and those of the token's locations' customers."""
    stmt = (select(Payment).outerjoin(Customer, Customer.id == Payment.customer_id)
            .options(selectinload(Payment.allocations).selectinload(PaymentAllocation.invoice)))
    ids = current_user.location_ids
    if ids is not None:
        stmt = stmt.where(or_(Payment.customer_id.is_(None), Customer.location_id.in_(ids)))
    return stmt


def _payment_or_404(payment_id: int) -> Payment:
    payment = db.session.scalars(_scoped_payments().where(Payment.id == payment_id)).first()
    if payment is None:
        abort(404)
    return payment


def _filtered(stmt, q="", state=None, source=None, customer_id=None, received_from=None, received_to=None):
    q = (q or "").replace("\x00", "").strip()
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Payment.variable_symbol == q, Payment.counterparty_name.ilike(like),
                              Payment.message.ilike(like), Customer.customer_number == q))
    if state is not None:
        stmt = stmt.where(Payment.state == state)
    if source is not None:
        stmt = stmt.where(Payment.source == source)
    if customer_id is not None:
        stmt = stmt.where(Payment.customer_id == customer_id)
    if received_from is not None:
        stmt = stmt.where(Payment.received_on >= received_from)
    if received_to is not None:
        stmt = stmt.where(Payment.received_on <= received_to)
    return stmt


def _received_on(body: dict):
    """A payment is recorded by day (the portal's local day, as a bank statement books it)."""
    if body.get("received_on") is not None:
        return body["received_on"]
    return local_date(body["received_at"]) if body.get("received_at") is not None else None


@blp.route("")
@requires("payments.write")
@blp.arguments(PaymentFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(PaymentSchema))
def list_payments(limit=None, cursor=None, **filters):
    """List payments (ordered by id)."""
    return cursor_page(_filtered(_scoped_payments(), **filters), Payment.id, {"limit": limit, "cursor": cursor})


@blp.route("/unmatched")
@requires("payments.write")
@blp.arguments(PaymentFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(PaymentSchema))
def list_unmatched(limit=None, cursor=None, **filters):
    """List the payments waiting for staff: unmatched, or partly paired (ordered by id)."""
    stmt = _scoped_payments().where(Payment.state.in_(STAFF_QUEUE_STATES))
    return cursor_page(_filtered(stmt, **filters), Payment.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:payment_id>")
@requires("payments.write")
@blp.response(200, PaymentSchema)
def get_payment(payment_id: int):
    """Get a payment with its pairing."""
    return _payment_or_404(payment_id)


@blp.route("", methods=["POST"])
@requires("payments.write")
@blp.arguments(PaymentCreateSchema)
@blp.response(201, PaymentSchema)
def create_payment(body: dict):
    """Record money received and pair it like a statement line (payment.recorded)."""
    if current_user.location_ids is not None:
        abort(403)  # as the statement import: the variable symbol may point at any customer
    try:
        payment = record_payment(
            db.session, amount=body["amount"], currency=body["currency"], received_on=_received_on(body),
            actor=api_actor(), source=body["source"], variable_symbol=body.get("variable_symbol"),
            constant_symbol=body.get("constant_symbol"), specific_symbol=body.get("specific_symbol"),
            counterparty_account=body.get("counterparty_account"), counterparty_name=body.get("counterparty_name"),
            bank_reference=body.get("bank_reference"), message=body.get("message") or "")
    except DomainError as error:
        return refusal(error)
    try:
        db.session.commit()
    except IntegrityError:  # the same reference recorded at the same moment by another request
        db.session.rollback()
        return refusal(InvalidPayment(_("A payment with bank reference %(reference)s is already recorded.",
                                        reference=body.get("bank_reference")), field="bank_reference"))
    return _payment_or_404(payment.id), 201, {"Location": f"/api/v1/payments/{payment.id}"}
