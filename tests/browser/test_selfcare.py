"""The customer's face in a real browser: the dashboard, an invoice and its PDF, a plan change
previewed with htmx and confirmed, and a cancellation — logged in and through the e-mailed link."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.models import Language
from tests.conftest import PASSWORD
from tests.selfcare.conftest import build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def world(db, customer_login):
    customer_login.language = Language.EN
    w = build_world(customer_login.customer)
    db.commit()
    return w


def _log_in(page, login):
    page.goto("/login")
    page.get_by_label("E-mail").fill(login.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(login.customer.display_name)


def test_dashboard_invoice_and_pdf(page, customer_login, world):
    _log_in(page, customer_login)
    expect(page.get_by_role("heading", name="What you owe")).to_be_visible()
    expect(page.locator(".figure").first).to_contain_text("605")
    page.get_by_role("link", name="Invoices", exact=True).first.click()
    page.get_by_role("link", name=world.invoice.number, exact=True).click()
    expect(page.get_by_role("heading", name="How to pay")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Payment QR code"))).to_be_visible()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as fh:
        assert fh.read(5) == b"%PDF-"
    assert page.console_errors == [], page.console_errors


def test_plan_change_preview_and_confirm(page, customer_login, world):
    _log_in(page, customer_login)
    page.goto(f"/services/{world.service.id}")
    page.get_by_label("New plan").select_option(label="Internet 1000")
    # htmx swaps the preview in; no page load.
    expect(page.get_by_text("Internet 300 → Internet 1000")).to_be_visible()
    expect(page.get_by_text("Difference for the rest of this period")).to_be_visible()
    page.get_by_role("button", name="Confirm the change").click()
    expect(page.get_by_text(re.compile("Your plan changes to Internet 1000"))).to_be_visible()
    # A change on a later date is shown on the service that changes; one today, on its successor.
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(re.compile("Internet (300|1000)"))
    if "Internet 300" in heading.inner_text():
        expect(page.get_by_text(re.compile("Scheduled: changes to Internet 1000 on"))).to_be_visible()
    assert page.console_errors == [], page.console_errors


def test_cancel_logged_in(page, customer_login, world):
    _log_in(page, customer_login)
    page.get_by_role("link", name="Cancel a contract").click()
    expect(page.get_by_role("heading", name="Cancel a contract")).to_be_visible()
    expect(page.get_by_role("cell", name="30 days")).to_be_visible()
    page.get_by_role("button", name="Review the cancellation").click()
    expect(page.get_by_role("heading", name="Confirm the cancellation")).to_be_visible()
    page.get_by_role("button", name="Cancel the contract").click()
    expect(page.get_by_text(re.compile("is cancelled with the end date"))).to_be_visible()
    expect(page.get_by_text(re.compile("Scheduled: cancellation"))).to_be_visible()
    assert page.console_errors == [], page.console_errors


def test_cancel_logged_out_through_the_link(page, world, outbox):
    page.goto("/login")
    page.get_by_role("link", name="Cancel a contract").click()
    page.get_by_label("Customer number").fill(world.customer.customer_number)
    page.get_by_label("E-mail").fill(world.contact.value)
    page.get_by_role("button", name="Send me the link").click()
    expect(page.get_by_text("If the details match, we sent a link")).to_be_visible()
    link = re.search(r"https?://[^/\s]+(/cancel/link/\S+)", outbox()[-1].text).group(1)
    page.goto(link)
    page.get_by_role("button", name="Review the cancellation").click()
    page.get_by_role("button", name="Cancel the contract").click()
    expect(page.get_by_role("heading", name="Cancellation confirmed")).to_be_visible()
    assert page.console_errors == [], page.console_errors


def test_request_form_lists_the_plans_of_the_chosen_service(page, customer_login, world, db):
    from decimal import Decimal

    from tests.factories import CustomerServiceFactory, ServiceDefinitionFactory

    tv_plus = ServiceDefinitionFactory(customer_name="TV Plus", price=Decimal("300.00"))
    tv = CustomerServiceFactory(customer=world.customer, definition=ServiceDefinitionFactory(
        customer_name="TV Basic", price=Decimal("200.00"), allowed_targets=[tv_plus]))
    db.commit()
    _log_in(page, customer_login)
    page.goto("/requests")
    plans = page.get_by_label("New plan")
    expect(plans.locator("option")).to_have_count(1)  # "—" until a service is chosen
    page.get_by_label("Service").select_option(value=str(tv.id))
    # htmx swaps the list for the chosen service's targets.
    expect(page.get_by_label("New plan").locator("option", has_text="TV Plus")).to_have_count(1)
    expect(page.get_by_label("New plan").locator("option", has_text="Internet 1000")).to_have_count(0)
    page.get_by_label("Service").select_option(value=str(world.service.id))
    expect(page.get_by_label("New plan").locator("option", has_text="Internet 1000")).to_have_count(1)
    expect(page.get_by_label("New plan").locator("option", has_text="TV Plus")).to_have_count(0)
    assert page.console_errors == [], page.console_errors
