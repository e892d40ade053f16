"""Selfcare roles: a billing login sees invoices and payments, not services, plan changes,
cancellation or requests; a technical login the other way round; the nav and the overview
hide what the role cannot open; refusals are a 403 page that says why and change nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.models import CustomerRequest, LoginRole

BILLING_PAGES = ["/invoices", "/payments", "/statement"]
SERVICE_PAGES = ["/services", "/requests", "/cancel/services"]


def _billing_details(w):
    return [f"/invoices/{w.invoice.id}", f"/invoices/{w.invoice.id}/pdf"]


def _service_details(w):
    return [f"/services/{w.service.id}", f"/services/{w.service.id}/plan", f"/requests/{w.request.id}"]


@pytest.fixture
def as_role(customer_client, customer_login, mine, db):
    def make(role: LoginRole):
        customer_login.role = role
        db.commit()
        return customer_client
    return make


def test_billing_login_is_refused_services_and_plan_changes(as_role, mine, db):
    client = as_role(LoginRole.BILLING)
    for url in SERVICE_PAGES + _service_details(mine) + ["/cancel"]:
        resp = client.get(url)
        assert resp.status_code == 403, url
        assert "not open to your login" in resp.get_data(as_text=True), url
    requests_before = db.scalar(select(func.count(CustomerRequest.id)))
    assert client.post(f"/services/{mine.service.id}/plan",
                       data={"target_id": str(mine.target.id), "on": "2099-01-01"}).status_code == 403
    assert client.post("/requests", data={"kind": "question", "subject": "Hi", "message": "Hello"}).status_code == 403
    assert db.scalar(select(func.count(CustomerRequest.id))) == requests_before
    for url in BILLING_PAGES + _billing_details(mine) + ["/", "/profile", "/agreements"]:
        assert client.get(url).status_code == 200, url


def test_technical_login_is_refused_invoices_and_payments(as_role, mine):
    client = as_role(LoginRole.TECHNICAL)
    for url in BILLING_PAGES + _billing_details(mine):
        assert client.get(url).status_code == 403, url
    for url in SERVICE_PAGES + _service_details(mine) + ["/", "/profile"]:
        assert client.get(url).status_code == 200, url


def test_nav_and_overview_hide_what_the_role_cannot_open(as_role, mine):
    client = as_role(LoginRole.BILLING)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/invoices"' in html and 'href="/services"' not in html and 'href="/requests"' not in html
    assert "Your services" not in html and "Latest invoices" in html
    client = as_role(LoginRole.TECHNICAL)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/services"' in html and 'href="/invoices"' not in html and 'href="/payments"' not in html
    assert "Your services" in html and "Latest invoices" not in html and "What you owe" not in html


def test_owner_opens_everything(as_role, mine):
    client = as_role(LoginRole.OWNER)
    for url in BILLING_PAGES + SERVICE_PAGES + _billing_details(mine) + _service_details(mine):
        assert client.get(url).status_code == 200, url
