"""The staff rights matrix, derived from the routes themselves: every /staff page and action
declares its rights, and an operator lacking one of them gets 403 — for GET and for POST
(with a valid CSRF token, so the refusal is the right check and not CSRF)."""
from __future__ import annotations

import pytest

from portal.models import RIGHTS

# Pages any logged-in operator may open (the landing page) or that are part of logging in,
# and their own API tokens (a token never has more than its operator: the rule checks it).
OPEN_TO_EVERY_OPERATOR = {"staff.dashboard", "staff.security", "staff.api_tokens", "staff.api_token_new",
                          "staff.api_token_revoke"}


def _staff_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("staff.") and rule.endpoint not in OPEN_TO_EVERY_OPERATOR:
            yield rule, app.view_functions[rule.endpoint]


def _url(rule) -> str:
    values = {arg: 1 for arg in rule.arguments}
    for name, converter in rule._converters.items():
        if converter.__class__.__name__ not in ("IntegerConverter",):
            values[name] = "1"
    return rule.build(values, append_unknown=False)[1]


def test_every_staff_view_declares_its_rights(app):
    undeclared = [rule.rule for rule, view in _staff_rules(app) if not getattr(view, "required_rights", None)]
    assert undeclared == []
    unknown = {r for _, view in _staff_rules(app) for r in getattr(view, "required_rights", ()) if r not in RIGHTS}
    assert unknown == set()


def test_without_the_right_every_page_and_action_is_403(app, operator_client):
    rules = list(_staff_rules(app))
    if not rules:
        pytest.skip("no staff areas yet")
    clients: dict[str, object] = {}
    failures = []
    for rule, view in rules:
        for missing in view.required_rights:
            if missing not in clients:
                clients[missing] = operator_client(rights=tuple(r for r in RIGHTS if r != missing))
            client = clients[missing]
            url = _url(rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                resp = client.post(url, data={}) if method == "POST" else client.open(url, method=method)
                if resp.status_code != 403:
                    failures.append(f"{method} {url} without {missing}: {resp.status_code}")
    assert failures == []


def test_a_customer_login_gets_403_on_staff_pages(app, customer_client):
    failures = []
    for rule, _ in _staff_rules(app):
        if "GET" in rule.methods:
            resp = customer_client.get(_url(rule))
            if resp.status_code != 403:
                failures.append(f"GET {rule.rule}: {resp.status_code}")
    assert failures == []


def test_anonymous_is_sent_to_the_staff_login(app, client):
    for rule, _ in _staff_rules(app):
        if "GET" in rule.methods:
            resp = client.get(_url(rule))
            assert resp.status_code == 302 and "/staff/login" in resp.headers["Location"], rule.rule
