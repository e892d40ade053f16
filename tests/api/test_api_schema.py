"""schemathesis against the served OpenAPI document: every operation gets generated requests,
valid and invalid (a bounded number each); no answer is a server error and every answer
matches the document (status, content type, headers, body schema). Runs on SQLite and, with
PORTAL_TEST_DATABASE_URL, on PostgreSQL."""
from __future__ import annotations

import os
from datetime import date

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from portal import create_app
from portal.domain import agreements
from portal.domain.payments import record_payment
from portal.models import AgreementType, BillingRun, BillingRunState
from portal.models.base import utcnow
from tests.domain.payments_fixtures import SYSTEM, make_credit_note, make_invoice
from tests.factories import CustomerFactory, CustomerServiceFactory, LocationFactory

EXAMPLES = int(os.environ.get("PORTAL_API_FUZZ_EXAMPLES", "25"))
STATUSES: dict[str, list[int]] = {}  # label → the answers' status codes
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def _operation_labels() -> list[str]:
    """The operations, read from the document of an app built for that alone (the suite's own
    app is a fixture, which parametrisation cannot wait for)."""
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    document = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok().label for result in document.get_all_operations()]


@pytest.fixture
def fuzz_token(db, operator, make_token):
    """Rows the generated ids can find (ids start at 1 in clean tables), and a token for them."""
    location = LocationFactory()
    services = [CustomerServiceFactory(customer=CustomerFactory(location=location)) for _ in range(3)]
    _seed_billing(db, services[0])
    db.commit()
    return make_token(operator)


def _seed_billing(db, service) -> None:
    """Id 1 of every billing resource: an issued agreement (its PDF stored) and its type, a
    credit note (id 1) of an invoice (id 2) — credit notes are invoices, so the invoice takes
    the id after it —, a paired payment and a finished billing run."""
    customer = service.customer
    atype = AgreementType(name="Standard", code="SA", number_format="{year}/{seq:05d}", template="standard.html",
                          valid_from=date(2020, 1, 1))
    db.add(atype)
    db.flush()
    agreement = agreements.create_agreement(db, atype, customer, [service], actor=SYSTEM)
    agreements.issue_agreement(db, agreement, actor=SYSTEM)
    invoice = make_invoice(customer, "1210.00", id=2)
    make_credit_note(invoice, "121.00", id=1)
    if db.get_bind().dialect.name == "postgresql":  # ids given by hand leave the sequence behind
        db.execute(text("SELECT setval(pg_get_serial_sequence('invoice', 'id'), (SELECT max(id) FROM invoice))"))
    record_payment(db, amount="500.00", currency="CZK", received_on=date(2025, 1, 10), actor=SYSTEM,
                   variable_symbol=invoice.variable_symbol, bank_reference="SEED-1")
    db.add(BillingRun(period_start=date(2025, 1, 1), period_end=date(2025, 1, 31), issue_date=date(2025, 2, 1),
                      state=BillingRunState.DONE, started_by_type=SYSTEM.type, started_by_name="seed",
                      started_at=utcnow(), finished_at=utcnow(), totals_by_currency={
                          "CZK": {"net": "1000.00", "vat": "210.00", "gross": "1210.00", "invoices": 1}}))
    db.flush()


@pytest.mark.parametrize("label", _operation_labels())
def test_every_operation_conforms(label, app, db, fuzz_token):
    document = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operation = document.find_operation_by_label(label)
    # Ids found in the seeded rows too, not only random ones (nearly always 404).
    seeded_ids = {p.name: 1 for p in operation.path_parameters}
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.POSITIVE, path_parameters=seeded_ids),
                      operation.as_strategy(GenerationMode.NEGATIVE))
    headers = {"Authorization": f"Bearer {fuzz_token}"}

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        response = case.call(headers=headers)
        STATUSES.setdefault(label, []).append(response.status_code)
        db.rollback()  # the test's own session must not hold what a request left behind
        case.validate_response(response, checks=CHECKS, headers=headers)

    conforms()
    if label.startswith("GET "):  # reads found rows, not only refusals
        assert any(200 <= code < 300 for code in STATUSES[label]), STATUSES[label]

