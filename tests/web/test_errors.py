"""Error pages: one look for everyone, a short fragment for HTMX, no detail leaked on a 500."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from portal import create_app
from portal.extensions import db as _db
from tests.conftest import PASSWORD, PortalClient


def error_card(html: str) -> str:
    match = re.search(r'<section class="error-card.*?</section>', html, re.S)
    assert match, html[:1000]
    return match.group(0)


def is_fragment(html: str) -> bool:
    return "<html" not in html and "<body" not in html and 'role="alert"' in html


@pytest.fixture
def throwaway_app(database_url, tmp_path):
    """A separate app over the test database, with routes that fail, and exceptions turned
    into responses as in production."""
    app = create_app({
        "TESTING": True,
        "PROPAGATE_EXCEPTIONS": False,
        "DATABASE_URL": database_url,
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "HUEY_URL": "memory://",
    })
    app.test_client_class = PortalClient

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom-secret-detail")

    @app.get("/staff/boom")
    def staff_boom():
        raise KeyError("staff-secret-detail")

    @app.get("/broken-sql")
    def broken_sql():
        # Leaves a PostgreSQL transaction aborted: the error page must still render.
        _db.session.execute(text("SELECT * FROM no_such_table_at_all"))
        return "unreachable"

    @app.get("/deny")
    def deny():
        from flask import abort

        abort(403)

    yield app
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


# --- 404 -------------------------------------------------------------------------------------


def test_404_looks_the_same_anonymous_or_logged_in(client, make_client, customer_login):
    anonymous = client.get("/no-such-page")
    customer = make_client()
    customer.post("/login", data={"email": customer_login.email, "password": PASSWORD})
    logged_in = customer.get("/no-such-page")
    assert anonymous.status_code == logged_in.status_code == 404
    a, b = anonymous.get_data(as_text=True), logged_in.get_data(as_text=True)
    assert "Page not found" in a
    assert error_card(a) == error_card(b)
    for html in (a, b):
        assert '<body class="error-page"' in html
        assert "<!doctype html>" in html.lower()


def test_404_for_an_operator_looks_the_same_too(staff_client, client):
    anon = client.get("/no-such-page").get_data(as_text=True)
    op = staff_client.get("/no-such-page").get_data(as_text=True)
    assert error_card(anon) == error_card(op)


def test_404_under_staff_links_to_the_staff_home(client):
    html = client.get("/staff/no-such-page").get_data(as_text=True)
    assert 'class="error-page staff"' in html
    assert 'href="/staff/"' in error_card(html)


def test_404_elsewhere_links_to_the_selfcare_home(client):
    html = client.get("/no-such-page").get_data(as_text=True)
    assert 'href="/"' in error_card(html)
    assert "badge-staff" not in html


def test_404_for_htmx_is_a_fragment(client, customer_client):
    for c in (client, customer_client):
        resp = c.get("/no-such-page", headers={"HX-Request": "true"})
        assert resp.status_code == 404
        html = resp.get_data(as_text=True)
        assert is_fragment(html) and "Not found." in html


def test_boosted_htmx_navigation_gets_the_full_page(client):
    resp = client.get("/no-such-page", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert resp.status_code == 404
    assert "<html" in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/%00", "/%ff%fe", "/" + "a" * 5000, "/staff/%2e%2e/%2e%2e/etc/passwd",
                                  "/static/../portal/config.py", "/static/%2e%2e/portal/config.py"])
def test_odd_paths_are_plain_404s(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert "SECRET_KEY" not in resp.get_data(as_text=True)


# --- 403, 405, 400 ---------------------------------------------------------------------------


def test_403_page_and_fragment(customer_client):
    resp = customer_client.get("/staff/")
    assert resp.status_code == 403
    assert "You do not have access to this page" in resp.get_data(as_text=True)
    resp = customer_client.get("/staff/", headers={"HX-Request": "true"})
    assert resp.status_code == 403
    assert is_fragment(resp.get_data(as_text=True))


def test_405_page(client):
    resp = client.get("/logout")
    assert resp.status_code == 405
    html = resp.get_data(as_text=True)
    assert "Error 405" in html and "<html" in html
    assert "POST" in resp.headers.get("Allow", "")


def test_400_page_explains_an_expired_form(client):
    resp = client.post("/password/forgot", data={"email": "a@example.com"}, csrf=False)
    assert resp.status_code == 400
    assert "Please reload the page and try again." in resp.get_data(as_text=True)


# --- 500 -------------------------------------------------------------------------------------


def test_500_page(throwaway_app):
    resp = throwaway_app.test_client().get("/boom")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "Something went wrong on our side" in html
    assert '<body class="error-page"' in html
    assert "boom-secret-detail" not in html and "Traceback" not in html and "RuntimeError" not in html


def test_500_page_under_staff(throwaway_app):
    resp = throwaway_app.test_client().get("/staff/boom")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "staff-secret-detail" not in html
    assert 'class="error-page staff"' in html


def test_500_for_htmx_is_a_fragment(throwaway_app):
    resp = throwaway_app.test_client().get("/boom", headers={"HX-Request": "true"})
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert is_fragment(html) and "Something went wrong on our side" in html
    assert "boom-secret-detail" not in html


def test_500_after_a_database_error_for_a_logged_in_customer(throwaway_app, customer_login):
    c = throwaway_app.test_client()
    assert c.post("/login", data={"email": customer_login.email, "password": PASSWORD}).status_code == 302
    resp = c.get("/broken-sql")
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "Something went wrong on our side" in html
    assert "no_such_table_at_all" not in html
    # The connection was rolled back: the next request works.
    assert c.get("/").status_code == 200


def test_abort_in_a_view_uses_the_error_page(throwaway_app):
    resp = throwaway_app.test_client().get("/deny")
    assert resp.status_code == 403
    assert "You do not have access to this page" in resp.get_data(as_text=True)


def test_error_pages_are_not_cached(client, throwaway_app):
    for resp in (client.get("/no-such-page"), throwaway_app.test_client().get("/boom")):
        assert resp.headers.get("Cache-Control") == "no-store"


def test_a_request_body_over_the_limit_is_a_413_page(app, client):
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    resp = client.post("/login", data={"email": "x" * too_big, "password": "p"})
    assert resp.status_code == 413
    assert "<main" in resp.get_data(as_text=True)


def test_nul_in_a_query_string_is_not_an_error(customer_client):
    # PostgreSQL refuses NUL in text; filters reach the database, so the app replaces it.
    resp = customer_client.get("/invoices?year=20%0026")
    assert resp.status_code in (200, 422)
