"""Cursor pagination on an indexed key (the primary key): a page costs the same at the
millionth row as at the first, and rows added meanwhile neither repeat nor vanish."""
from __future__ import annotations

import base64
import binascii
from functools import cache

import marshmallow as ma
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select

from portal.extensions import db


class Cursor(ma.fields.String):
    """Opaque to clients: the last key of the previous page."""

    default_error_messages = {"invalid": _l("This cursor was not given by this API.")}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            key = int(base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4)).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise self.make_error("invalid") from exc
        if not 0 <= key < 2**63:
            raise self.make_error("invalid")
        return key


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


class PageArgs(ma.Schema):
    """?limit=&cursor= — every list takes them beside its own filters."""

    limit = ma.fields.Integer(validate=ma.validate.Range(1, 500),
                              metadata={"description": "Rows per page (default 50, at most 500)."})
    cursor = Cursor(metadata={"description": "`next_cursor` of the previous page."})


@cache
def page_schema(item: type[ma.Schema]) -> type[ma.Schema]:
    """{"data": [item…], "next_cursor": str | null} — one schema per item type."""
    return ma.Schema.from_dict(
        {"data": ma.fields.List(ma.fields.Nested(item), required=True),
         "next_cursor": ma.fields.String(allow_none=True, required=True,
                                         metadata={"description": "Pass as `cursor` for the next page; "
                                                                  "null on the last page."})},
        name=item.__name__.removesuffix("Schema") + "PageSchema",
    )


def cursor_page(stmt: Select, key, args: dict, *, scalars: bool = True) -> dict:
    """One page of `stmt` ordered by `key` (an indexed column), after the cursor."""
    limit = min(args.get("limit") or current_app.config["API_PAGE_SIZE"], current_app.config["API_MAX_PAGE_SIZE"])
    after = args.get("cursor")
    if after is not None:
        stmt = stmt.where(key > after)
    result = db.session.execute(stmt.order_by(None).order_by(key).limit(limit + 1))
    rows = list(result.scalars() if scalars else result)
    more = len(rows) > limit
    rows = rows[:limit]
    last = (rows[-1] if scalars else rows[-1][0]) if rows else None
    return {"data": rows, "next_cursor": encode_cursor(last.id) if more and last is not None else None}
