"""/api/v1/usage: usage trackers (read), readings sent in batches by meters and collectors
(portal.domain.usage: checked whole, saved whole, a retry changes nothing), readings listed."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, decimal, enum, ident, query_ident, timestamp, unit_price
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.api.scope import scoped
from portal.domain import DomainError
from portal.domain import usage as rules
from portal.extensions import db
from portal.models import (
    Aggregation,
    Customer,
    CustomerService,
    Rounding,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)

blp = Blueprint("api_usage", __name__, url_prefix="/api/v1/usage",
                description="Usage: metered trackers and the readings the rating engine bills.")


class UsageItemSchema(Schema):
    id = ma.fields.Integer(required=True)
    metric = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    unit = ma.fields.String(required=True)
    aggregation = enum(Aggregation, required=True)
    step = decimal(required=True)
    rounding = enum(Rounding, required=True)
    amount_per_step = unit_price(required=True)
    included_steps = ma.fields.Integer(required=True)


class UsageTrackerSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    vat_rate = decimal(required=True)
    items = ma.fields.List(ma.fields.Nested(UsageItemSchema), required=True)


class ReadingInSchema(Schema):
    service_id = ident(required=True)
    metric = ma.fields.String(required=True, validate=ma.validate.Length(1, 60))
    measured_at = timestamp(required=True)
    value = decimal(required=True)


class ReadingBatchSchema(Schema):
    readings = ma.fields.List(ma.fields.Nested(ReadingInSchema), required=True,
                              validate=ma.validate.Length(1, rules.MAX_BATCH),
                              metadata={"description": f"1 to {rules.MAX_BATCH} readings."})


class IngestResultSchema(Schema):
    received = ma.fields.Integer(required=True)
    stored = ma.fields.Integer(required=True)
    already_stored = ma.fields.Integer(required=True, metadata={
        "description": "Readings with the same value already stored for the same time (a retry)."})


class ReadingSchema(Schema):
    id = ma.fields.Integer(required=True)
    service_id = ma.fields.Integer(required=True)
    tracker_id = ma.fields.Integer(required=True)
    metric = ma.fields.String(required=True)
    measured_at = timestamp(required=True)
    value = decimal(required=True)
    created_at = timestamp(required=True)


class ReadingFilterArgs(PageArgs):
    service_id = query_ident()
    metric = ma.fields.String(validate=ma.validate.Length(1, 60))
    measured_from = timestamp(metadata={"description": "Readings at or after this time."})
    measured_before = timestamp(metadata={"description": "Readings before this time."})


@blp.route("/trackers")
@requires("customers.read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(UsageTrackerSchema))
def list_trackers(args: dict):
    """List usage trackers with their items (ordered by id)."""
    return cursor_page(select(UsageTracker).options(selectinload(UsageTracker.items)), UsageTracker.id, args)


@blp.route("/trackers/<int:tracker_id>")
@requires("customers.read")
@blp.response(200, UsageTrackerSchema)
def get_tracker(tracker_id: int):
    """Get a usage tracker with its items."""
    tracker = db.session.scalar(select(UsageTracker).options(selectinload(UsageTracker.items))
                                .where(UsageTracker.id == tracker_id))
    if tracker is None:
        abort(404)
    return tracker


def _reading_rows():
    return (select(UsageReading, UsageInstance.customer_service_id, UsageInstance.tracker_id, UsageItem.metric)
            .join(UsageInstance, UsageInstance.id == UsageReading.instance_id)
            .join(UsageItem, UsageItem.id == UsageReading.item_id)
            .join(CustomerService, CustomerService.id == UsageInstance.customer_service_id)
            .join(Customer, Customer.id == CustomerService.customer_id))


def _reading(row) -> dict:
    reading, service_id, tracker_id, metric = row
    return {"id": reading.id, "service_id": service_id, "tracker_id": tracker_id, "metric": metric,
            "measured_at": reading.measured_at, "value": reading.value, "created_at": reading.created_at}


@blp.route("/readings")
@requires("customers.read")
@blp.arguments(ReadingFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ReadingSchema))
def list_readings(limit=None, cursor=None, service_id=None, metric=None, measured_from=None,
                  measured_before=None):
    """List usage readings (ordered by id)."""
    stmt = scoped(_reading_rows(), Customer.location_id)
    if service_id is not None:
        stmt = stmt.where(UsageInstance.customer_service_id == service_id)
    if metric:
        stmt = stmt.where(UsageItem.metric == metric)
    if measured_from is not None:
        stmt = stmt.where(UsageReading.measured_at >= measured_from)
    if measured_before is not None:
        stmt = stmt.where(UsageReading.measured_at < measured_before)
    page = cursor_page(stmt, UsageReading.id, {"limit": limit, "cursor": cursor}, scalars=False)
    page["data"] = [_reading(row) for row in page["data"]]
    return page


@blp.route("/readings/<int:reading_id>")
@requires("customers.read")
@blp.response(200, ReadingSchema)
def get_reading(reading_id: int):
    """Get a usage reading."""
    row = db.session.execute(scoped(_reading_rows().where(UsageReading.id == reading_id),
                                    Customer.location_id)).first()
    if row is None:
        abort(404)
    return _reading(row)


@blp.route("/readings", methods=["POST"])
@requires("usage.write")
@blp.arguments(ReadingBatchSchema)
@blp.response(200, IngestResultSchema)
def ingest_readings(body: dict):
    """Send a batch of usage readings (all or nothing; a reading already stored is skipped)."""
    readings = [rules.Reading(**r) for r in body["readings"]]
    try:
        result = rules.ingest_readings(db.session, api_actor(), readings, location_ids=current_user.location_ids)
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return result

