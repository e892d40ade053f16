"""Browser tests: the app served on loopback in a thread, driven by Playwright in Debian's
headless Chromium (never a downloaded browser). A browser test is never skipped: without
Chromium (or Playwright) each one fails, and the run ends with a banner that says why
(`make test` installs Chromium through scripts/system-packages)."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("PORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


MISSING: list[str] = []


def _unavailable(why: str):
    MISSING.append(why)
    pytest.fail(f"BROWSER TESTS CANNOT RUN: {why}", pytrace=False)


def pytest_terminal_summary(terminalreporter):
    if MISSING:
        line = "!" * 78
        terminalreporter.write_line(line, red=True, bold=True)
        terminalreporter.write_line(f"BROWSER TESTS DID NOT RUN: {MISSING[0]}", red=True, bold=True)
        terminalreporter.write_line("Run `make test` (it installs Debian's chromium) or: apt-get install chromium",
                                    red=True, bold=True)
        terminalreporter.write_line(line, red=True, bold=True)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"Debian's chromium is not installed ({CHROMIUM} is missing)")
    try:
        from playwright import sync_api
    except ImportError as exc:
        _unavailable(f"Playwright does not import ({exc})")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    yield page
    context.close()
