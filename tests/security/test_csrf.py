"""CSRF: every state-changing route refuses a request without a valid token; HTMX sends the
token in a header; a token does not expire while its session lives."""
from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.routing import IntegerConverter

from portal.extensions import csrf
from tests.conftest import PASSWORD

# A view exempt from CSRF must be listed here, with the reason (e.g. a signed bank webhook).
EXEMPT: dict[str, str] = {}
# Whole faces exempt, with the reason; each has its own test that the reason holds.
EXEMPT_FACES: dict[str, str] = {
    "api_": "the API reads a bearer token only, never the cookie session: a cross-site request "
            "carries no credential (test_the_api_ignores_the_cookie_session)",
}


def _exempt_face(endpoint: str) -> bool:
    return any(endpoint.startswith(prefix) for prefix in EXEMPT_FACES)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _sample(converter) -> object:
    name = type(converter).__name__
    if isinstance(converter, IntegerConverter):
        return 1
    if name == "FloatConverter":
        return 1.0
    if name == "UUIDConverter":
        return "00000000-0000-0000-0000-000000000001"
    return "x1"


def unsafe_routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule accepting an unsafe method."""
    adapter = app.url_map.bind("localhost")
    routes = []
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) & UNSAFE
        if not methods or rule.endpoint == "static":
            continue
        values = {arg: _sample(rule._converters[arg]) for arg in rule.arguments}
        for method in sorted(methods):
            routes.append((rule.endpoint, method, adapter.build(rule.endpoint, values, method=method)))
    return routes


def _exempt(app, endpoint: str) -> bool:
    view = app.view_functions.get(endpoint)
    name = f"{view.__module__}.{view.__name__}" if view else endpoint
    bp = endpoint.rsplit(".", 1)[0] if "." in endpoint else None
    return name in csrf._exempt_views or (bp is not None and app.blueprints.get(bp) in csrf._exempt_blueprints)


def test_the_walk_finds_the_auth_routes(app):
    endpoints = {e for e, _m, _u in unsafe_routes(app)}
    assert {
        "auth.customer_login", "auth.operator_login", "auth.customer_logout", "auth.operator_logout",
        "auth.customer_logout_everywhere", "auth.operator_logout_everywhere", "auth.customer_forgot",
        "auth.operator_forgot", "auth.customer_reset", "auth.operator_reset", "auth.customer_verify",
        "auth.operator_verify",
    } <= endpoints


def test_no_view_is_exempt_without_a_reason(app):
    exempt = {e for e, _m, _u in unsafe_routes(app) if _exempt(app, e) and not _exempt_face(e)}
    assert exempt <= set(EXEMPT), f"CSRF-exempt views not listed in EXEMPT: {exempt - set(EXEMPT)}"


@pytest.fixture(params=["anonymous", "customer", "operator"])
def any_client(request, client, db):
    from tests.factories import CustomerLoginFactory, OperatorFactory

    if request.param == "customer":
        p = CustomerLoginFactory()
        db.commit()
        assert client.post("/login", data={"email": p.email, "password": PASSWORD}).status_code == 302
    elif request.param == "operator":
        p = OperatorFactory(admin=True)
        db.commit()
        assert client.post("/staff/login", data={"email": p.email, "password": PASSWORD}).status_code == 302
    else:
        client.get("/login")  # a session with a CSRF token exists, just not sent
    return client


def test_every_unsafe_route_refuses_a_request_without_token(app, any_client):
    failures = []
    for endpoint, method, url in unsafe_routes(app):
        if endpoint in EXEMPT or _exempt_face(endpoint):
            continue
        for kwargs in ({"data": {}}, {"data": {"csrf_token": "forged"}}, {"json": {"a": 1}}):
            resp = any_client.open(url, method=method, **kwargs)
            if resp.status_code != 400:
                failures.append((endpoint, method, url, list(kwargs), resp.status_code))
    assert not failures


def test_the_api_ignores_the_cookie_session(app, any_client):
    api_routes = [(e, m, u) for e, m, u in unsafe_routes(app) if _exempt_face(e)]
    assert api_routes, "the walk finds the API's writes"
    failures = []
    for endpoint, method, url in api_routes:
        resp = any_client.open(url, method=method, json={"name": "x"})
        if resp.status_code != 401:
            failures.append((endpoint, method, url, resp.status_code))
    assert not failures


def test_the_csrf_error_is_the_friendly_400_page(client):
    resp = client.post("/login", data={"email": "a@example.com", "password": "x"}, csrf=False)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "The form expired or was sent from elsewhere" in html
    assert "Content-Security-Policy" in resp.headers


def test_the_csrf_error_is_a_fragment_for_htmx(client):
    resp = client.post("/logout", csrf=False, headers={"HX-Request": "true"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "<html" not in html and 'role="alert"' in html


def test_refused_post_changes_nothing(customer_client):
    assert customer_client.post("/logout", csrf=False).status_code == 400
    assert customer_client.get("/").status_code == 200  # still logged in


def test_token_from_another_session_is_refused(client, make_client, customer_login):
    other = make_client()
    their_token = other.csrf_token()
    client.get("/login")
    resp = client.post("/login", data={"email": customer_login.email, "password": PASSWORD,
                                       "csrf_token": their_token}, csrf=False)
    assert resp.status_code == 400


def test_token_in_the_htmx_header_is_accepted(customer_client):
    token = customer_client.csrf_token()
    resp = customer_client.post("/logout", csrf=False, headers={"X-CSRFToken": token})
    assert resp.status_code == 302
    assert customer_client.get("/").status_code == 302


def test_token_in_the_alternative_header_is_accepted(client, customer_login):
    token = client.csrf_token()
    resp = client.post("/login", data={"email": customer_login.email, "password": PASSWORD}, csrf=False,
                       headers={"X-CSRF-Token": token})
    assert resp.status_code == 302


def test_htmx_helper_request_is_accepted(staff_client):
    resp = staff_client.htmx("POST", "/staff/logout")
    assert resp.status_code == 302


def test_pages_carry_the_token_for_htmx(client, customer_client):
    html = customer_client.get("/").get_data(as_text=True)
    assert '<meta name="csrf-token" content="' in html
    assert "hx-headers='{\"X-CSRFToken\": \"" in html


def test_csrf_token_has_no_time_limit(app, client, customer_login):
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 30 * 24 * 3600  # a page left open for a month

    client.csrf_token()  # puts the raw token in the session
    with client.session_transaction() as sess:
        raw = sess["csrf_token"]
    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token", signer=LongAgo).dumps(raw)
    resp = client.post("/login", data={"email": customer_login.email, "password": PASSWORD, "csrf_token": old},
                       csrf=False)
    assert resp.status_code == 302
