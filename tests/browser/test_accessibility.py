"""Every page of both faces over the demo data (lists and details non-empty), in a real
browser: axe-core finds no WCAG 2.0/2.1 A or AA violation, and at a 320 px wide viewport the
page does not scroll sideways (WCAG 1.4.10 Reflow). One browser context per face, logged in
once; every failure is collected and reported together.

New pages: add their URL to SELFCARE_PAGES / STAFF_PAGES. `{name}` placeholders are filled
from `_ids()` (the ids of demo rows); a page whose placeholder has no row is reported."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from portal.demo import (
    DEMO_CUSTOMER_EMAIL,
    DEMO_CUSTOMER_PASSWORD,
    DEMO_OPERATOR_EMAIL,
    DEMO_OPERATOR_PASSWORD,
    load_demo_data,
)
from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    AuditEntry,
    BillingPlan,
    BillingRun,
    Contact,
    CustomerGroup,
    CustomerLogin,
    CustomerRequest,
    CustomerService,
    Discount,
    Invoice,
    Operator,
    Payment,
    Role,
    ServiceDefinition,
    ServiceGroup,
    ServiceState,
    WebhookDelivery,
    WebhookEndpoint,
)

pytestmark = pytest.mark.browser

# Logged out first, then logged in: (path, needs login).
SELFCARE_PAGES = [
    ("/login", False),
    ("/password/forgot", False),
    ("/cancel", False),
    ("/", True),
    ("/services", True),
    ("/services/{my_service}", True),
    ("/services/{my_service}/plan", True),
    ("/invoices", True),
    ("/invoices/{my_invoice}", True),
    ("/payments", True),
    ("/agreements", True),
    ("/agreements/{my_agreement}", True),
    ("/agreements/{my_issued_agreement}/accept", True),
    ("/requests", True),
    ("/requests/{my_request}", True),
    ("/profile", True),
    ("/security", True),
    ("/statement", True),
    ("/cancel", True),
]

STAFF_PAGES = [
    ("/staff/login", False),
    ("/staff/password/forgot", False),
    ("/staff/", True),
    ("/staff/customers", True),
    ("/staff/customers/new", True),
    ("/staff/customers/groups", True),
    ("/staff/customers/groups/{customer_group}", True),
    ("/staff/customers/{customer}", True),
    ("/staff/customers/{customer}/services", True),
    ("/staff/customers/{customer}/agreements", True),
    ("/staff/customers/{customer}/invoices", True),
    ("/staff/customers/{customer}/payments", True),
    ("/staff/customers/{customer}/requests", True),
    ("/staff/customers/{customer}/audit", True),
    ("/staff/customers/{customer}/edit", True),
    ("/staff/customers/{customer}/contacts/{contact}", True),
    ("/staff/customers/{customer}/agreements/new", True),
    ("/staff/customers/{customer}/services/new", True),
    ("/staff/services", True),
    ("/staff/services/bulk", True),
    ("/staff/services/{service}", True),
    ("/staff/services/{service}/block", True),
    ("/staff/services/{service}/change-plan", True),
    ("/staff/agreements", True),
    ("/staff/agreements/{agreement}", True),
    ("/staff/agreements/{accepted_agreement}", True),
    ("/staff/agreements/types", True),
    ("/staff/agreements/types/{agreement_type}", True),
    ("/staff/billing", True),
    ("/staff/billing/runs", True),
    ("/staff/billing/runs/{billing_run}", True),
    ("/staff/billing/invoices", True),
    ("/staff/billing/invoices/{invoice}", True),
    ("/staff/billing/preview/{customer}?period={this_month}", True),
    ("/staff/payments", True),
    ("/staff/payments/new", True),
    ("/staff/payments/unmatched", True),
    ("/staff/payments/import", True),
    ("/staff/payments/{payment}", True),
    ("/staff/dunning", True),
    ("/staff/dunning/cases", True),
    ("/staff/dunning/reminders", True),
    ("/staff/dunning/exceptions", True),
    ("/staff/dunning/run", True),
    ("/staff/requests", True),
    ("/staff/requests/{request}", True),
    ("/staff/catalogue", True),
    ("/staff/catalogue/services/new", True),
    ("/staff/catalogue/services/{definition}", True),
    ("/staff/catalogue/groups/new", True),
    ("/staff/catalogue/groups/{service_group}", True),
    ("/staff/catalogue/plans/new", True),
    ("/staff/catalogue/plans/{plan}", True),
    ("/staff/catalogue/discounts", True),
    ("/staff/catalogue/discounts/new", True),
    ("/staff/catalogue/discounts/{discount}", True),
    ("/staff/operators", True),
    ("/staff/operators/new", True),
    ("/staff/operators/{operator}", True),
    ("/staff/operators/roles", True),
    ("/staff/operators/roles/new", True),
    ("/staff/operators/roles/{role}", True),
    ("/staff/audit", True),
    ("/staff/audit/{audit_entry}", True),
    ("/staff/webhooks", True),
    ("/staff/webhooks/new", True),
    ("/staff/webhooks/{webhook_endpoint}", True),
    ("/staff/webhooks/{webhook_endpoint}/delete", True),
    ("/staff/security", True),
    ("/staff/api-tokens", True),
    ("/staff/api-tokens/new", True),
]

AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
               "resultTypes": ["violations"]}
PHONE = {"width": 320, "height": 640}
DESKTOP = {"width": 1280, "height": 800}
# A table wider than its wrapper at desktop width is clipped. The customer's tables fit (or
# stack); the staff's wide data tables may scroll inside their focusable wrapper.
CLIPPED_TABLES = """() => Array.from(document.querySelectorAll('.table-wrap'))
  .filter(w => w.scrollWidth > w.clientWidth + 1)
  .map(w => (w.getAttribute('aria-label') || w.id || w.className) + ' ' + w.scrollWidth + '>' + w.clientWidth)"""
# An id used twice: a label or aria reference may point at the wrong element.
DUPLICATE_IDS = """() => { const seen = {}, twice = new Set();
  for (const el of document.querySelectorAll('[id]')) { if (seen[el.id]) twice.add(el.id); seen[el.id] = 1; }
  return Array.from(twice); }"""
# What sticks out to the right at phone width, to say *why* a page scrolls sideways.
WIDE_ELEMENTS = """() => { const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > 321 && r.width > 0 && el.offsetParent !== null) {
      let s = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
      out.push(s + ' ' + Math.round(r.right));
    }
  }
  return out.slice(-4); }"""


@pytest.fixture
def demo(db):
    load_demo_data(db, customers=12, seed=7, today=date.today(), months=6)
    _webhook_endpoint(db)
    db.commit()
    return _ids(db)


def _webhook_endpoint(db):
    """The demo has no endpoint (it would send to nowhere): one here, with the demo's events
    as its deliveries, some of them failed."""
    from portal.domain import webhooks
    from portal.domain.actors import Actor
    from portal.domain.events import EVENT_TYPES
    from portal.integrations.webhooks import dispatch

    webhooks.create_endpoint(db, Actor.system("test"), url="https://hooks.example.com/portal", description="CRM",
                             event_types=list(EVENT_TYPES))
    db.commit()
    dispatch(db)
    for delivery in db.scalars(select(WebhookDelivery).limit(5)):
        delivery.state, delivery.attempts, delivery.last_status_code, delivery.last_error = "failed", 30, 500, "HTTP 500"


def _first(db, stmt):
    return db.scalar(stmt.limit(1))


def _ids(db) -> dict:
    me = db.scalar(select(CustomerLogin).where(CustomerLogin.email == DEMO_CUSTOMER_EMAIL)).customer
    mine = lambda model: model.customer_id == me.id  # noqa: E731
    ids = {
        "my_service": _first(db, select(CustomerService.id).where(mine(CustomerService),
                                                                  CustomerService.state == ServiceState.ACTIVE)),
        "my_invoice": _first(db, select(Invoice.id).where(mine(Invoice)).order_by(Invoice.id.desc())),
        "my_agreement": _first(db, select(Agreement.id).where(mine(Agreement),
                                                              Agreement.state == AgreementState.ACCEPTED)),
        "my_issued_agreement": _first(db, select(Agreement.id).where(mine(Agreement),
                                                                     Agreement.state == AgreementState.ISSUED)),
        "my_request": _first(db, select(CustomerRequest.id).where(mine(CustomerRequest))),
        "customer": me.id,
        "today": date.today().isoformat(),
        "this_month": date.today().strftime("%Y-%m"),
        "contact": _first(db, select(Contact.id).where(mine(Contact))),
        "customer_group": _first(db, select(CustomerGroup.id)),
        "service": _first(db, select(CustomerService.id).where(CustomerService.state == ServiceState.ACTIVE)),
        "agreement": _first(db, select(Agreement.id).where(Agreement.state == AgreementState.ISSUED)),
        "accepted_agreement": _first(db, select(Agreement.id).where(Agreement.state == AgreementState.ACCEPTED)),
        "agreement_type": _first(db, select(AgreementType.id)),
        "billing_run": _first(db, select(BillingRun.id).order_by(BillingRun.id.desc())),
        "invoice": _first(db, select(Invoice.id).order_by(Invoice.id.desc())),
        "payment": _first(db, select(Payment.id).order_by(Payment.id.desc())),
        "request": _first(db, select(CustomerRequest.id)),
        "definition": _first(db, select(ServiceDefinition.id)),
        "service_group": _first(db, select(ServiceGroup.id)),
        "plan": _first(db, select(BillingPlan.id)),
        "discount": _first(db, select(Discount.id)),
        "operator": _first(db, select(Operator.id).where(Operator.email == DEMO_OPERATOR_EMAIL)),
        "role": _first(db, select(Role.id)),
        "audit_entry": _first(db, select(AuditEntry.id).order_by(AuditEntry.id.desc())),
        "webhook_endpoint": _first(db, select(WebhookEndpoint.id)),
    }
    return ids


def _log_in(page, path, email, password):
    page.goto(path)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert "/login" not in page.url, f"could not log in as {email}"


def _check(page, url: str, failures: list[str], *, tables_fit: bool) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page.set_viewport_size(PHONE)
    response = page.goto(url)
    if response is None or response.status >= 400:
        failures.append(f"{url}: HTTP {response.status if response else '?'}")
        return
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > PHONE["width"]:
        failures.append(f"{url}: scrolls sideways at 320 px (scrollWidth {width}): {page.evaluate(WIDE_ELEMENTS)}")
    results = Axe().run(page, options=AXE_OPTIONS)
    for violation in results.response["violations"]:
        targets = [", ".join(node["target"]) for node in violation["nodes"]][:3]
        failures.append(f"{url}: axe {violation['id']} ({violation['impact']}): {targets}")
    duplicates = page.evaluate(DUPLICATE_IDS)
    if duplicates:
        failures.append(f"{url}: ids used more than once: {duplicates}")
    if tables_fit:
        page.set_viewport_size(DESKTOP)
        clipped = page.evaluate(CLIPPED_TABLES)
        if clipped:
            failures.append(f"{url}: tables clipped at 1280 px: {clipped}")


def _check_face(browser, live_server, demo, pages, login_path, email, password, *, tables_fit=False):
    context = browser.new_context(base_url=live_server, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    failures: list[str] = []
    logged_in = False
    try:
        for template, needs_login in pages:
            if needs_login and not logged_in:
                _log_in(page, login_path, email, password)
                logged_in = True
            try:
                url = template.format(**demo)
            except KeyError as exc:
                failures.append(f"{template}: no id for {exc}")
                continue
            if "None" in url:
                failures.append(f"{template}: the demo data has no row for it")
                continue
            _check(page, url, failures, tables_fit=tables_fit)
    finally:
        context.close()
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures)


def test_selfcare_pages_accessible_and_reflow(browser, live_server, demo):
    _check_face(browser, live_server, demo, SELFCARE_PAGES, "/login", DEMO_CUSTOMER_EMAIL, DEMO_CUSTOMER_PASSWORD,
                tables_fit=True)


def test_staff_pages_accessible_and_reflow(browser, live_server, demo):
    _check_face(browser, live_server, demo, STAFF_PAGES, "/staff/login", DEMO_OPERATOR_EMAIL, DEMO_OPERATOR_PASSWORD)


def test_failed_submit_moves_focus_to_the_error_summary(page, operator):
    from tests.conftest import PASSWORD

    _log_in(page, "/staff/login", operator.email, PASSWORD)
    page.goto("/staff/customers/new")
    page.locator("main form button[type=submit]").last.click()
    summary = page.locator("[data-error-summary]")
    summary.wait_for()
    assert page.evaluate("document.activeElement.hasAttribute('data-error-summary')")
    # Each entry leads to its field.
    first = summary.get_by_role("link").first
    target = first.get_attribute("href")
    first.click()
    assert page.evaluate("'#' + document.activeElement.id") == target


def test_api_token_pages_accessible_and_reflow(browser, live_server, demo):
    """The answer to creating a token (a POST's answer: no URL for the walk above) and the
    revoke confirmation of the token it made."""
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(base_url=live_server, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    failures: list[str] = []
    try:
        _log_in(page, "/staff/login", DEMO_OPERATOR_EMAIL, DEMO_OPERATOR_PASSWORD)
        page.goto("/staff/api-tokens/new")
        page.get_by_label("Name").fill("Accounting export")
        page.locator("input[name=rights][value='customers.read']").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Create token").click()
        assert page.locator("#token-secret").input_value().startswith("ptk_")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            failures.append(f"created: scrolls sideways at 320 px: {page.evaluate(WIDE_ELEMENTS)}")
        for violation in Axe().run(page, options=AXE_OPTIONS).response["violations"]:
            failures.append(f"created: axe {violation['id']}: {[n['target'] for n in violation['nodes']][:3]}")
        page.goto("/staff/api-tokens")
        with page.expect_navigation():
            page.get_by_role("link", name="Revoke").first.click()
        _check(page, page.url, failures, tables_fit=False)
        _check(page, "/staff/api-tokens", failures, tables_fit=False)
    finally:
        context.close()
    assert not failures, "\n".join(failures)
