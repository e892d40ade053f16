"""Browser: an operator opens a service page, blocks the service with a reason (the inline
HTMX form), and sees the new history entry and the audit entry without leaving the page."""
import re

import pytest
from playwright.sync_api import expect

from portal.models import ServiceState
from tests.conftest import PASSWORD
from tests.factories import CustomerFactory, CustomerServiceFactory, ServiceDefinitionFactory

pytestmark = pytest.mark.browser


def test_operator_blocks_a_service_and_sees_history_and_audit(page, operator, db):
    service = CustomerServiceFactory(customer=CustomerFactory(), definition=ServiceDefinitionFactory(name="Fibre 300"),
                                     state=ServiceState.ACTIVE)
    db.commit()
    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto("/staff/services")
    page.get_by_role("link", name=re.compile(r"Fibre 300")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Fibre 300")
    expect(page.locator("#service-state")).to_contain_text("Active")

    page.locator("#service-panel").get_by_role("link", name="Block", exact=True).click()
    reason = page.get_by_label("Reason")
    expect(reason).to_be_visible()
    page.get_by_role("button", name="Block").click()  # no reason: the message appears next to the field
    expect(page.get_by_text("Give a reason.")).to_be_visible()
    page.get_by_label("Reason").fill("Reported abuse from this line")
    page.get_by_role("button", name="Block").click()

    expect(page.locator("#service-state")).to_contain_text("Blocked")
    expect(page.locator("#history-table")).to_contain_text("Reported abuse from this line")
    expect(page.locator("#audit-table")).to_contain_text("service.blocked")
    expect(page).to_have_url(re.compile(rf"/staff/services/{service.id}$"))
    page.reload()
    expect(page.locator("#history-table")).to_contain_text("Blocked")
    expect(page.locator("#audit-table")).to_contain_text(operator.name)
    # The refused empty reason answered 422 on purpose (the browser logs every 4xx); nothing else.
    errors = [e for e in page.console_errors if "status of 422" not in e]
    assert errors == [], errors


def _log_in(page, operator):
    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_a_step_opened_as_its_own_page_is_carried_out(page, operator, db):
    """The Block link opened in a new tab (or a bookmark): the step page has no service
    panel, so its form must post itself and land on the service page."""
    service = CustomerServiceFactory(customer=CustomerFactory(), definition=ServiceDefinitionFactory(name="Fibre 600"),
                                     state=ServiceState.ACTIVE)
    db.commit()
    _log_in(page, operator)
    html_errors = []
    page.on("console", lambda m: html_errors.append(m.text) if "targetError" in m.text else None)
    page.goto(f"/staff/services/{service.id}/block")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Fibre 600")
    page.get_by_role("button", name="Block").click()  # no reason: the page again, the message at the field
    expect(page.get_by_text("Give a reason.")).to_be_visible()
    page.get_by_label("Reason").fill("Opened in a new tab")
    page.get_by_role("button", name="Block").click()
    expect(page).to_have_url(re.compile(rf"/staff/services/{service.id}$"))
    expect(page.locator("#service-state")).to_contain_text("Blocked")
    expect(page.locator("#history-table")).to_contain_text("Opened in a new tab")
    assert html_errors == []
    errors = [e for e in page.console_errors if "status of 422" not in e]
    assert errors == [], errors


def test_a_two_step_change_opened_as_its_own_page_confirms(page, operator, db):
    service = CustomerServiceFactory(customer=CustomerFactory(), definition=ServiceDefinitionFactory(name="Fibre 700"),
                                     state=ServiceState.ACTIVE)
    db.commit()
    _log_in(page, operator)
    page.goto(f"/staff/services/{service.id}/cancel")
    page.get_by_label("Reason").fill("Moving away")
    page.get_by_label(re.compile("notice", re.I)).check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("cannot be undone")).to_be_visible()
    page.get_by_role("button", name=re.compile("Confirm")).click()
    expect(page).to_have_url(re.compile(rf"/staff/services/{service.id}$"))
    expect(page.get_by_text(re.compile(r"The step is scheduled for|Done: the service is"))).to_be_visible()
    errors = [e for e in page.console_errors if "status of 422" not in e]
    assert errors == [], errors
