"""schemathesis against the served OpenAPI document: every operation gets generated requests,
valid and invalid (a bounded number each); no answer is a server error and every answer
matches the document (status, content type, headers, body schema). Runs on SQLite and, with
PORTAL_TEST_DATABASE_URL, on PostgreSQL."""
from __future__ import annotations

import os
from datetime import UTC, date, datetime
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
from sqlalchemy import text

from portal import create_app
from portal.domain import agreements
from portal.domain.payments import record_payment
from portal.models import (
    ActorType,
    AddressKind,
    AgreementType,
    BillingRun,
    BillingRunState,
    CaseState,
    Customer,
    CustomerAddress,
    CustomerGroup,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Discount,
    DiscountKind,
    PriceChange,
    Reminder,
    RequestComment,
    RequestKind,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from portal.models.base import utcnow
from tests.domain.payments_fixtures import SYSTEM, make_credit_note, make_invoice
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

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
    _seed_usage(db, location)
    _seed_services_and_details(db)
    _seed_dunning_and_requests(db)
    db.commit()
    return make_token(operator)


def _seed_usage(db, location) -> None:
    tracker = UsageTracker(name="Data", vat_rate=Decimal("21.00"))
    db.add(tracker)
    db.flush()
    item = UsageItem(tracker_id=tracker.id, metric="data", name="Data", unit="GB", step=Decimal(1),
                     amount_per_step=Decimal("2.00"))
    service = CustomerServiceFactory(customer=CustomerFactory(location=location),
                                     definition=ServiceDefinitionFactory(usage_tracker_id=tracker.id))
    instance = UsageInstance(tracker_id=tracker.id, customer_service_id=service.id)
    db.add_all([item, instance])
    db.flush()
    db.add(UsageReading(instance_id=instance.id, item_id=item.id, value=Decimal(3),
                        measured_at=datetime(2026, 11, 2, tzinfo=UTC)))


def _seed_services_and_details(db) -> None:
    """Row 1 of contacts, addresses, customer groups, service events, price changes and
    discounts (definitions, service groups and billing plans come with the services)."""
    customer, service = db.get(Customer, 1), db.get(CustomerService, 1)
    ContactFactory(customer=customer)
    db.add(CustomerAddress(customer_id=customer.id, kind=AddressKind.POSTAL, street="Krátká 1", city="Brno",
                           postal_code="602 00", country="CZ"))
    group = CustomerGroup(name="VIP")
    db.add(group)
    customer.groups = [group]
    db.add(ServiceEvent(customer_service=service, kind=ServiceEventKind.ACTIVATED, from_state=ServiceState.ORDERED,
                        to_state=ServiceState.ACTIVE, effective_on=date(2024, 1, 1), done_at=utcnow(),
                        actor_type=ActorType.SYSTEM, actor_name="seed"))
    definition = db.get(ServiceDefinition, 1)
    db.add(PriceChange(definition=definition, new_price=Decimal("700.00"), effective_from=date(2025, 1, 1)))
    definition.allowed_targets = [db.get(ServiceDefinition, 2)]
    db.add(Discount(name="Loyalty", kind=DiscountKind.PERCENT, value=Decimal("10"), customer_id=customer.id,
                    valid_from=date(2024, 1, 1)))

def _seed_dunning_and_requests(db) -> None:
    """Case 1, reminder 1, request 1 and comment 1."""
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

