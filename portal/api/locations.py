"""/api/v1/locations: the locations the token reaches (read)."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy import select

from portal.api.auth import requires
from portal.api.fields import Schema, enum, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.scope import one_or_404, scoped
from portal.models import Currency, Location

blp = Blueprint("api_locations", __name__, url_prefix="/api/v1/locations",
                description="Locations: where customers belong; tokens and operators are scoped to them.")


class LocationSchema(Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    currency = enum(Currency, required=True)
    partner_id = ma.fields.Integer(required=True)
    invoice_series_prefix = ma.fields.String(required=True)
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


@blp.route("")
@requires("customers.read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(LocationSchema))
def list_locations(args: dict):
    """List locations (ordered by id)."""
    return cursor_page(scoped(select(Location), Location.id), Location.id, args)


@blp.route("/<int:location_id>")
@requires("customers.read")
@blp.response(200, LocationSchema)
def get_location(location_id: int):
    """Get a location."""
    return one_or_404(select(Location).where(Location.id == location_id), Location.id)
