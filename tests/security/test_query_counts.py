"""Query-count guards: every selfcare page (found by walking app.url_map, not listed by hand)
issues the same number of SQL statements for a customer with one of everything and for one
with a lot — many services, invoices with many lines, payments, requests with long threads,
agreements with annexes, service history. A page whose count grows with the data has an
N+1 and would not survive 100 000 customers."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from portal.models import CaseState, Language, RequestComment, ServiceEventKind
from tests.conftest import login_customer
from tests.factories import CustomerLoginFactory, CustomerServiceFactory, ServiceDefinitionFactory
from tests.selfcare.conftest import (
    build_world,
    make_agreement,
    make_attachment,
    make_event,
    make_invoice,
    make_payment,
    make_reminder,
    make_request,
    make_usage,
)

# Route arguments filled from the customer's own rows.
ARGUMENTS = {"service_id": "service", "agreement_id": "agreement", "invoice_id": "invoice", "request_id": "request",
             "reminder_id": "reminder",
             "attachment_id": "attachment"}
# GET routes that take no customer data, with the reason.
NOT_CUSTOMER_DATA = {
    "selfcare.cancel_link": "a one-time token from an e-mail, for a visitor who is not logged in",
    "selfcare.pay": "a signed pay link for a visitor who is not logged in (tests/selfcare/test_pay_page.py counts it)",
}
# Further views of the same routes (filters and previews).
VARIANTS = [
    "/invoices?unpaid=y",
    "/invoices?year=2026",
    "/invoices?page=2",
    "/statement?start=2025-01-01&end=2026-12-31",
    "/services/{service}/plan?target_id={target}&on=2099-01-01",
]


def selfcare_get_urls(app, world) -> list[str]:
    ids = {"service": world.service.id, "agreement": world.agreement.id, "invoice": world.invoice.id,
           "request": world.request.id, "target": world.target.id,
           "reminder": world.reminder.id, "attachment": world.attachment.id}
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("selfcare.") or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in NOT_CUSTOMER_DATA:
            continue
        missing = set(rule.arguments) - set(ARGUMENTS)
        assert not missing, f"{rule.rule}: teach this test where {missing} comes from"
        urls.append(adapter.build(rule.endpoint, {a: ids[ARGUMENTS[a]] for a in rule.arguments}))
    return sorted(urls) + [v.format(**ids) for v in VARIANTS]


def _customer(db):
    login = CustomerLoginFactory(language=Language.EN)
    db.flush()
    return login


def _grow(world, db, n: int = 12):
    """Make every list long and every detail big for this customer."""
    c = world.customer
    extra_services = [CustomerServiceFactory(customer=c, definition=ServiceDefinitionFactory()) for _ in range(n)]
    for i in range(n * 3):
        inv = make_invoice(c, issue_date=date(2025, 1, 1) + timedelta(days=i * 7), lines=3, service=world.service)
        make_payment(c, Decimal("10.00"), [(inv, Decimal("10.00"))])
    big = make_invoice(c, gross=Decimal("6050.00"), issue_date=date(2026, 4, 2), lines=40, service=world.service)
    for _ in range(n):
        make_payment(c, Decimal("5.00"), [(big, Decimal("5.00"))])
    world.invoice = big
    agreement = make_agreement(c, [world.service, *extra_services])
    for _ in range(n // 2):
        make_agreement(c, extra_services[:2], parent=agreement)
    world.agreement = agreement
    request = make_request(c, service=world.service)
    db.add_all([RequestComment(request_id=request.id, author_type="customer", author_id=c.id,
                               author_name=c.display_name, body=f"More {i}", internal=False) for i in range(n * 2)])
    for _ in range(n):
        make_request(c)
    world.request = request
    world.attachment = make_attachment(request)
    for i in range(n):
        make_attachment(request, data=f"%PDF-1.4 {i}".encode())
    for i in range(n):
        make_event(world.service, ServiceEventKind.BLOCKED if i % 2 else ServiceEventKind.UNBLOCKED,
                   date(2025, 1, 1) + timedelta(days=i))
    make_usage(world.service)
    for i in range(n):
        make_reminder(c, [big, world.paid_invoice], level=1 + i % 3, state=CaseState.CLOSED)
    db.flush()


def _count(client, count_queries, url: str) -> tuple[int, int]:
    client.get(url)  # warm-up: stored PDFs, caches, the session touch
    with count_queries() as q:
        status = client.get(url).status_code
    return status, q.count


@pytest.fixture
def small_and_large(db, make_client):
    small_login, large_login = _customer(db), _customer(db)
    small = build_world(small_login.customer)
    make_usage(small.service)  # the same shape as the large customer's, only less of it
    large = build_world(large_login.customer)
    _grow(large, db)
    db.commit()
    clients = []
    for login in (small_login, large_login):
        client = make_client()
        assert login_customer(client, login.email).status_code == 302
        clients.append(client)
    return (clients[0], small), (clients[1], large)


def test_the_walk_finds_the_selfcare_pages(app, small_and_large):
    (_c, world), _ = small_and_large
    urls = selfcare_get_urls(app, world)
    for expected in ("/", "/invoices", f"/invoices/{world.invoice.id}", f"/invoices/{world.invoice.id}/pdf",
                     f"/services/{world.service.id}", f"/requests/{world.request.id}", "/profile", "/security"):
        assert expected in urls


def test_every_selfcare_page_issues_as_many_statements_for_a_large_customer(app, small_and_large, count_queries):
    (small_client, small), (large_client, large) = small_and_large
    small_urls, large_urls = selfcare_get_urls(app, small), selfcare_get_urls(app, large)
    differences = []
    ok_pages = 0
    for small_url, large_url in zip(small_urls, large_urls, strict=True):
        s_status, s_count = _count(small_client, count_queries, small_url)
        l_status, l_count = _count(large_client, count_queries, large_url)
        assert s_status == l_status, (small_url, s_status, large_url, l_status)
        assert s_status < 500, small_url
        ok_pages += s_status == 200
        if s_count != l_count:
            differences.append(f"{large_url}: {s_count} statements for the small customer, {l_count} for the large")
    assert not differences, "\n".join(differences)
    assert ok_pages >= len(small_urls) - 3  # the walk really rendered the pages
