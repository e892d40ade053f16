"""Browser: the operator's everyday path end to end — search a customer, open them, go to
their service, block it with a reason; the service history, the customer's audit tab and the
audit log all show it."""
import re

import pytest
from playwright.sync_api import expect

from portal.models import ServiceState
from tests.conftest import PASSWORD
from tests.factories import CustomerFactory, CustomerServiceFactory, ServiceDefinitionFactory

pytestmark = pytest.mark.browser


def test_search_customer_block_service_then_history_and_audit(page, operator, db):
    customer = CustomerFactory(customer_number="310001", first_name="Radka", last_name="Kopecká",
                               name_key="kopecka")
    CustomerFactory(location=customer.location, customer_number="310002", last_name="Dvořák", name_key="dvorak")
    service = CustomerServiceFactory(customer=customer, state=ServiceState.ACTIVE,
                                     definition=ServiceDefinitionFactory(name="Fibre 500"))
    db.commit()

    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # Search while typing, open the customer.
    page.get_by_role("link", name="Customers").first.click()
    page.get_by_role("searchbox", name="Search").press_sequentially("kopec", delay=30)
    results = page.locator("#customer-results")
    expect(results).not_to_contain_text("Dvořák")
    results.get_by_role("link", name="Radka Kopecká").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Radka Kopecká")

    # Services tab → the service page → block with a reason.
    page.locator("nav.tabs").get_by_role("link", name="Services").click()
    page.locator("#tab-panel").get_by_role("link", name="Fibre 500").click()
    expect(page).to_have_url(re.compile(rf"/staff/services/{service.id}$"))
    page.locator("#service-panel").get_by_role("link", name="Block", exact=True).click()
    page.get_by_label("Reason").fill("Unpaid since spring, agreed by phone")
    page.get_by_role("button", name="Block").click()
    expect(page.locator("#service-state")).to_contain_text("Blocked")
    expect(page.locator("#history-table")).to_contain_text("Unpaid since spring, agreed by phone")

    # The customer's audit tab and the audit log show who did it.
    page.goto(f"/staff/customers/{customer.id}/audit")
    expect(page.locator("#tab-panel")).to_contain_text("service.blocked")
    expect(page.locator("#tab-panel")).to_contain_text(operator.name)
    page.goto("/staff/audit?action=service.blocked")
    expect(page.locator("main")).to_contain_text(operator.name)
    assert page.console_errors == [], page.console_errors
