"""The API's value conventions, once: money as decimal strings, timestamps ISO 8601 with their
zone, dates ISO 8601, enums as their string values, ids as integers."""
from __future__ import annotations

import marshmallow as ma

Money = ma.fields.Decimal


def money(**kwargs) -> ma.fields.Decimal:
    return ma.fields.Decimal(as_string=True, places=2, **kwargs)


def unit_price(**kwargs) -> ma.fields.Decimal:
    return ma.fields.Decimal(as_string=True, places=4, **kwargs)


def timestamp(**kwargs) -> ma.fields.AwareDateTime:
    return ma.fields.AwareDateTime(format="iso", **kwargs)


def enum(cls, **kwargs) -> ma.fields.Enum:
    return ma.fields.Enum(cls, by_value=True, **kwargs)


def ident(**kwargs) -> ma.fields.Integer:
    """An id in a request: a positive 32-bit integer (no row has another)."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 2**31 - 1), **kwargs)


class Schema(ma.Schema):
    """Unknown fields in a request are refused, not silently dropped (a typo would lose data)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True
