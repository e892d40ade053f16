"""Security headers on every response, hardened cookies, and HTML that runs under a strict
CSP (no inline script, no inline style)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from portal import create_app
from portal.extensions import db as _db
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            out[tokens[0].lower()] = tokens[1:]
    return out


def assert_security_headers(resp, page: bool = True) -> None:
    h = resp.headers
    csp = h.get("Content-Security-Policy")
    assert csp, "no CSP"
    d = csp_directives(csp)
    assert d["script-src"] == ["'self'"]
    assert d["default-src"] == ["'self'"]
    assert d["frame-ancestors"] == ["'none'"]
    assert d["object-src"] == ["'none'"]
    assert "'self'" in d["style-src"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp and "*" not in csp.split()
    assert h.get("X-Content-Type-Options") == "nosniff"
    assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert h.get("Referrer-Policy") != "no-referrer"  # would break Flask-WTF's Referer check on HTTPS
    assert h.get("X-Frame-Options") == "DENY"
    if page:
        assert "no-store" in h.get("Cache-Control", "")


class _InlineFinder(HTMLParser):
    """Collects what a strict CSP would block."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and not attrs.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in attrs:
            self.problems.append(f"style= on <{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"{name}= handler on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in {name} of <{tag}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)


def inline_problems(html: str) -> list[str]:
    finder = _InlineFinder()
    finder.feed(html)
    finder.close()
    # hx-on:* attributes run code via eval: not allowed under our CSP either.
    finder.problems += [f"{m} attribute" for m in re.findall(r"\shx-on[:\-][\w:-]*", html)]
    return finder.problems


@pytest.fixture
def customer(db):
    p = CustomerLoginFactory()
    db.commit()
    return p


@pytest.fixture
def operator_(db):
    p = OperatorFactory(admin=True)
    db.commit()
    return p


ANON_PAGES = ["/login", "/staff/login", "/password/forgot", "/staff/password/forgot",
              "/password/reset/not-a-token", "/staff/password/reset/not-a-token", "/no-such-page",
              "/staff/no-such-page"]


@pytest.mark.parametrize("path", ANON_PAGES)
def test_headers_on_anonymous_pages(client, path):
    resp = client.get(path)
    assert resp.status_code in (200, 404, 410)
    assert_security_headers(resp)
    assert resp.mimetype == "text/html"


def test_headers_on_redirects(client):
    resp = client.get("/")
    assert resp.status_code == 302
    assert_security_headers(resp)


def test_headers_on_logged_in_pages(client, make_client, customer, operator_):
    client.post("/login", data={"email": customer.email, "password": PASSWORD})
    staff = make_client()
    staff.post("/staff/login", data={"email": operator_.email, "password": PASSWORD})
    for c, path in ((client, "/"), (staff, "/staff/"), (client, "/staff/"), (staff, "/")):
        resp = c.get(path)
        assert resp.status_code in (200, 403)
        assert_security_headers(resp)


def test_headers_on_error_responses(client, customer_client):
    for resp in (
        client.get("/logout"),  # 405
        client.post("/login", csrf=False),  # 400 (CSRF)
        customer_client.get("/staff/"),  # 403
        client.get("/nowhere", headers={"HX-Request": "true"}),  # 404 fragment
    ):
        assert resp.status_code in (400, 403, 404, 405)
        assert_security_headers(resp)


def test_headers_on_a_500(database_url, tmp_path):
    app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False, "DATABASE_URL": database_url,
                      "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"), "HUEY_URL": "memory://"})

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    try:
        resp = app.test_client().get("/boom")
        assert resp.status_code == 500
        assert_security_headers(resp)
    finally:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_htmx_responses_vary_on_hx_request(client):
    resp = client.get("/login", headers={"HX-Request": "true"})
    assert "HX-Request" in resp.headers.get("Vary", "")


def test_static_files_may_be_cached(client):
    resp = client.get("/static/css/portal.css")
    assert resp.status_code == 200
    assert "no-store" not in resp.headers.get("Cache-Control", "")
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    resp.close()


def test_no_hsts_over_plain_http_but_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://localhost")
    assert "max-age=" in secure.headers.get("Strict-Transport-Security", "")


# --- cookies ---------------------------------------------------------------------------------


def _session_cookie(resp) -> list[str]:
    (cookie,) = [v for v in resp.headers.getlist("Set-Cookie") if v.startswith("portal_session=")]
    return [a.strip().lower() for a in cookie.split(";")]


def test_session_cookie_flags(client, customer):
    attrs = _session_cookie(client.post("/login", data={"email": customer.email, "password": PASSWORD}))
    assert "httponly" in attrs and "samesite=lax" in attrs
    assert "secure" not in attrs  # testing runs over HTTP


def test_session_cookie_is_secure_in_production(tmp_path):
    app = create_app({"ENV_NAME": "production", "SECRET_KEY": "p" * 16 + "q" * 16 + "r" * 16,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}", "HUEY_URL": "memory://",
                      "MAIL_OUTBOX_DIR": str(tmp_path / "outbox")})
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
        assert app.config["REMEMBER_COOKIE_SECURE"] is True
        resp = app.test_client().get("/login", base_url="https://portal.example")
        assert resp.status_code == 200
        attrs = _session_cookie(resp)
        assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs
    finally:
        with app.app_context():
            _db.engine.dispose()


# --- HTML that a strict CSP can run ----------------------------------------------------------


@pytest.mark.parametrize("path", ANON_PAGES + ["/login?next=/x", "/login/verify"])
def test_anonymous_pages_have_no_inline_code(client, path):
    resp = client.get(path, follow_redirects=True)
    assert inline_problems(resp.get_data(as_text=True)) == []


def test_flash_and_form_error_pages_have_no_inline_code(client, customer):
    resp = client.post("/login", data={"email": customer.email, "password": "wrong-password-1"})
    assert resp.status_code == 422
    assert inline_problems(resp.get_data(as_text=True)) == []
    client.post("/login", data={"email": customer.email, "password": PASSWORD})
    resp = client.post("/logout", follow_redirects=True)  # flash message on the login page
    assert "logged out" in resp.get_data(as_text=True)
    assert inline_problems(resp.get_data(as_text=True)) == []


def test_dashboards_have_no_inline_code(client, make_client, customer, operator_):
    client.post("/login", data={"email": customer.email, "password": PASSWORD})
    staff = make_client()
    staff.post("/staff/login", data={"email": operator_.email, "password": PASSWORD})
    for c, path in ((client, "/"), (staff, "/staff/")):
        resp = c.get(path)
        assert resp.status_code == 200
        assert inline_problems(resp.get_data(as_text=True)) == [], path


def test_error_pages_have_no_inline_code(client, customer_client):
    for resp in (
        client.get("/nowhere"),
        client.get("/logout"),
        client.post("/login", csrf=False),
        customer_client.get("/staff/"),
        customer_client.get("/nowhere"),
    ):
        assert resp.status_code >= 400
        assert inline_problems(resp.get_data(as_text=True)) == [], resp.status_code


def test_templates_have_no_inline_code():
    """Every template served to a browser, also the ones no test renders yet. (documents/ are
    rendered to PDF by WeasyPrint, never served under the CSP; inline styles are fine there.)"""
    root = Path(__file__).resolve().parents[2] / "templates"
    offenders = {}
    for path in sorted(root.rglob("*.html")):
        if path.relative_to(root).parts[0] in ("documents", "emails"):
            continue
        text = path.read_text(encoding="utf-8")
        # Jinja comments and expressions are not HTML; drop them before parsing.
        text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
        problems = [p for p in inline_problems(text) if "javascript:" not in p]
        problems += ["inline <script>"] * len(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", text))
        if problems:
            offenders[str(path.relative_to(root))] = sorted(set(problems))
    assert offenders == {}


def test_the_finder_finds():
    assert inline_problems('<script>alert(1)</script>') == ["inline <script>"]
    assert inline_problems('<p style="color:red">x</p>') == ["style= on <p>"]
    assert inline_problems('<a href="#" onclick="x()">x</a>') == ["onclick= handler on <a>"]
    assert inline_problems('<script src="/static/x.js"></script>') == []
    assert inline_problems('<button hx-on:click="x()">') == [" hx-on:click attribute"]
