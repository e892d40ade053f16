"""The API's refusals as RFC 9457 problems: a rule's DomainError and a request that does not
match its schema are both 422 with the fields named — the same messages the forms show."""
from __future__ import annotations

import marshmallow as ma
from flask_babel import gettext as _

from portal.domain import DomainError
from portal.extensions import db
from portal.web.problems import problem

# webargs names where a value came from; the problem says it in OpenAPI's words.
_LOCATIONS = {"json": "body", "query": "query", "querystring": "query", "headers": "header",
              "view_args": "path", "path": "path"}


class FieldErrorSchema(ma.Schema):
    field = ma.fields.String(allow_none=True, required=True)
    # Where the value was: body, query, header or path (absent: the rule's own field).
    location = ma.fields.String(data_key="in")
    message = ma.fields.String(required=True)


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, with `errors` for the fields a refusal names."""

    type = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(FieldErrorSchema))


def _flatten(messages, prefix: str = ""):
    """marshmallow's nested {"field": ["msg"], "lines": {"0": {"qty": [...]}}} → dotted fields."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _flatten(value, name)
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            for message in messages:
                yield prefix, message
        else:
            for index, value in enumerate(messages):
                yield from _flatten(value, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield prefix, str(messages)


def validation_problem(error):
    """webargs' 422 (the request does not match the operation's schema)."""
    messages = (getattr(error, "data", None) or {}).get("messages") or {}
    errors = []
    for location, fields in messages.items():
        for field, message in _flatten(fields):
            errors.append({"field": field or None, "in": _LOCATIONS.get(location, location), "message": message})
    return problem(422, _("The request has invalid values."), errors=errors)


def refusal(error: DomainError, *, status: int = 422):
    """A rule refused: roll back (nothing half-saved), name the field(s)."""
    db.session.rollback()
    fields = getattr(error, "errors", None)
    if fields:
        errors = [{"field": name, "message": str(message)} for name, message in fields.items()]
    else:
        errors = [{"field": error.field, "message": str(error)}]
    return problem(status, str(error), errors=errors)
