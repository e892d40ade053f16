"""Every staff list's CSV export, downloaded whole as a browser does: the request's context
(and its database session) is gone before the body is read, so a CSV built lazily from ORM
rows would stop after its header with a 200. Each body is parsed and its rows counted against
the list."""
from __future__ import annotations

import contextvars
import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import template_rendered
from sqlalchemy import func, select

from portal.demo import load_demo_data
from portal.models import (
    BlockingException,
    Customer,
    CustomerRequest,
    Discount,
    ExceptionKind,
)

TODAY = date(2026, 11, 26)

# The paginated lists: the page says "(N items)" and the CSV must have N rows.
PAGINATED = [
    "/staff/customers",
    "/staff/services",
    "/staff/agreements",
    "/staff/billing/runs",
    "/staff/billing/invoices",
    "/staff/payments",
    "/staff/payments/unmatched",
    "/staff/dunning/cases",
    "/staff/dunning/reminders",
    "/staff/requests",
    "/staff/audit",
    "/staff/catalogue/discounts",
]


@pytest.fixture
def world(db):
    load_demo_data(db, customers=12, seed=7, today=TODAY, months=6)
    customer = db.scalar(select(Customer).order_by(Customer.id))
    for i in range(3):
        db.add(BlockingException(customer_id=customer.id, kind=ExceptionKind.NEVER_BLOCK,
                                 until=TODAY + timedelta(days=30 + i), reason=f"Exception {i}",
                                 created_by_name="Test"))
    db.commit()
    return customer


def fetch_whole(client, url: str):
    """GET `url` and read its whole body outside any application context (as the WSGI
    server does): the request gets its own context and session, torn down before the body
    is read."""
    def run():
        resp = client.get(url)
        return resp, resp.get_data(as_text=True)

    return contextvars.Context().run(run)


def csv_rows(client, url: str) -> list[list[str]]:
    sep = "&" if "?" in url else "?"
    resp, text = fetch_whole(client, f"{url}{sep}format=csv")
    assert resp.status_code == 200, url
    assert resp.mimetype == "text/csv", url
    assert text.startswith("\ufeff"), url
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows, url
    header, *data = rows
    assert all(len(r) == len(header) for r in data), url
    return data


def listed_total(client, url: str, key: str = "page") -> int:
    """How many rows the list page shows in all (its pagination's total, or the length of
    the sequence it renders as `key`)."""
    seen = []

    def record(sender, template, context, **extra):
        if key in context:
            seen.append(context[key])

    with template_rendered.connected_to(record):
        resp, _ = fetch_whole(client, url)
    assert resp.status_code == 200, url
    assert seen, f"{url}: the page rendered no {key}"
    return seen[0].total if key == "page" else len(seen[0])


@pytest.mark.parametrize("url", PAGINATED)
def test_paginated_list_csv_has_every_row(staff_client, world, url):
    total = listed_total(staff_client, url)
    assert total > 0, f"{url}: the test needs rows"
    assert len(csv_rows(staff_client, url)) == total, url


# The lists shown whole: the name of the sequence the page renders.
UNPAGINATED = {
    "/staff/catalogue": "definitions",
    "/staff/agreements/types": "types",
    "/staff/customers/groups": "rows",
    "/staff/operators": "operators",
    "/staff/operators/roles": "roles",
}


@pytest.mark.parametrize("url", UNPAGINATED)
def test_unpaginated_list_csv_has_every_row(staff_client, world, url):
    total = listed_total(staff_client, url, UNPAGINATED[url])
    assert total > 0, f"{url}: the test needs rows"
    assert len(csv_rows(staff_client, url)) == total, url


def test_blocking_exceptions_csv_has_every_row(staff_client, world, db):
    # The export is the history: revoked exceptions too (the list shows them with ?all=1).
    first = db.scalar(select(BlockingException).order_by(BlockingException.id))
    first.revoked_at = datetime.now(UTC)
    db.commit()
    total = listed_total(staff_client, "/staff/dunning/exceptions?all=1")
    assert total > 1
    assert len(csv_rows(staff_client, "/staff/dunning/exceptions")) == total


def test_customer_tab_csvs_have_every_row(staff_client, world, db):
    # The customer with the most requests has rows in every tab.
    busiest = db.scalar(select(CustomerRequest.customer_id).group_by(CustomerRequest.customer_id)
                        .order_by(func.count().desc()).limit(1)) or world.id
    totals = {}
    for tab in ("services", "agreements", "invoices", "payments", "requests", "audit"):
        url = f"/staff/customers/{busiest}/{tab}"
        totals[tab] = listed_total(staff_client, url)
        assert len(csv_rows(staff_client, url)) == totals[tab], url
    assert totals["services"] and totals["invoices"] and totals["audit"], totals


def test_large_export_is_whole(staff_client, world, db):
    """More rows than one page and than a fetch batch: the file still ends with the last one."""
    customer = world
    for i in range(1200):
        db.add(Discount(customer_id=customer.id, name=f"Discount {i:04d}", kind="percent", value=1,
                        valid_from=TODAY))
    db.commit()
    total = listed_total(staff_client, "/staff/catalogue/discounts")
    assert total >= 1200
    rows = csv_rows(staff_client, "/staff/catalogue/discounts")
    assert len(rows) == total
