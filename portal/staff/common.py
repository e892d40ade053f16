"""What every staff area needs: the acting operator, location scoping, CSV export."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from flask import Response, abort, g, request
from flask_login import current_user
from sqlalchemy import select

from portal.domain.actors import Actor
from portal.extensions import db
from portal.models import Customer
from portal.web.access import in_operator_locations

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def operator_actor() -> Actor:
    """The logged-in operator as the actor of a domain change (history, audit)."""
    return Actor.operator(current_user, ip=request.remote_addr, request_id=g.get("request_id"))


def scoped_customer_or_404(customer_id) -> Customer:
    """A customer in one of the operator's locations, else 404 (as if it did not exist)."""
    try:
        ident = int(customer_id)
    except (TypeError, ValueError):
        abort(404)
    stmt = in_operator_locations(select(Customer).where(Customer.id == ident), Customer.location_id)
    customer = db.session.scalar(stmt)
    if customer is None:
        abort(404)
    return customer


def wants_csv() -> bool:
    """Every staff list is also a CSV export: the same URL with ?format=csv."""
    return request.args.get("format") == "csv"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):  # enums
        value = value.value
    text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    except ValueError:
        return False
    return True


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> Response:
    """A CSV download (UTF-8 with BOM so spreadsheets read Czech letters), streamed row by row;
    cells that a spreadsheet would run as formulas are quoted with a leading apostrophe."""

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(header)
        yield buffer.getvalue()
        for row in rows:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow([_cell(v) for v in row])
            yield buffer.getvalue()

    return Response(generate(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
