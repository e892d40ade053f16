"""schemathesis against the served OpenAPI document: every operation gets generated requests,
valid and invalid (a bounded number each); no answer is a server error and every answer
matches the document (status, content type, headers, body schema). Runs on SQLite and, with
PORTAL_TEST_DATABASE_URL, on PostgreSQL."""
from __future__ import annotations

import os
from datetime import date
from decimal import Decimal

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

from portal import create_app
from portal.models import (
    ActorType,
    CaseState,
    Customer,
    CustomerRequest,
    DebtRecoveryCase,
    Reminder,
    RequestComment,
    RequestKind,
)
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
    for _ in range(3):
        CustomerServiceFactory(customer=CustomerFactory(location=location))
    db.flush()
    customer = db.get(Customer, 1)
    case = DebtRecoveryCase(customer_id=customer.id, state=CaseState.REMINDED, level=1, opened_on=date(2026, 1, 20))
    db.add(case)
    db.flush()
    db.add(Reminder(case_id=case.id, customer_id=customer.id, level=1, issued_on=date(2026, 1, 20),
                    pay_by=date(2026, 1, 27), amount_due=Decimal("605.00")))
    request = CustomerRequest(customer_id=customer.id, kind=RequestKind.QUESTION, subject="Slow internet",
                              created_by_type=ActorType.CUSTOMER, created_by_id=customer.id)
    db.add(request)
    db.flush()
    db.add(RequestComment(request_id=request.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                          author_name=customer.display_name, body="It is slow after 8 pm."))
    db.commit()
    return make_token(operator)


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

