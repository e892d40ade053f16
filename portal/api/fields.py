"""The API's value conventions, once: money as decimal strings, timestamps ISO 8601 with their
zone, dates ISO 8601, enums as their string values, ids as integers."""
from __future__ import annotations

import marshmallow as ma

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
    """An id in a request: a positive 32-bit integer (no row has another)."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 2**31 - 1), **kwargs)


def query_id(**kwargs) -> ma.fields.Integer:
    """An id in a query string (text there, so not strict): a positive 32-bit integer."""
    return ma.fields.Integer(validate=ma.validate.Range(1, 2**31 - 1), **kwargs)


class Schema(ma.Schema):
    """Unknown fields in a request are refused, not silently dropped (a typo would lose data)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True
