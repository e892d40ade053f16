import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_customer_logs_in_sees_dashboard_and_logs_out(page, customer_login):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("E-mail").fill(customer_login.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(customer_login.customer.display_name)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    assert page.console_errors == [], page.console_errors


def test_wrong_password_shows_a_message_on_the_form(page, customer_login):
    page.goto("/login")
    page.get_by_label("E-mail").fill(customer_login.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Unknown e-mail or wrong password.")).to_be_visible()


def test_operator_logs_in_to_staff(page, operator):
    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.console_errors == [], page.console_errors
