"""What every staff area needs: the acting operator, location scoping, CSV export."""
from __future__ import annotations

import csv
import io
import tempfile
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


def get_or_404(model, ident: int):
    """db.get_or_404 for ids from the URL: a number no row can have is a 404 too."""
    if not 0 < ident <= 2**31 - 1:
        abort(404)
    return db.get_or_404(model, ident)


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


# Up to this size the export is kept in memory, past it in a temporary file.
_CSV_SPOOL_BYTES = 1 << 20
_CSV_CHUNK_BYTES = 64 * 1024


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> Response:
    """A CSV download (UTF-8 with BOM so spreadsheets read Czech letters); cells that a
    spreadsheet would run as formulas are quoted with a leading apostrophe.

    `rows` is read whole here, inside the request, while its session is open: ORM rows
    (lazy loads included) become plain text before the view returns. A generator over a
    `yield_per` result keeps memory flat; the text is spooled (memory, then a temporary
    file) and the response only sends bytes, with their length, so a download that stops
    early is visibly incomplete."""
    spool = tempfile.SpooledTemporaryFile(max_size=_CSV_SPOOL_BYTES)  # noqa: SIM115 — closed with the response
    try:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            if buffer.tell() >= _CSV_CHUNK_BYTES:
                spool.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
        spool.write(buffer.getvalue().encode("utf-8"))
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def send():
        with spool:
            while chunk := spool.read(_CSV_CHUNK_BYTES):
                yield chunk

    response = Response(send(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Content-Length": str(size)})
    response.call_on_close(spool.close)  # also when the body is never read (HEAD, a dropped client)
    return response
