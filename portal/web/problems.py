"""RFC 9457 problem details: the JSON face's errors. Here (not in the API) because the app's
error handlers answer every /api/ path with one, whichever layer raised the error."""
from __future__ import annotations

from http import HTTPStatus

from flask import Response, json, request

PROBLEM_TYPE = "application/problem+json"
API_PREFIX = "/api/"


def wants_problem() -> bool:
    return request.path.startswith(API_PREFIX)


def problem(status: int, detail: str | None = None, *, errors: list[dict] | None = None,
            title: str | None = None, headers=None, **extra) -> Response:
    """`errors`: [{"field": name, "message": text}] — the refusals a form shows beside its fields."""
    body = {"type": "about:blank", "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)
    for key, value in headers or ():
        response.headers[key] = value
    return response
