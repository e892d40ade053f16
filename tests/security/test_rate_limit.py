"""Login rate limits: per client IP and per account and IP together (the e-mail tried from one
address; one account failing from many addresses is slowed instead: test_login_throttle.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import limiter
from portal.models import LoginEvent
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory

FACES = {"customer": ("/login", "/"), "operator": ("/staff/login", "/staff/")}


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture
def limits(app, monkeypatch):
    """Set small login limits for one test; the counters start at zero."""

    def set_limits(per_ip: str = "1000 per minute", per_account: str = "1000 per minute") -> None:
        monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", per_ip)
        monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", per_account)
        limiter.reset()

    yield set_limits
    limiter.reset()


@pytest.fixture
def principal(face, db):
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    return p


def attempt(client, face, email, password="Wrong-password-1", ip="192.0.2.1", **kw):
    return client.post(FACES[face][0], data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip}, **kw)


def test_defaults_are_set(app):
    assert app.config["LOGIN_LIMIT_PER_IP"]
    assert app.config["LOGIN_LIMIT_PER_ACCOUNT"]
    assert app.config["RATELIMIT_ENABLED"] is True


def test_default_account_limit_stops_guessing(client, face, principal):
    """With the shipped defaults (5 per minute per account and address) a sixth try is refused."""
    statuses = [attempt(client, face, principal.email, ip="192.0.2.1").status_code for _ in range(6)]
    assert statuses[:5] == [422] * 5
    assert statuses[5] == 429


def test_per_account_limit_counts_per_address(client, make_client, face, principal, limits):
    """The guesser's address is refused, even with the right password; the owner's address is
    not (knowing someone's e-mail must not lock them out)."""
    limits(per_account="3 per minute")
    for _ in range(3):
        assert attempt(make_client(), face, principal.email, ip="198.51.100.1").status_code == 422
    resp = attempt(make_client(), face, principal.email, PASSWORD, ip="198.51.100.1")
    assert resp.status_code == 429
    assert attempt(client, face, principal.email, PASSWORD, ip="198.51.100.99").status_code == 302
    assert client.get(FACES[face][1]).status_code == 200


def test_per_account_limit_ignores_case_and_spaces(make_client, face, principal, limits):
    limits(per_account="3 per minute")
    variants = [principal.email, principal.email.upper(), f"  {principal.email}  "]
    for email in variants:
        assert attempt(make_client(), face, email, ip="198.51.100.1").status_code == 422
    assert attempt(make_client(), face, principal.email.title(), ip="198.51.100.1").status_code == 429


def test_per_account_limit_leaves_other_accounts_alone(make_client, face, principal, limits, db):
    limits(per_account="2 per minute")
    for _ in range(2):
        attempt(make_client(), face, principal.email)
    assert attempt(make_client(), face, principal.email).status_code == 429
    other = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    assert attempt(make_client(), face, other.email, PASSWORD).status_code == 302


def test_per_account_limit_applies_to_unknown_accounts_too(make_client, face, limits):
    limits(per_account="2 per minute")
    for _ in range(2):
        assert attempt(make_client(), face, "nobody@example.com", ip="203.0.113.1").status_code == 422
    assert attempt(make_client(), face, "nobody@example.com", ip="203.0.113.1").status_code == 429


def test_per_ip_limit(client, make_client, face, principal, limits):
    limits(per_ip="4 per minute")
    for i in range(4):
        assert attempt(client, face, f"someone{i}@example.com", ip="192.0.2.50").status_code == 422
    assert attempt(client, face, principal.email, PASSWORD, ip="192.0.2.50").status_code == 429
    # Another IP is not affected.
    assert attempt(make_client(), face, principal.email, PASSWORD, ip="192.0.2.51").status_code == 302


def test_forwarded_for_does_not_escape_the_ip_limit(client, face, limits):
    """Without PROXY_FIX the X-Forwarded-For header is the client's word: not trusted."""
    limits(per_ip="3 per minute")
    for i in range(3):
        attempt(client, face, f"a{i}@example.com", headers={"X-Forwarded-For": f"10.0.0.{i}"})
    resp = attempt(client, face, "b@example.com", headers={"X-Forwarded-For": "10.0.0.200"})
    assert resp.status_code == 429


def test_limit_counts_only_posts(client, face, limits):
    limits(per_ip="2 per minute", per_account="2 per minute")
    for _ in range(5):
        assert client.get(FACES[face][0], environ_base={"REMOTE_ADDR": "192.0.2.60"}).status_code == 200


def test_limited_attempt_is_not_even_tried(make_client, face, principal, limits, db):
    """A refused request never reaches the password check: no login event, no hashing."""
    limits(per_account="2 per minute")
    for _ in range(4):
        attempt(make_client(), face, principal.email)
    assert db.scalar(select(func.count()).select_from(LoginEvent)) == 2


def test_the_429_page(make_client, face, principal, limits):
    limits(per_account="1 per minute")
    attempt(make_client(), face, principal.email)
    resp = attempt(make_client(), face, principal.email)
    assert resp.status_code == 429
    html = resp.get_data(as_text=True)
    assert "Too many attempts" in html
    assert "Content-Security-Policy" in resp.headers
    assert resp.headers.get("Cache-Control") == "no-store"


def test_the_429_fragment_for_htmx(make_client, face, principal, limits):
    limits(per_account="1 per minute")
    attempt(make_client(), face, principal.email)
    resp = attempt(make_client(), face, principal.email, headers={"HX-Request": "true"})
    assert resp.status_code == 429
    html = resp.get_data(as_text=True)
    assert "<html" not in html and "Too many attempts" in html


def test_limits_of_the_two_faces_are_separate(make_client, principal, face, limits):
    """Guessing at one face's login does not lock the other face's accounts out."""
    limits(per_account="2 per minute")
    for _ in range(3):
        attempt(make_client(), face, principal.email)
    other_face = "operator" if face == "customer" else "customer"
    assert attempt(make_client(), other_face, principal.email).status_code == 422


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/password/forgot", {"email": "someone@example.com"}),
        ("/staff/password/forgot", {"email": "someone@example.com"}),
        ("/login/verify", {"code": "123456"}),
        ("/staff/login/verify", {"code": "123456"}),
        ("/password/reset/nonsense", {"password": "x", "confirm": "x"}),
        ("/staff/password/reset/nonsense", {"password": "x", "confirm": "x"}),
    ],
)
def test_other_auth_forms_are_limited_per_ip(client, limits, path, data):
    limits(per_ip="3 per minute")
    for _ in range(3):
        assert client.post(path, data=data).status_code != 429
    assert client.post(path, data=data).status_code == 429


def test_second_factor_is_limited_per_account_across_ips(make_client, face, principal, limits, db):
    """A known password must not let many IPs walk the 6-digit code space."""
    import pyotp

    from portal.models.base import utcnow
    from portal.security.totp import encrypt_secret, new_secret

    secret = new_secret()
    principal.totp_secret = encrypt_secret(secret)
    principal.totp_enabled_at = utcnow()
    db.commit()
    limits(per_account="3 per minute")
    verify = "/staff/login/verify" if face == "operator" else "/login/verify"
    totp = pyotp.TOTP(secret)
    valid = {totp.at(utcnow().timestamp() + s) for s in range(-90, 91, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)

    first = make_client()
    assert attempt(first, face, principal.email, PASSWORD, ip="198.51.100.1").status_code == 302
    for i in range(3):
        resp = first.post(verify, data={"code": wrong}, environ_base={"REMOTE_ADDR": f"198.51.100.{i + 10}"})
        assert resp.status_code == 422
    # A new pending login from yet another IP does not get a fresh allowance.
    second = make_client()
    assert attempt(second, face, principal.email, PASSWORD, ip="198.51.100.50").status_code == 302
    resp = second.post(verify, data={"code": pyotp.TOTP(secret).now()}, environ_base={"REMOTE_ADDR": "198.51.100.51"})
    assert resp.status_code == 429
    assert second.get(FACES[face][1]).status_code == 302

    # Someone else's second factor is not affected.
    other = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    other_secret = new_secret()
    other.totp_secret = encrypt_secret(other_secret)
    other.totp_enabled_at = utcnow()
    db.commit()
    third = make_client()
    assert attempt(third, face, other.email, PASSWORD, ip="198.51.100.60").status_code == 302
    resp = third.post(verify, data={"code": pyotp.TOTP(other_secret).now()}, environ_base={"REMOTE_ADDR": "198.51.100.61"})
    assert resp.status_code == 302
