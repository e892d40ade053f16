"""Security: TOTP enrolment, disabling, recovery codes, recent logins, other sessions."""
from __future__ import annotations

import re
import time

import pyotp
from sqlalchemy import func, select

from portal.models import AuditEntry, AuthSession, CustomerLogin
from portal.security.totp import decrypt_secret
from tests.conftest import PASSWORD, login_customer
from tests.selfcare.conftest import field_error, text


def _login(db, login_id) -> CustomerLogin:
    db.expire_all()
    return db.get(CustomerLogin, login_id)


def _actions(db) -> list[str]:
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def _enrol(client, db, login_id) -> str:
    assert client.post("/security/totp").status_code == 302
    return decrypt_secret(_login(db, login_id).totp_secret)


def test_security_page_lists_logins_and_sessions(customer_client, customer_login, mine):
    resp = customer_client.get("/security")
    assert resp.status_code == 200
    html = text(resp)
    assert "Set up two-factor authentication" in html
    assert "Recent logins" in html and "Success" in html  # the login of the fixture
    assert "this browser" in html


def test_enrol_shows_qr_and_secret_then_confirm_enables(customer_client, customer_login, mine, db):
    secret = _enrol(customer_client, db, customer_login.id)
    assert _login(db, customer_login.id).totp_enabled_at is None  # not yet on
    html = text(customer_client.get("/security"))
    assert 'src="data:image/svg+xml' in html
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in html
    # A wrong code: 422, message next to the field, still off.
    resp = customer_client.post("/security/totp/confirm", data={"code": "000000"})
    assert resp.status_code == 422
    assert "not right" in field_error(text(resp), "code")
    assert _login(db, customer_login.id).totp_enabled_at is None
    # The right code: on, with 10 recovery codes shown once.
    resp = customer_client.post("/security/totp/confirm", data={"code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 200
    codes = re.findall(r"<code>([0-9a-f]{6}-[0-9a-f]{6})</code>", text(resp))
    assert len(codes) == 10
    login = _login(db, customer_login.id)
    assert login.totp_enabled_at is not None and len(login.recovery_code_hashes) == 10
    assert "totp.enrolment_started" in _actions(db) and "totp.enabled" in _actions(db)
    assert codes[0] not in text(customer_client.get("/security"))  # shown only once


def test_login_then_asks_for_the_code(customer_client, customer_login, mine, db, make_client):
    secret = _enrol(customer_client, db, customer_login.id)
    customer_client.post("/security/totp/confirm", data={"code": pyotp.TOTP(secret).now()})
    other = make_client()
    resp = login_customer(other, customer_login.email)
    assert "/login/verify" in resp.headers["Location"]


def test_disable_needs_a_code_or_the_password(customer_client, customer_login, mine, db):
    secret = _enrol(customer_client, db, customer_login.id)
    customer_client.post("/security/totp/confirm", data={"code": pyotp.TOTP(secret).now()})
    resp = customer_client.post("/security/totp/disable", data={"disable-proof": "wrong"})
    assert resp.status_code == 422
    assert field_error(text(resp), "disable-proof") == "Enter a current code from your app, or your password."
    assert _login(db, customer_login.id).totp_enabled_at is not None
    resp = customer_client.post("/security/totp/disable", data={"disable-proof": PASSWORD})
    assert resp.status_code == 302
    login = _login(db, customer_login.id)
    assert login.totp_enabled_at is None and login.totp_secret is None and login.recovery_code_hashes == []
    assert "totp.disabled" in _actions(db)


def test_regenerate_recovery_codes(customer_client, customer_login, mine, db):
    secret = _enrol(customer_client, db, customer_login.id)
    customer_client.post("/security/totp/confirm", data={"code": pyotp.TOTP(secret).now()})
    old = list(_login(db, customer_login.id).recovery_code_hashes)
    resp = customer_client.post("/security/recovery-codes", data={"codes-proof": ""})
    assert resp.status_code == 422
    assert field_error(text(resp), "codes-proof")
    # The confirming code is spent (RFC 6238 §5.2): the next step's code proves the owner.
    resp = customer_client.post("/security/recovery-codes", data={"codes-proof": pyotp.TOTP(secret).at(time.time() + 30)})
    assert resp.status_code == 200
    assert len(re.findall(r"<code>[0-9a-f]{6}-[0-9a-f]{6}</code>", text(resp))) == 10
    new = _login(db, customer_login.id).recovery_code_hashes
    assert len(new) == 10 and not set(new) & set(old)
    assert "totp.recovery_codes_regenerated" in _actions(db)


def test_htmx_error_gets_the_section_only(customer_client, customer_login, mine, db):
    _enrol(customer_client, db, customer_login.id)
    resp = customer_client.htmx("POST", "/security/totp/confirm", data={"code": "123"})
    assert resp.status_code == 422
    assert "<html" not in text(resp) and field_error(text(resp), "code")


def test_log_out_other_sessions(customer_client, customer_login, mine, db, make_client):
    other = make_client()
    login_customer(other, customer_login.email)
    html = text(customer_client.get("/security"))
    assert "Log out other sessions" in html
    resp = customer_client.post("/security/sessions/logout-others")
    assert resp.status_code == 302
    assert other.get("/security").status_code == 302
    assert customer_client.get("/security").status_code == 200
    live = db.scalar(select(func.count()).select_from(AuthSession).where(
        AuthSession.customer_login_id == customer_login.id, AuthSession.revoked_at.is_(None)))
    assert live == 1
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.logout_other_sessions"))
    assert entry.changes == {"sessions": 1}


def test_recent_logins_show_failures_too(client, customer_login, mine, db):
    login_customer(client, customer_login.email, "wrong-password-1")
    login_customer(client, customer_login.email)
    html = text(client.get("/security"))
    assert "Failed" in html and "Success" in html


def test_describe_browser(app):
    from portal.domain.security import describe_browser

    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    chrome_android = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert describe_browser(firefox) == "Firefox on Linux"
        assert describe_browser(chrome_android) == "Chrome on Android"
        assert describe_browser(None) == "Unknown browser"
