"""/api/v1: the JSON face. Other systems call the same domain rules the pages call, as an
operator narrowed by a token (portal/api/auth.py): rights, location scope, validation and the
audit log apply unchanged. The OpenAPI 3.1 document is generated from the schemas that
validate the requests (flask-smorest) and served at /api/v1/openapi.json."""
from __future__ import annotations

from flask import Flask, current_app
from flask_smorest import Api
from flask_smorest.spec.plugins import integerconverter2paramschema
from werkzeug.exceptions import UnprocessableEntity

from portal.api import (
    agreements,
    billing_runs,
    catalogue,
    customer_details,
    customers,
    dunning,
    invoices,
    locations,
    payments,
    reference,
    requests,
    services,
    usage,
)
from portal.api.auth import Unauthorized, authenticate, rate_limit_key, record_use, unauthorized
from portal.api.fields import DecimalString
from portal.api.idempotency import after_write, before_write
from portal.api.problems import ProblemSchema, refusal, validation_problem
from portal.domain import DomainError
from portal.extensions import csrf, limiter
from portal.web import RowIdConverter
from portal.web.problems import PROBLEM_TYPE

# Each resource module has one flask-smorest Blueprint.
RESOURCES = (customers.blp, locations.blp, customer_details.blp, customer_details.groups_blp, services.blp,
             catalogue.blp, agreements.blp, agreements.types_blp, invoices.blp, invoices.credit_notes_blp,
             billing_runs.blp, payments.blp, usage.blp, dunning.blp, requests.blp)
API_PREFIX = "/api/v1"


class PortalApi(Api):
    """flask-smorest, minus its app-wide error handler (the pages keep their HTML errors; the
    app's handlers answer /api/ paths with problem+json, portal/web/problems.py)."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self):
        pass

    def _register_responses(self):
        self.DEFAULT_RESPONSE_CONTENT_TYPE = PROBLEM_TYPE
        try:
            super()._register_responses()
        finally:
            self.DEFAULT_RESPONSE_CONTENT_TYPE = "application/json"


def _api_limit():
    return current_app.config["API_RATE_LIMIT"]


def _prepare(blp) -> None:
    """Once per blueprint object: the modules' blueprints serve every app built (tests build
    many), and a limit added twice would count every request twice."""
    if getattr(blp, "_portal_prepared", False):
        return
    blp.before_request(authenticate)
    blp.before_request(before_write)
    blp.after_request(after_write)
    blp.after_request(record_use)
    blp.register_error_handler(Unauthorized, unauthorized)
    blp.register_error_handler(UnprocessableEntity, validation_problem)
    # A view that did not catch its rule's refusal: still a 422 naming the field.
    blp.register_error_handler(DomainError, refusal)
    csrf.exempt(blp)  # a bearer token, never a cookie: nothing for a third site to forge
    limiter.shared_limit(_api_limit, scope="api", key_func=rate_limit_key)(blp)
    blp._portal_prepared = True


def init_api(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "Portal API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = PortalApi(app, spec_kwargs={
        "info": {"description": "Customers, services, catalogue, agreements, billing, payments, usage, "
                                "dunning and requests of the portal. Authenticate with "
                                "`Authorization: Bearer <token>` (staff: API tokens)."},
        "servers": [{"url": "/"}],
    })
    api.register_field(DecimalString, "string", "decimal")
    api.register_converter(RowIdConverter, integerconverter2paramschema)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearer": []}]
    for blp in RESOURCES:
        _prepare(blp)
        api.register_blueprint(blp)
    app.register_blueprint(reference.bp, url_prefix=API_PREFIX)
