"""The staff dashboard: open to every operator, figures within the operator's locations,
links only to areas the operator may open, a fixed number of queries."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from portal.models import (
    ActorType,
    BillingRun,
    BillingRunState,
    CaseState,
    Currency,
    CustomerRequest,
    DebtRecoveryCase,
    Payment,
    PaymentSource,
    PaymentState,
    RequestState,
    ServiceState,
)
from tests.domain.lifecycle_fixtures import invoice
from tests.factories import CustomerFactory, CustomerServiceFactory, LocationFactory

TODAY = date.today()


def text(resp) -> str:
    return resp.get_data(as_text=True)


def _customer_with_debt(db, location, *, overdue="200.00", due="100.00", level=None):
    c = CustomerFactory(location=location)
    CustomerServiceFactory(customer=c)
    CustomerServiceFactory(customer=c, state=ServiceState.BLOCKED)
    invoice(c, issue_date=TODAY - timedelta(days=50), due_date=TODAY - timedelta(days=36), gross=overdue)
    invoice(c, issue_date=TODAY, due_date=TODAY + timedelta(days=14), gross=due)
    if level:
        db.add(DebtRecoveryCase(customer_id=c.id, state=CaseState.REMINDED, level=level, opened_on=TODAY))
    db.add(CustomerRequest(customer_id=c.id, kind="question", subject="Hello", state=RequestState.NEW,
                           created_by_type=ActorType.CUSTOMER, created_by_id=c.id))
    db.add(Payment(received_on=TODAY, amount=Decimal("10.00"), currency=Currency.CZK, source=PaymentSource.MANUAL,
                   customer_id=c.id, state=PaymentState.PARTIAL, unallocated=Decimal("4.00")))
    return c


@pytest.fixture
def two_locations(db):
    a, b = LocationFactory(name="Brno"), LocationFactory(name="Praha")
    _customer_with_debt(db, a, overdue="200.00", due="100.00", level=2)
    _customer_with_debt(db, b, overdue="7777.00", due="5555.00")
    db.add(BillingRun(period_start=TODAY.replace(day=1), period_end=TODAY.replace(day=28), issue_date=TODAY,
                      state=BillingRunState.DONE, started_by_type=ActorType.OPERATOR, started_by_name="Eva Run",
                      started_at=datetime.now(UTC), finished_at=datetime.now(UTC)))
    db.commit()
    return a, b


def test_every_operator_sees_the_dashboard(operator_client, two_locations):
    client = operator_client(rights=())
    resp = client.get("/staff/")
    assert resp.status_code == 200
    html = text(resp)
    for heading in ("Receivables", "Overdue by dunning level", "Services by state", "Requests waiting",
                    "Last billing run", "Unmatched payments"):
        assert heading in html
    assert "Eva Run" in html
    # No rights: figures, but no links into the areas.
    assert 'href="/staff/requests' not in html


def test_figures_are_limited_to_my_locations(operator_client, two_locations):
    brno, _praha = two_locations
    html = text(operator_client(rights=(), locations=[brno]).get("/staff/"))
    flat = re.sub(r"[\s\xa0\u202f,]", "", html)  # money without its separators
    assert "300.00" in flat and "200.00" in flat and "100.00" in flat
    assert "7777" not in flat and "5555" not in flat and "13332" not in flat
    assert "Reminder 2" in html and "Not reminded yet" not in html


def test_everything_for_an_operator_without_locations(operator_client, two_locations):
    html = text(operator_client(rights=()).get("/staff/"))
    assert "Reminder 2" in html and "Not reminded yet" in html


def test_links_to_areas_the_operator_may_open(app, operator_client, two_locations):
    html = text(operator_client(admin=True).get("/staff/"))
    assert 'href="/staff/requests?state=new"' in html
    assert 'href="/staff/requests?assignee=me"' in html
    for endpoint, path in (("staff.billing", "/staff/billing"), ("staff.payments", "/staff/payments"),
                           ("staff.dunning", "/staff/dunning"), ("staff.customers", "/staff/customers"),
                           ("staff.services", "/staff/services")):
        # Other areas are linked once they exist (has_endpoint), never broken links.
        assert (f'href="{path}' in html) == (endpoint in app.view_functions)


def test_requests_assigned_to_me_are_counted(operator_client, two_locations, db):
    client = operator_client(rights=("requests.handle",))
    req = db.query(CustomerRequest).first()
    req.assignee_id = client.operator.id
    req.state = RequestState.IN_PROGRESS
    db.commit()
    html = text(client.get("/staff/"))
    assert 'href="/staff/requests?assignee=me">1</a>' in html


def test_not_for_customers_nor_anonymous(client, customer_client):
    assert customer_client.get("/staff/").status_code == 403


def test_anonymous_goes_to_login(make_client, db):
    resp = make_client().get("/staff/")
    assert resp.status_code == 302 and "/staff/login" in resp.headers["Location"]


def test_queries_do_not_grow_with_customers(operator_client, db, count_queries):
    loc = LocationFactory()
    for _ in range(2):
        _customer_with_debt(db, loc, level=1)
    db.commit()
    client = operator_client(rights=("requests.handle",), locations=[loc])
    client.get("/staff/")

    def measure():
        with count_queries() as q:
            assert client.get("/staff/").status_code == 200
        return q.count

    few = measure()
    for i in range(48):
        _customer_with_debt(db, loc, level=(i % 3) or None)
    db.commit()
    assert measure() == few
