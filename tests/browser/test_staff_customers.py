"""Staff customers in a real browser: live search while typing, picking a result with the
keyboard (ArrowDown, Enter), tabs swapped by htmx with the address bar following, and view as
customer with its banner and the way back."""
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.domain.payments_fixtures import make_invoice
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def customers(db):
    novak = CustomerFactory(customer_number="100001", first_name="Jiří", last_name="Novák", name_key="novak")
    ContactFactory(customer=novak, value="jiri@example.com", value_key="jiri@example.com")
    CustomerFactory(location=novak.location, customer_number="100002", first_name="Jana", last_name="Nováková",
                    name_key="novakova")
    CustomerFactory(location=novak.location, customer_number="100003", last_name="Svoboda", name_key="svoboda")
    CustomerServiceFactory(customer=novak, variable_symbol="5550001")
    make_invoice(novak, 605, number="FV2025000001", variable_symbol="2025000001")
    CustomerLoginFactory(customer=novak)
    db.commit()
    return novak


def _log_in(page, operator):
    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_search_pick_with_the_keyboard_and_open_tabs(page, operator, customers):
    _log_in(page, operator)
    page.get_by_role("link", name="Customers").first.click()
    results = page.locator("#customer-results")
    expect(results).to_contain_text("Svoboda")
    search = page.get_by_role("searchbox", name="Search")
    search.press_sequentially("novak", delay=30)
    expect(results).not_to_contain_text("Svoboda")
    expect(results.get_by_role("link", name="Jiří Novák")).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=novak"))
    # ArrowDown walks into the results (first: Jiří Novák, then Jana Nováková); Enter opens.
    search.press("ArrowDown")
    expect(results.get_by_role("link", name="Jiří Novák")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(results.get_by_role("link", name="Jana Nováková")).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jiří Novák")
    expect(page.get_by_text("jiri@example.com")).to_be_visible()

    # Tabs: htmx swaps the panel and pushes the tab's own URL.
    page.get_by_role("link", name="Invoices", exact=True).last.click()
    expect(page.locator("#tab-panel")).to_contain_text("FV2025000001")
    expect(page).to_have_url(re.compile(rf"/staff/customers/{customers.id}/invoices$"))
    page.locator("nav.tabs").get_by_role("link", name="Services").click()
    expect(page.locator("#tab-panel")).to_contain_text("5550001")
    expect(page.locator('nav.tabs a[aria-current="page"]')).to_have_text("Services")
    page.go_back()
    expect(page).to_have_url(re.compile(r"/invoices$"))
    page.reload()
    expect(page.locator("#tab-panel")).to_contain_text("FV2025000001")
    assert page.console_errors == [], page.console_errors


def test_view_as_customer_and_back(page, operator, customers):
    _log_in(page, operator)
    page.goto(f"/staff/customers/{customers.id}")
    page.get_by_role("button", name="View as customer").click()
    banner = page.locator("#impersonation-banner")
    expect(banner).to_contain_text("You are viewing as Jiří Novák (100001), read-only.")
    banner.get_by_role("button", name="End").click()
    expect(page).to_have_url(re.compile(rf"/staff/customers/{customers.id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Jiří Novák")
    assert page.console_errors == [], page.console_errors
