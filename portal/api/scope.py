"""Rows the token may see: by id within its operator's (narrowed) locations, else 404 — as if
the row did not exist, like the staff face."""
from __future__ import annotations

from flask import abort
from sqlalchemy import Select

from portal.extensions import db
from portal.web.access import in_operator_locations


def one_or_404(stmt: Select, location_column):
    row = db.session.scalar(in_operator_locations(stmt, location_column))
    if row is None:
        abort(404)
    return row


def scoped(stmt: Select, location_column) -> Select:
    return in_operator_locations(stmt, location_column)
