"""Lists and details issue a fixed number of SQL statements, whatever their size."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from tests.factories import CustomerServiceFactory, ServiceDefinitionFactory
from tests.selfcare.conftest import make_invoice, make_payment


def _count(client, count_queries, url) -> int:
    client.get(url)  # warm-up: caches, the session touch
    with count_queries() as q:
        resp = client.get(url)
    assert resp.status_code == 200
    return q.count


def _grow(customer, n: int):
    invoices = [make_invoice(customer, issue_date=date(2025, 1, 1) + timedelta(days=i), lines=3) for i in range(n)]
    for i in range(n):
        CustomerServiceFactory(customer=customer, definition=ServiceDefinitionFactory())
    for inv in invoices:
        make_payment(customer, Decimal("50.00"), [(inv, Decimal("20.00"))])
    return invoices


def test_lists_and_details_do_not_grow_with_data(customer_client, customer_login, db, count_queries):
    customer = customer_login.customer
    small = _grow(customer, 5)
    db.commit()
    urls = ["/invoices", "/invoices?unpaid=y", "/services", "/payments", "/requests", f"/invoices/{small[0].id}"]
    few = {u: _count(customer_client, count_queries, u) for u in urls}
    big = make_invoice(customer, lines=60)
    for _ in range(10):
        make_payment(customer, Decimal("1.00"), [(big, Decimal("1.00"))])
    _grow(customer, 55)
    db.commit()
    many = {u: _count(customer_client, count_queries, u) for u in urls[:-1]}
    many[f"/invoices/{small[0].id}"] = _count(customer_client, count_queries, f"/invoices/{big.id}")
    assert [many[u] for u in urls] == [few[u] for u in urls]
