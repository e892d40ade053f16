"""One account failing from many addresses is slowed down, never locked: an address that has
not failed always gets in with the right password; an address that has failed on an account
under attack waits a growing delay; the owner hears of a burst once. On Flask-Limiter's
memory storage and on Redis (when it answers)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from limits.storage import storage_from_string
from sqlalchemy import func, select

from portal.extensions import limiter
from portal.models import LoginEvent
from portal.security import throttle
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory

FACES = {"customer": ("/login", "/"), "operator": ("/staff/login", "/staff/")}
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture(params=["memory", "redis"])
def storage(request, monkeypatch):
    """The throttle's counts in a memory or a Redis storage (the route limits stay as set)."""
    if request.param == "memory":
        limiter.reset()
        yield limiter.storage
        limiter.reset()
        return
    store = storage_from_string(REDIS_URL)
    try:
        if not store.check():
            pytest.skip("Redis is not answering")
    except Exception:  # noqa: BLE001
        pytest.skip("Redis is not answering")
    monkeypatch.setattr(throttle, "_storage", lambda: store)
    yield store
    for key in store.storage.scan_iter("LIMITS:login-throttle:*"):
        store.storage.delete(key)


@pytest.fixture
def small(app, monkeypatch):
    """An account is under attack after 3 failures; a 1-second first delay."""
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "1000 per minute")
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "1000 per minute")
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_SLOWDOWN_AFTER", 3)
    monkeypatch.setitem(app.config, "LOGIN_SLOWDOWN_DELAY", timedelta(seconds=1))
    monkeypatch.setitem(app.config, "LOGIN_SLOWDOWN_MAX_DELAY", timedelta(seconds=60))
    limiter.reset()


@pytest.fixture
def principal(face, db):
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    return p


def attempt(client, face, email, password="Wrong-password-1", ip="192.0.2.1"):
    return client.post(FACES[face][0], data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_the_owner_gets_in_while_the_account_is_attacked(make_client, face, principal):
    """With the shipped limits: one address guessing hard, twenty more guessing once each;
    the owner, from an address that has not failed, logs in at the first try."""
    for _ in range(10):
        attempt(make_client(), face, principal.email, ip="198.51.100.1")
    assert attempt(make_client(), face, principal.email, PASSWORD, ip="198.51.100.1").status_code == 429
    for i in range(20):
        attempt(make_client(), face, principal.email, ip=f"203.0.113.{i + 1}")
    owner = make_client()
    assert attempt(owner, face, principal.email, PASSWORD, ip="192.0.2.200").status_code == 302
    assert owner.get(FACES[face][1]).status_code == 200


def test_an_address_that_failed_on_an_attacked_account_waits(make_client, face, principal, small, storage, db):
    for i in range(3):
        assert attempt(make_client(), face, principal.email, ip=f"198.51.100.{i + 1}").status_code == 422
    # Under attack now: an address that failed waits — even with the right password, and the
    # password is not even tried (no login event).
    events = db.scalar(select(func.count()).select_from(LoginEvent))
    resp = attempt(make_client(), face, principal.email, PASSWORD, ip="198.51.100.3")
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert "Try again in" in resp.get_data(as_text=True)
    assert "<form" in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(LoginEvent)) == events
    # An address that has not failed is not held back.
    assert attempt(make_client(), face, principal.email, PASSWORD, ip="192.0.2.77").status_code == 302


def test_the_delay_grows_with_each_failure_of_the_address(make_client, face, principal, small, storage):
    for i in range(2):
        attempt(make_client(), face, principal.email, ip=f"198.51.100.{i + 10}")
    attempt(make_client(), face, principal.email, ip="198.51.100.1")  # third failure: 1 s
    first = attempt(make_client(), face, principal.email, ip="198.51.100.1")
    assert first.status_code == 429 and int(first.headers["Retry-After"]) == 1
    time.sleep(1.1)
    assert attempt(make_client(), face, principal.email, ip="198.51.100.1").status_code == 422  # 2 s now
    second = attempt(make_client(), face, principal.email, ip="198.51.100.1")
    assert second.status_code == 429 and int(second.headers["Retry-After"]) == 2


def test_a_fresh_address_is_never_refused_the_right_password(make_client, face, principal, small, storage):
    for i in range(30):
        attempt(make_client(), face, principal.email, ip=f"203.0.113.{i + 1}")
    assert attempt(make_client(), face, principal.email, PASSWORD, ip="192.0.2.250").status_code == 302


def test_success_forgives_the_owners_own_mistakes(make_client, face, principal, small, storage):
    for i in range(2):
        attempt(make_client(), face, principal.email, ip=f"203.0.113.{i + 1}")
    assert attempt(make_client(), face, principal.email, ip="192.0.2.9").status_code == 422  # a typo
    time.sleep(1.1)
    assert attempt(make_client(), face, principal.email, PASSWORD, ip="192.0.2.9").status_code == 302
    assert throttle.wait_seconds(face, principal.email, "192.0.2.9") == 0


def test_the_owner_is_told_once_per_burst(make_client, face, principal, small, storage, outbox, db):
    for i in range(8):
        attempt(make_client(), face, principal.email, ip=f"203.0.113.{i + 1}")
    mails = [m for m in outbox() if m["To"] == principal.email]
    assert len(mails) == 1
    assert "wrong password 3 times" in mails[0].text
    assert "/password/forgot" in mails[0].text


def test_no_mail_for_an_unknown_account(make_client, face, small, storage, outbox):
    for i in range(5):
        attempt(make_client(), face, "nobody@example.com", ip=f"203.0.113.{i + 1}")
    assert outbox() == []


def test_the_settings_exist(app):
    for key in ("LOGIN_ACCOUNT_SLOWDOWN_AFTER", "LOGIN_ACCOUNT_FAILURE_WINDOW", "LOGIN_SLOWDOWN_DELAY",
                "LOGIN_SLOWDOWN_MAX_DELAY", "LOGIN_FAILURE_ALERT_INTERVAL"):
        assert app.config[key]


def test_the_reset_link_frees_the_owners_address(make_client, face, principal, small, storage, outbox):
    """An owner who mistyped on an attacked account and now waits can use the e-mailed link,
    then log in from the same address at once."""
    for i in range(2):
        attempt(make_client(), face, principal.email, ip=f"203.0.113.{i + 1}")
    attempt(make_client(), face, principal.email, ip="192.0.2.9")
    assert throttle.wait_seconds(face, principal.email, "192.0.2.9") >= 1
    owner = make_client()
    forgot = "/staff/password/forgot" if face == "operator" else "/password/forgot"
    owner.post(forgot, data={"email": principal.email}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    import re
    from urllib.parse import urlsplit

    mail = next(m for m in outbox() if m["To"] == principal.email and "/password/reset/" in m.text)
    link = urlsplit(re.search(r"https?://\S+/password/reset/\S+", mail.text).group(0)).path
    new = "Brand-new-password-7"
    assert owner.post(link, data={"password": new, "confirm": new},
                      environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 302
    assert attempt(make_client(), face, principal.email, new, ip="192.0.2.9").status_code == 302
