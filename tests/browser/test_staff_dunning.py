"""A dunning run in a real browser: choose the date, preview (a GET: no CSRF token, nothing
written), then run (a POST with its token) and see the result the preview announced."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.models import Reminder
from tests.conftest import PASSWORD
from tests.domain.lifecycle_fixtures import customer_with_email, default_ladder, invoice, service

pytestmark = pytest.mark.browser

DUE = date(2026, 10, 15)


def test_dunning_preview_then_run(page, operator, db):
    default_ladder()
    for _ in range(2):
        customer, _ = customer_with_email()
        service(customer)
        invoice(customer, issue_date=DUE - timedelta(days=14), due_date=DUE)
    db.commit()
    on = DUE + timedelta(days=40)  # late enough for level 3: the first reminder is still level 1

    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/staff/dunning")
    page.get_by_role("link", name="Run dunning").first.click()

    page.get_by_label("Run as of").fill(on.isoformat())
    page.get_by_role("button", name="Preview").click()
    expect(page).to_have_url(re.compile(rf"/staff/dunning/run\?on={on.isoformat()}$"))
    expect(page.locator("body")).not_to_contain_text("CSRF")
    expect(page.locator('#preview-result [data-figure="customers_considered"]')).to_have_text("2")
    expect(page.locator('#preview-result [data-figure="reminders"]')).to_have_text("level 1: 2")
    expect(page.locator('#preview-result [data-figure="blocked_services"]')).to_have_text("0")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0

    page.get_by_role("button", name=f"Run dunning as of {on.isoformat()}").click()
    expect(page).to_have_url(re.compile(r"/staff/dunning/runs/\d+$"))
    expect(page.locator('#job-status [data-state="done"]')).to_be_visible(timeout=15_000)
    expect(page.locator('#run-result [data-figure="reminders"]')).to_have_text("level 1: 2")
    expect(page.locator('#run-result [data-figure="blocked_services"]')).to_have_text("0")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Reminder)) == 2
    assert page.console_errors == [], page.console_errors
