"""The API reference page: readable without JavaScript (the operations table) and with it
(the vendored Swagger UI takes over); no console errors, no request leaves for a CDN, and at
320 px nothing scrolls the page sideways."""
from __future__ import annotations

from tests.browser.test_accessibility import PHONE, WIDE_ELEMENTS


def test_reference_without_javascript_lists_operations_and_fits(browser, live_server):
    context = browser.new_context(base_url=live_server, java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    try:
        page.goto("/api/v1/reference")
        assert page.get_by_role("table").get_by_text("/api/v1/usage/readings").first.is_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], page.evaluate(WIDE_ELEMENTS)
    finally:
        context.close()


def test_swagger_ui_renders_from_vendored_files(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport=PHONE)
    page = context.new_page()
    errors, foreign = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(live_server) else None)
    try:
        page.goto("/api/v1/reference")
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=15_000)
        assert page.locator(".swagger-ui .opblock-tag").count() >= 10
        # Opened operations too: a list (parameters, responses) and a write (its body).
        for method in ("get", "post", "patch"):
            page.locator(f".swagger-ui .opblock-{method} .opblock-summary").first.click()
            page.locator(f".swagger-ui .opblock-{method}.is-open .opblock-body").first.wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], page.evaluate(WIDE_ELEMENTS)
    finally:
        context.close()
    assert not errors, errors
    assert not foreign, foreign
