"""A billing run in a real browser: choose the period, preview, confirm; the run page polls
with htmx while a background worker carries the run out, until it shows the result."""
from __future__ import annotations

import re
import threading
import time

import pytest
from playwright.sync_api import expect

from portal import jobs
from tests.conftest import PASSWORD
from tests.domain.billing_fixtures import World

pytestmark = pytest.mark.browser


@pytest.fixture
def queued(app, monkeypatch):
    """A queue that holds jobs until `work()` runs them in a thread, like a consumer."""
    queue = jobs.JobQueue(app, "memory://")
    queue.huey.immediate = False
    monkeypatch.setitem(app.extensions, "jobs", queue)

    def work(delay: float = 1.5) -> threading.Thread:
        def consume():
            time.sleep(delay)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                task = queue.huey.dequeue()
                if task is not None:
                    queue.huey.execute(task)
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        return thread

    return work


def test_billing_run_from_preview_to_done(page, operator, db, queued):
    world = World()
    for _ in range(3):
        world.service()
    db.commit()

    page.goto("/staff/login")
    page.get_by_label("E-mail").fill(operator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Billing", exact=True).first.click()

    page.get_by_label("Period (YYYY-MM)").fill("2026-10")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name=re.compile("Preview of 2026-10"))).to_be_visible()
    expect(page.locator('#preview-figures [data-figure="invoices"]')).to_have_text("3")
    previewed_gross = page.locator('[data-figure="gross"]').first.inner_text()

    page.get_by_role("button", name="Start the billing run for 2026-10").click()
    expect(page).to_have_url(re.compile(r"/staff/billing/runs/\d+$"))
    run_url = page.url
    expect(page.locator('#run-status [data-state="queued"]')).to_be_visible()

    worker = queued()
    # htmx polls the status block every second: the page itself is never reloaded.
    expect(page.locator('#run-status [data-state="done"]')).to_be_visible(timeout=15_000)
    worker.join(timeout=5)
    assert page.url == run_url
    expect(page.locator('#run-status [data-figure="invoices"]')).to_have_text("3")
    expect(page.locator('#run-status [data-figure="gross"]').first).to_have_text(previewed_gross)
    expect(page.get_by_role("link", name="Refresh")).to_have_count(0)
    assert page.console_errors == [], page.console_errors
