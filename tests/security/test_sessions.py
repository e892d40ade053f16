"""Server-side sessions: the signed cookie carries only a random token; the auth_session row
it names decides, on every request, whether the browser is logged in."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from portal.models import AuthSession
from portal.models.base import utcnow
from portal.security.sessions import SESSION_KEY
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory

FACES = {
    "customer": ("/login", "/"),
    "operator": ("/staff/login", "/staff/"),
}


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture
def logged_in(face, client, db):
    """(client, principal, home) with the principal of `face` logged in."""
    login_url, home = FACES[face]
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    resp = client.post(login_url, data={"email": p.email, "password": PASSWORD})
    assert resp.status_code == 302
    assert client.get(home).status_code == 200
    return client, p, home


def session_row(db) -> AuthSession:
    db.expire_all()
    rows = list(db.scalars(select(AuthSession)))
    assert len(rows) == 1
    return rows[0]


def set_cookie_headers(resp) -> list[str]:
    return [v for v in resp.headers.getlist("Set-Cookie") if v.startswith("portal_session=")]


def decode_cookie(app, value: str) -> dict:
    return app.session_interface.get_signing_serializer(app).loads(value)


# --- what the cookie is ----------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(client, face, db):
    login_url, _home = FACES[face]
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    resp = client.post(login_url, data={"email": p.email, "password": PASSWORD})
    (cookie,) = set_cookie_headers(resp)
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/" in attrs
    assert any(a.startswith("expires=") for a in attrs)  # permanent, bounded by the lifetime
    # Not Secure outside production: the test server speaks plain HTTP.
    assert "secure" not in attrs


def test_cookie_holds_only_a_random_token(app, logged_in):
    client, p, _home = logged_in
    data = decode_cookie(app, client.get_cookie("portal_session").value)
    assert set(data) <= {SESSION_KEY, "csrf_token", "_permanent", "_flashes"}
    assert isinstance(data[SESSION_KEY], str) and len(data[SESSION_KEY]) >= 40
    flat = json.dumps(data)
    assert p.email not in flat and PASSWORD not in flat and "_user_id" not in flat


def test_only_the_token_hash_is_stored(app, logged_in, db):
    client, _p, _home = logged_in
    token = decode_cookie(app, client.get_cookie("portal_session").value)[SESSION_KEY]
    row = session_row(db)
    assert token not in row.token_hash and len(row.token_hash) == 64


def test_session_row_records_where_it_came_from(client, face, db):
    login_url, _home = FACES[face]
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    client.post(login_url, data={"email": p.email, "password": PASSWORD},
                environ_base={"REMOTE_ADDR": "203.0.113.9"}, headers={"User-Agent": "Probe/1.0 " + "x" * 500})
    row = session_row(db)
    assert row.face == face
    assert row.ip == "203.0.113.9"
    assert row.user_agent.startswith("Probe/1.0") and len(row.user_agent) <= 300
    assert row.revoked_at is None and not row.second_factor_pending
    assert row.expires_at > utcnow()


# --- what invalidates it ---------------------------------------------------------------------


def test_tampered_cookie_is_ignored(logged_in):
    client, _p, home = logged_in
    value = client.get_cookie("portal_session").value
    client.set_cookie("portal_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get(home).status_code == 302


def test_cookie_signed_with_another_key_is_ignored(app, logged_in, make_client):
    client, _p, home = logged_in
    token = decode_cookie(app, client.get_cookie("portal_session").value)[SESSION_KEY]
    forged = URLSafeTimedSerializer(
        "not-the-secret-key", salt="cookie-session",
        serializer=app.session_interface.serializer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": app.session_interface.digest_method},
    ).dumps({SESSION_KEY: token})
    other = make_client()
    other.set_cookie("portal_session", forged)
    assert other.get(home).status_code == 302


def test_revoked_session_is_refused(logged_in, db):
    client, _p, home = logged_in
    db.execute(update(AuthSession).values(revoked_at=utcnow()))
    db.commit()
    assert client.get(home).status_code == 302


def test_expired_session_is_refused(logged_in, db):
    client, _p, home = logged_in
    db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    assert client.get(home).status_code == 302


def test_idle_session_is_refused(app, logged_in, db):
    client, _p, home = logged_in
    idle = app.config["SESSION_IDLE_TIMEOUT"]
    db.execute(update(AuthSession).values(last_seen_at=utcnow() - idle - timedelta(seconds=5)))
    db.commit()
    assert client.get(home).status_code == 302


def test_activity_keeps_the_session_alive(app, logged_in, db):
    client, _p, home = logged_in
    idle = app.config["SESSION_IDLE_TIMEOUT"]
    earlier = utcnow() - idle + timedelta(minutes=5)
    db.execute(update(AuthSession).values(last_seen_at=earlier))
    db.commit()
    assert client.get(home).status_code == 200
    assert session_row(db).last_seen_at > earlier + timedelta(minutes=4)


def test_last_seen_is_not_written_on_every_request(logged_in, db, count_queries):
    client, _p, home = logged_in
    before = session_row(db).last_seen_at
    with count_queries() as q:
        assert client.get(home).status_code == 200
    assert not any(s.lstrip().upper().startswith("UPDATE AUTH_SESSION") for s in q.statements)
    assert session_row(db).last_seen_at == before


def test_deactivated_login_loses_its_session(logged_in, db):
    client, p, home = logged_in
    p.active = False
    db.commit()
    assert client.get(home).status_code == 302


def test_session_version_bump_ends_every_session(logged_in, db):
    """What a password change or "log out everywhere" does."""
    client, p, home = logged_in
    p.session_version += 1
    db.commit()
    assert client.get(home).status_code == 302


def test_a_session_of_one_login_never_serves_another(logged_in, db, face):
    client, p, home = logged_in
    # Point the row at someone else: the face's principal is what the row names, nothing else.
    other = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    row = session_row(db)
    if face == "customer":
        row.customer_login_id = other.id
    else:
        row.operator_id = other.id
    row.session_version = other.session_version + 1  # a version the other login never had
    db.commit()
    assert client.get(home).status_code == 302


def test_every_login_gets_its_own_session(client, make_client, face, db):
    login_url, home = FACES[face]
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    clients = [client, make_client(), make_client()]
    for c in clients:
        assert c.post(login_url, data={"email": p.email, "password": PASSWORD}).status_code == 302
    rows = list(db.scalars(select(AuthSession)))
    assert len(rows) == 3 and len({r.token_hash for r in rows}) == 3
    # Logging one out leaves the others.
    clients[0].post("/staff/logout" if face == "operator" else "/logout")
    assert clients[0].get(home).status_code == 302
    assert clients[1].get(home).status_code == 200
    assert clients[2].get(home).status_code == 200


def test_logging_in_again_in_the_same_browser_revokes_nothing_else(client, make_client, face, db):
    login_url, home = FACES[face]
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    other = make_client()
    other.post(login_url, data={"email": p.email, "password": PASSWORD})
    client.post(login_url, data={"email": p.email, "password": PASSWORD})
    first = client.get_cookie("portal_session").value
    # Log in again over an existing session: a new token, the old one no longer works.
    client.post("/staff/logout" if face == "operator" else "/logout")
    client.post(login_url, data={"email": p.email, "password": PASSWORD})
    assert client.get_cookie("portal_session").value != first
    stale = make_client()
    stale.set_cookie("portal_session", first)
    assert stale.get(home).status_code == 302
    assert other.get(home).status_code == 200
