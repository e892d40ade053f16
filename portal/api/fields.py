"""The API's value conventions, once: money as decimal strings, timestamps ISO 8601 with their
zone, dates ISO 8601, enums as their string values, ids as integers."""
from __future__ import annotations

import marshmallow as ma
from flask_babel import lazy_gettext as _l

DECIMAL_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,4})?$"


class DecimalString(ma.fields.Decimal):
    """A decimal as a JSON string ("1234.50"): exact, unlike a JSON number. Requests may send
    a number too; infinities and NaN are refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] = {"pattern": DECIMAL_PATTERN, "examples": ["1234.50"], **kwargs["metadata"]}
        super().__init__(as_string=True, allow_nan=False, **kwargs)


def money(**kwargs) -> DecimalString:
    return DecimalString(places=2, **kwargs)


def unit_price(**kwargs) -> DecimalString:
    return DecimalString(places=4, **kwargs)


def decimal(**kwargs) -> DecimalString:
    """A quantity or reading, as exact as it was sent."""
    return DecimalString(**kwargs)


def timestamp(**kwargs) -> ma.fields.AwareDateTime:
    return ma.fields.AwareDateTime(format="iso", **kwargs)


def enum(cls, **kwargs) -> ma.fields.Enum:
    return ma.fields.Enum(cls, by_value=True, **kwargs)


def ident(**kwargs) -> ma.fields.Integer:
    """An id in a JSON body: a positive 32-bit integer (no row has another); "5" is refused."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 2**31 - 1), **kwargs)


NUL_REFUSED = _l("Text cannot contain the NUL character.")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(isinstance(v, str) and "\x00" in v for v in value)
    return False


class Schema(ma.Schema):
    """Unknown fields in a request are refused, not silently dropped (a typo would lose data)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def _refuse_nul(self, data, **kwargs):
        # PostgreSQL text cannot hold NUL: a 422 naming the field, not a failure in the
        # database (the pages replace it in form data; an API client is told).
        if isinstance(data, dict):
            bad = [key for key, value in data.items() if _has_nul(value)]
            if bad:
                raise ma.ValidationError({key: [str(NUL_REFUSED)] for key in bad})
        return data


def query_ident(**kwargs) -> ma.fields.Integer:
    """An id in a query string (?location_id=3): the text of a positive 32-bit integer. A query
    value is always text, so `ident()` (strict: JSON integers only) would refuse every one."""
    return ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1), **kwargs)
