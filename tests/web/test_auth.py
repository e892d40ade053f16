"""Logging in and out, password reset and the second factor — on both faces.

Customers log in at /login and land on /; operators at /staff/login and land on /staff/.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from sqlalchemy import func, select, update

from portal.models import (
    AuditEntry,
    AuthSession,
    CustomerLogin,
    Face,
    LoginEvent,
    Operator,
    PasswordResetToken,
)
from portal.models.base import utcnow
from portal.security.sessions import SESSION_KEY, _hash
from portal.security.totp import encrypt_secret, new_recovery_codes, new_secret
from tests.conftest import PASSWORD, login_customer, login_operator
from tests.factories import CustomerLoginFactory, OperatorFactory

BAD_LOGIN = "Unknown e-mail or wrong password."
NEW_PASSWORD = "Brand-new-password-7"

# face: (login URL, home URL, logout URL, "log out everywhere" URL, forgot URL, reset URL prefix)
FACES = {
    "customer": {
        "login": "/login",
        "home": "/",
        "logout": "/logout",
        "everywhere": "/logout/everywhere",
        "forgot": "/password/forgot",
        "reset": "/password/reset/",
        "verify": "/login/verify",
    },
    "operator": {
        "login": "/staff/login",
        "home": "/staff/",
        "logout": "/staff/logout",
        "everywhere": "/staff/logout/everywhere",
        "forgot": "/staff/password/forgot",
        "reset": "/staff/password/reset/",
        "verify": "/staff/login/verify",
    },
}


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture
def urls(face):
    return FACES[face]


@pytest.fixture
def principal(face, db):
    """A login of the face under test (a customer login, or an operator with every right)."""
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    return p


def log_in(client, urls, email, password=PASSWORD, **kw):
    return client.post(urls["login"], data={"email": email, "password": password}, **kw)


def location_path(resp) -> str:
    parts = urlsplit(resp.headers["Location"])
    assert parts.netloc in ("", "localhost"), resp.headers["Location"]
    return parts.path + (f"?{parts.query}" if parts.query else "")


def session_token(client) -> str | None:
    with client.session_transaction() as sess:
        return sess.get(SESSION_KEY)


def copy_session_cookie(client, make_client):
    """A second browser holding a copy of `client`'s session cookie as it is now."""
    cookie = client.get_cookie("portal_session")
    assert cookie is not None
    other = make_client()
    other.set_cookie("portal_session", cookie.value)
    return other


# --- logging in ------------------------------------------------------------------------------


def test_login_page_renders(client, urls):
    resp = client.get(urls["login"])
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'name="email"' in html and 'name="password"' in html and 'name="csrf_token"' in html


def test_login_success_redirects_to_the_face_home(client, urls, principal):
    resp = log_in(client, urls, principal.email)
    assert resp.status_code == 302
    assert location_path(resp) == urls["home"]
    assert client.get(urls["home"]).status_code == 200


def test_login_email_is_case_and_space_insensitive(client, urls, principal):
    resp = log_in(client, urls, f"  {principal.email.upper()} ")
    assert resp.status_code == 302
    assert location_path(resp) == urls["home"]


def test_wrong_password_and_unknown_account_look_the_same(client, urls, principal):
    wrong = log_in(client, urls, principal.email, "Not-the-password-1")
    unknown = log_in(client, urls, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 422
    for resp in (wrong, unknown):
        assert BAD_LOGIN in resp.get_data(as_text=True)
    # Nothing else in the page tells the two apart (the message is the only error shown).
    assert wrong.get_data(as_text=True).count(BAD_LOGIN) == unknown.get_data(as_text=True).count(BAD_LOGIN) == 1
    assert client.get(urls["home"]).status_code == 302


def test_login_of_the_other_face_is_unknown(client, face, db):
    """Customers and operators are separate populations: a customer's credentials do not
    open the staff face, nor the reverse."""
    other = OperatorFactory(admin=True) if face == "customer" else CustomerLoginFactory()
    db.commit()
    resp = log_in(client, FACES[face], other.email)
    assert resp.status_code == 422
    assert BAD_LOGIN in resp.get_data(as_text=True)


def test_inactive_account_cannot_log_in(client, urls, principal, db):
    principal.active = False
    db.commit()
    resp = log_in(client, urls, principal.email)
    assert resp.status_code == 422
    assert BAD_LOGIN in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"email": "", "password": ""},
        {"email": "someone@example.com"},
        {"password": PASSWORD},
        {"email": "x" * 10_000 + "@example.com", "password": PASSWORD},
        {"email": "someone@example.com", "password": "p" * 10_000},
        {"email": "not an e-mail at all", "password": "x"},
        {"email": "žluťoučký@kůň.example", "password": "příliš-žluťoučký-kůň"},
        {"email": "\U0001f600@\U0001f4a9.example", "password": "\u202e\u200b\ufeff"},
        {"email": "nul\x00byte@example.com", "password": "nul\x00byte"},
        {"email": "a@example.com\r\nBcc: victim@example.com", "password": "x"},
        {"email": ["a@example.com", "b@example.com"], "password": ["x", "y"]},
        {"email": "' OR 1=1 --", "password": "' OR ''='"},
    ],
    ids=["nothing", "empty", "no-password", "no-email", "long-email", "long-password", "garbage",
         "unicode", "emoji-and-controls", "nul-byte", "crlf", "repeated-fields", "sql"],
)
def test_bad_input_gives_a_form_message_not_a_500(client, urls, data):
    resp = client.post(urls["login"], data=data)
    assert resp.status_code == 422, resp.get_data(as_text=True)[:500]
    html = resp.get_data(as_text=True)
    assert "<form" in html
    assert 'class="field-error"' in html or 'class="form-errors"' in html
    assert client.get(urls["home"]).status_code == 302


def test_invalid_utf8_in_the_form_is_a_form_message(client, urls):
    token = client.csrf_token()
    body = b"email=%ff%fe%fd@example.com&password=%c3%28&csrf_token=" + token.encode()
    resp = client.post(urls["login"], data=body, content_type="application/x-www-form-urlencoded", csrf=False)
    assert resp.status_code == 422
    assert BAD_LOGIN in resp.get_data(as_text=True)


def test_success_records_a_login_event_and_an_audit_entry(client, face, urls, principal, db):
    log_in(client, urls, principal.email, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    db.expire_all()
    event = db.scalar(select(LoginEvent))
    assert event.success is True and event.face == face
    assert event.email_tried == principal.email and event.ip == "198.51.100.7"
    column = LoginEvent.operator_id if face == "operator" else LoginEvent.customer_login_id
    assert db.scalar(select(func.count()).select_from(LoginEvent).where(column == principal.id)) == 1
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == f"{face}.login"))
    assert entry is not None and entry.entity_id == principal.id and entry.ip == "198.51.100.7"
    refreshed = db.get(Operator if face == "operator" else CustomerLogin, principal.id)
    assert refreshed.last_login_at is not None and refreshed.failed_logins == 0


def test_failure_records_a_login_event_and_an_audit_entry(client, face, urls, principal, db):
    log_in(client, urls, principal.email, "Not-the-password-1")
    log_in(client, urls, "Nobody@Example.com", PASSWORD)
    db.expire_all()
    events = {e.email_tried: e for e in db.scalars(select(LoginEvent))}
    assert events[principal.email].success is False and events[principal.email].reason == "password"
    assert events["nobody@example.com"].success is False and events["nobody@example.com"].reason == "unknown"
    failed = list(db.scalars(select(AuditEntry).where(AuditEntry.action == f"{face}.login_failed")))
    assert len(failed) == 2
    assert {e.entity_id for e in failed} == {principal.id, None}
    refreshed = db.get(Operator if face == "operator" else CustomerLogin, principal.id)
    assert refreshed.failed_logins == 1


def test_the_password_is_never_stored_in_events_or_audit(client, urls, principal, db):
    secret = "Wrong-but-secret-password-42"
    log_in(client, urls, principal.email, secret)
    log_in(client, urls, principal.email)
    db.expire_all()
    for entry in db.scalars(select(AuditEntry)):
        assert secret not in repr(entry.changes) and PASSWORD not in repr(entry.changes)
        assert secret not in entry.actor_name and PASSWORD not in entry.actor_name
    for event in db.scalars(select(LoginEvent)):
        assert secret not in event.email_tried and PASSWORD not in event.email_tried


def test_logged_in_user_visiting_the_login_page_goes_home(client, urls, principal):
    log_in(client, urls, principal.email)
    resp = client.get(urls["login"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["home"]


# --- access between faces --------------------------------------------------------------------


def test_customer_cannot_reach_staff(customer_client):
    assert customer_client.get("/staff/").status_code == 403


def test_operator_cannot_reach_selfcare(staff_client):
    assert staff_client.get("/").status_code == 403


@pytest.mark.parametrize(
    ("path", "login"),
    [("/", "/login"), ("/staff/", "/staff/login"), ("/staff/?page=2", "/staff/login")],
)
def test_anonymous_is_sent_to_the_right_login_with_next(client, path, login):
    resp = client.get(path)
    assert resp.status_code == 302
    parts = urlsplit(resp.headers["Location"])
    assert parts.path == login
    assert parse_qs(parts.query)["next"] == [path]


@pytest.mark.parametrize("face_", ["customer", "operator"])
def test_login_returns_to_next(client, db, face_):
    p = CustomerLoginFactory() if face_ == "customer" else OperatorFactory(admin=True)
    db.commit()
    target = "/?tab=x" if face_ == "customer" else "/staff/?page=2"
    start = client.get(target)
    login_url = location_path(start)
    resp = client.post(login_url, data={"email": p.email, "password": PASSWORD})
    assert resp.status_code == 302
    assert location_path(resp) == target


# --- logging out -----------------------------------------------------------------------------


def test_logout_by_get_is_not_allowed(client, urls, principal):
    log_in(client, urls, principal.email)
    assert client.get(urls["logout"]).status_code == 405
    assert client.get(urls["everywhere"]).status_code == 405
    # ...and did not log anyone out.
    assert client.get(urls["home"]).status_code == 200


def test_logout_ends_the_session_on_the_server(client, make_client, urls, principal, db):
    log_in(client, urls, principal.email)
    copy = copy_session_cookie(client, make_client)
    assert copy.get(urls["home"]).status_code == 200  # the copy works while the session lives

    resp = client.post(urls["logout"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]

    for c in (client, copy):
        for home, login in (("/", "/login"), ("/staff/", "/staff/login")):
            r = c.get(home)
            assert r.status_code == 302, (home, r.status_code)
            assert urlsplit(r.headers["Location"]).path == login
    db.expire_all()
    assert db.scalar(select(AuthSession)).revoked_at is not None


def test_logout_is_audited(client, face, urls, principal, db):
    log_in(client, urls, principal.email)
    client.post(urls["logout"])
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == f"{face}.logout")) is not None


def test_logout_when_not_logged_in_is_harmless(client, urls):
    resp = client.post(urls["logout"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]


def test_logout_everywhere_ends_other_browsers_sessions(client, make_client, urls, principal, db):
    other = make_client()
    log_in(client, urls, principal.email)
    log_in(other, urls, principal.email)
    copy = copy_session_cookie(client, make_client)
    assert other.get(urls["home"]).status_code == 200

    resp = client.post(urls["everywhere"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]
    for c in (client, other, copy):
        assert c.get(urls["home"]).status_code == 302
    db.expire_all()
    assert all(s.revoked_at is not None for s in db.scalars(select(AuthSession)))
    # A fresh login still works afterwards.
    assert log_in(make_client(), urls, principal.email).status_code == 302


def test_logout_everywhere_leaves_other_accounts_alone(client, make_client, urls, face, principal, db):
    someone = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    theirs = make_client()
    log_in(theirs, urls, someone.email)
    log_in(client, urls, principal.email)
    client.post(urls["everywhere"])
    assert theirs.get(urls["home"]).status_code == 200


def test_logout_everywhere_needs_a_login(client, urls):
    resp = client.post(urls["everywhere"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]


# --- session fixation ------------------------------------------------------------------------


def test_session_cookie_changes_at_login(client, urls, principal):
    client.get(urls["login"])  # the login page puts a CSRF token in the session: a cookie exists
    before = client.get_cookie("portal_session")
    assert before is not None
    log_in(client, urls, principal.email)
    after = client.get_cookie("portal_session")
    assert after is not None and after.value != before.value


def test_a_planted_session_token_is_not_used_after_login(client, make_client, urls, principal, db):
    # An attacker's token planted in the victim's cookie before login...
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = "planted-by-the-attacker"
        sess["extra"] = "left over"
    log_in(client, urls, principal.email)
    with client.session_transaction() as sess:
        assert sess[SESSION_KEY] != "planted-by-the-attacker"
        assert "extra" not in sess  # the old session's contents are dropped
        token = sess[SESSION_KEY]
    rows = list(db.scalars(select(AuthSession)))
    assert len(rows) == 1
    assert rows[0].token_hash == _hash(token) != _hash("planted-by-the-attacker")
    # ...gives the attacker nothing.
    attacker = make_client()
    with attacker.session_transaction() as sess:
        sess[SESSION_KEY] = "planted-by-the-attacker"
    assert attacker.get(urls["home"]).status_code == 302


def test_a_forged_token_in_the_cookie_is_refused(client, urls):
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = "x" * 43
    assert client.get(urls["home"]).status_code == 302
    with client.session_transaction() as sess:
        sess[SESSION_KEY] = {"not": "a string"}
    assert client.get(urls["home"]).status_code == 302


# --- password reset --------------------------------------------------------------------------

CONFIRMATION = "If an account with that e-mail exists, we have sent it a link to set a new password."


def reset_link(outbox, email) -> str:
    mails = [m for m in outbox() if m["To"] == email]
    assert len(mails) == 1, [m["To"] for m in outbox()]
    match = re.search(r"https?://\S+/password/reset/\S+", mails[0].text)
    assert match, mails[0].text
    return urlsplit(match.group(0)).path


def ask_for_reset(client, urls, email):
    return client.post(urls["forgot"], data={"email": email})


def test_forgot_page_renders(client, urls):
    resp = client.get(urls["forgot"])
    assert resp.status_code == 200
    assert 'name="email"' in resp.get_data(as_text=True)


def test_forgot_answers_the_same_whether_or_not_the_account_exists(client, make_client, urls, principal, outbox):
    known = ask_for_reset(client, urls, principal.email)
    other = make_client()
    unknown = ask_for_reset(other, urls, "nobody@example.com")
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    assert location_path(known) == urls["login"]
    for c in (client, other):
        page = c.get(urls["login"]).get_data(as_text=True)
        assert CONFIRMATION in page
    # Only the real account got an e-mail.
    assert [m["To"] for m in outbox()] == [principal.email]


def test_forgot_sends_nothing_to_an_inactive_account(client, urls, principal, outbox, db):
    principal.active = False
    db.commit()
    resp = ask_for_reset(client, urls, principal.email)
    assert resp.status_code == 302
    assert outbox() == []


def test_forgot_with_a_bad_address_is_a_form_message(client, urls, outbox):
    for data in ({}, {"email": ""}, {"email": "not-an-address"}, {"email": "x" * 10_000 + "@example.com"},
                 {"email": "nul\x00@example.com"}):
        resp = client.post(urls["forgot"], data=data)
        assert resp.status_code == 422, data
        assert "<form" in resp.get_data(as_text=True)
    assert outbox() == []


def test_reset_link_sets_a_new_password_once(client, make_client, urls, principal, outbox, db):
    ask_for_reset(client, urls, principal.email)
    link = reset_link(outbox, principal.email)
    assert link.startswith(urls["reset"])

    assert client.get(link).status_code == 200
    resp = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]

    # The token is spent.
    again = client.get(link)
    assert again.status_code == 410
    assert "expired or was already used" in again.get_data(as_text=True)
    assert client.post(link, data={"password": "Another-password-9", "confirm": "Another-password-9"}).status_code == 410

    # The new password works, the old one does not.
    assert log_in(make_client(), urls, principal.email, PASSWORD).status_code == 422
    assert log_in(make_client(), urls, principal.email, NEW_PASSWORD).status_code == 302
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "password.reset")) is not None


def test_reset_ends_existing_sessions(client, make_client, urls, principal, outbox):
    victim_browser = make_client()
    log_in(victim_browser, urls, principal.email)
    stolen = copy_session_cookie(victim_browser, make_client)
    assert stolen.get(urls["home"]).status_code == 200

    ask_for_reset(client, urls, principal.email)
    link = reset_link(outbox, principal.email)
    client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})

    assert victim_browser.get(urls["home"]).status_code == 302
    assert stolen.get(urls["home"]).status_code == 302


def test_expired_reset_link_is_refused(client, urls, principal, outbox, db):
    ask_for_reset(client, urls, principal.email)
    link = reset_link(outbox, principal.email)
    db.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    resp = client.get(link)
    assert resp.status_code == 410
    assert "expired or was already used" in resp.get_data(as_text=True)
    assert client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 410
    assert log_in(client, urls, principal.email, NEW_PASSWORD).status_code == 422


def test_a_newer_reset_link_replaces_the_older(client, urls, principal, outbox):
    ask_for_reset(client, urls, principal.email)
    first = reset_link(outbox, principal.email)
    outbox_before = len(outbox())
    ask_for_reset(client, urls, principal.email)
    mails = outbox()
    assert len(mails) == outbox_before + 1
    second = urlsplit(re.search(r"https?://\S+/password/reset/\S+", mails[-1].text).group(0)).path
    assert first != second
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200


def test_a_password_change_in_the_profile_ends_reset_links(client, make_client, outbox, db):
    """A link asked for before the owner changed the password (say, by someone who read the
    mailbox) no longer sets one afterwards."""
    login = CustomerLoginFactory()
    db.commit()
    urls = FACES["customer"]
    ask_for_reset(make_client(), urls, login.email)
    link = reset_link(outbox, login.email)
    assert log_in(client, urls, login.email).status_code == 302
    resp = client.post("/profile/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD})
    assert resp.status_code == 302
    attacker = make_client()
    assert attacker.get(link).status_code == 410
    assert attacker.post(link, data={"password": "Attackers-choice-42", "confirm": "Attackers-choice-42"}).status_code == 410
    assert log_in(make_client(), urls, login.email, NEW_PASSWORD).status_code == 302


def test_a_new_password_ends_every_outstanding_link(face, principal, db, app):
    """Whatever sets a new password (profile, reset link, invitation link) spends every
    reset and invitation link of that login, of either face."""
    from portal.domain import accounts

    first = accounts.create_reset_token(db, principal, timedelta(hours=1))
    # A second live link (an invitation and a reset can both be out).
    second = "second-" + first
    db.add(PasswordResetToken(token_hash=accounts._token_hash(second), face=face,
                              customer_login_id=principal.id if face == "customer" else None,
                              operator_id=principal.id if face == "operator" else None,
                              expires_at=utcnow() + timedelta(hours=1)))
    db.commit()
    with app.test_request_context():
        accounts.reset_password(db, Face(face), first, NEW_PASSWORD)
    db.commit()
    assert accounts.valid_reset_token(db, Face(face), second) is None
    third = accounts.create_reset_token(db, principal, timedelta(hours=1))
    db.commit()
    with app.test_request_context():
        accounts.set_password(db, principal, "Yet-another-password-3", actor=None)
    db.commit()
    assert accounts.valid_reset_token(db, Face(face), third) is None


def test_an_operator_invitation_link_dies_with_a_password_change(db, app):
    from portal.domain import accounts
    from portal.domain import operators as operator_rules
    from portal.domain.actors import Actor

    admin = OperatorFactory(admin=True)
    db.commit()
    with app.test_request_context():
        op, token = operator_rules.add_operator(db, Actor.operator(admin), email="new.colleague@example.com",
                                                name="New Colleague", password=None, role_ids=[], location_ids=[],
                                                link_max_age=timedelta(days=3))
        db.commit()
        assert accounts.valid_reset_token(db, Face.OPERATOR, token) is not None
        accounts.set_password(db, op, NEW_PASSWORD, actor=Actor.operator(admin))
        db.commit()
    assert accounts.valid_reset_token(db, Face.OPERATOR, token) is None


def test_reset_token_of_one_face_does_not_work_on_the_other(client, face, principal, outbox):
    urls = FACES[face]
    other_face = FACES["operator" if face == "customer" else "customer"]
    ask_for_reset(client, urls, principal.email)
    token = reset_link(outbox, principal.email).rsplit("/", 1)[1]
    cross = other_face["reset"] + token
    assert client.get(cross).status_code == 410
    assert client.post(cross, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 410
    # ...and the link still works where it belongs.
    assert client.get(urls["reset"] + token).status_code == 200


@pytest.mark.parametrize("token", ["nonsense", "x" * 2000, "%00", "..%2F..%2Fetc"])
def test_made_up_reset_tokens_are_refused(client, urls, token):
    assert client.get(urls["reset"] + token).status_code in (404, 410)


@pytest.mark.parametrize(
    ("password", "confirm", "field", "message"),
    [
        ("short", "short", "password", "Use at least 10 characters."),
        ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "password", "This password is too easy to guess."),
        (NEW_PASSWORD, "Something-else-12", "confirm", "The passwords differ."),
        ("", "", "password", None),
        ("p" * 500, "p" * 500, "password", None),
    ],
    ids=["short", "repetitive", "mismatch", "empty", "too-long"],
)
def test_weak_new_password_is_refused_next_to_the_field(client, urls, principal, outbox, password, confirm, field,
                                                       message):
    ask_for_reset(client, urls, principal.email)
    link = reset_link(outbox, principal.email)
    resp = client.post(link, data={"password": password, "confirm": confirm})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', html, re.S)
    assert error, html
    if message:
        assert message in error.group(1)
    # The token was not spent: the link still works and can set a good password.
    assert client.get(link).status_code == 200
    ok = client.post(link, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert ok.status_code == 302


def test_password_equal_to_the_email_is_refused(client, urls, principal, outbox):
    ask_for_reset(client, urls, principal.email)
    link = reset_link(outbox, principal.email)
    resp = client.post(link, data={"password": principal.email, "confirm": principal.email})
    assert resp.status_code == 422
    assert "must differ from the e-mail" in resp.get_data(as_text=True)


# --- second factor ---------------------------------------------------------------------------


@pytest.fixture
def totp_principal(principal, db, app):
    secret = new_secret()
    codes, hashes = new_recovery_codes()
    principal.totp_secret = encrypt_secret(secret)
    principal.totp_enabled_at = utcnow()
    principal.recovery_code_hashes = hashes
    db.commit()
    return principal, secret, codes


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    now = utcnow()
    valid = {totp.at(now + timedelta(seconds=s)) for s in range(-60, 61, 15)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def test_second_factor_is_asked_after_the_password(client, urls, totp_principal):
    p, secret, _codes = totp_principal
    resp = log_in(client, urls, p.email)
    assert resp.status_code == 302
    assert urlsplit(resp.headers["Location"]).path == urls["verify"]
    # Half logged in is not logged in.
    assert client.get(urls["home"]).status_code == 302
    assert client.get(urls["verify"]).status_code == 200

    bad = client.post(urls["verify"], data={"code": wrong_code(secret)})
    assert bad.status_code == 422
    assert client.get(urls["home"]).status_code == 302

    ok = client.post(location_path(resp), data={"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302
    assert location_path(ok) == urls["home"]
    assert client.get(urls["home"]).status_code == 200


def test_second_factor_gets_a_fresh_session(client, make_client, urls, totp_principal, db):
    p, secret, _codes = totp_principal
    log_in(client, urls, p.email)
    pending_copy = copy_session_cookie(client, make_client)
    pending_token = session_token(client)
    client.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()})
    assert session_token(client) != pending_token
    # The half-logged-in cookie cannot be finished or used once the real session exists.
    assert pending_copy.get(urls["home"]).status_code == 302
    assert pending_copy.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert pending_copy.get(urls["home"]).status_code == 302


def test_second_factor_keeps_next(client, face, totp_principal):
    p, secret, _codes = totp_principal
    urls = FACES[face]
    target = "/staff/?page=3" if face == "operator" else "/?tab=1"
    resp = client.post(f"{urls['login']}?next={target.replace('?', '%3F').replace('=', '%3D')}",
                       data={"email": p.email, "password": PASSWORD})
    ok = client.post(location_path(resp), data={"code": pyotp.TOTP(secret).now()})
    assert location_path(ok) == target


def test_second_factor_wrong_password_does_not_reach_verify(client, urls, totp_principal):
    p, _secret, _codes = totp_principal
    resp = log_in(client, urls, p.email, "Not-the-password-1")
    assert resp.status_code == 422
    assert client.get(urls["verify"]).status_code == 302


def test_verify_without_a_pending_login_goes_to_login(client, urls):
    resp = client.get(urls["verify"])
    assert resp.status_code == 302
    assert location_path(resp) == urls["login"]


@pytest.mark.parametrize("code", ["", "abc", "1" * 50, "\x00\x00\x00\x00\x00\x00", "12 34 5"])
def test_second_factor_garbage_is_a_form_message(client, urls, totp_principal, code):
    p, _secret, _codes = totp_principal
    log_in(client, urls, p.email)
    resp = client.post(urls["verify"], data={"code": code})
    assert resp.status_code == 422
    assert client.get(urls["home"]).status_code == 302


def test_recovery_code_works_once(client, make_client, urls, totp_principal, db):
    p, _secret, codes = totp_principal
    log_in(client, urls, p.email)
    resp = client.post(urls["verify"], data={"code": codes[0].upper()})
    assert resp.status_code == 302
    assert client.get(urls["home"]).status_code == 200

    again = make_client()
    log_in(again, urls, p.email)
    assert again.post(urls["verify"], data={"code": codes[0]}).status_code == 422
    assert again.get(urls["home"]).status_code == 302
    assert again.post(urls["verify"], data={"code": codes[1]}).status_code == 302
    db.expire_all()
    model = Operator if isinstance(p, Operator) else CustomerLogin
    assert len(db.get(model, p.id).recovery_code_hashes) == len(codes) - 2


def test_second_factor_attempts_are_audited(client, face, urls, totp_principal, db):
    p, secret, _codes = totp_principal
    log_in(client, urls, p.email)
    client.post(urls["verify"], data={"code": wrong_code(secret)})
    client.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()})
    actions = set(db.scalars(select(AuditEntry.action)))
    assert {f"{face}.second_factor_failed", f"{face}.second_factor_ok"} <= actions


def test_logout_everywhere_also_ends_pending_second_factor_logins(client, make_client, urls, totp_principal):
    p, secret, _codes = totp_principal
    log_in(client, urls, p.email)
    client.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()})
    pending = make_client()
    log_in(pending, urls, p.email)
    client.post(urls["everywhere"])
    assert pending.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert pending.get(urls["home"]).status_code == 302


# --- helpers in conftest still do what the rest of the suite relies on ------------------------


def test_conftest_login_helpers(client, make_client, customer_login, operator):
    assert login_customer(client, customer_login.email).status_code == 302
    assert login_operator(make_client(), operator.email).status_code == 302


# --- a TOTP code works once (RFC 6238 §5.2) --------------------------------------------------


def test_a_totp_code_logs_in_only_once(client, make_client, urls, totp_principal):
    """A code seen over a shoulder is worthless once its owner has used it: a second (and a
    third) fresh login within the same 30 s is refused, and not logged in."""
    p, secret, _codes = totp_principal
    code = pyotp.TOTP(secret).now()
    log_in(client, urls, p.email)
    assert client.post(urls["verify"], data={"code": code}).status_code == 302
    assert client.get(urls["home"]).status_code == 200
    for _ in range(2):
        other = make_client()
        log_in(other, urls, p.email)
        assert other.post(urls["verify"], data={"code": code}).status_code == 422
        assert other.get(urls["home"]).status_code == 302


def test_an_earlier_totp_code_is_refused_after_a_later_one(client, make_client, urls, totp_principal):
    """The window accepts the previous and the next step (clock drift); once the next step's
    code has been used, the current and the previous ones are spent too."""
    p, secret, _codes = totp_principal
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC)
    log_in(client, urls, p.email)
    assert client.post(urls["verify"], data={"code": totp.at(now + timedelta(seconds=30))}).status_code == 302
    other = make_client()
    log_in(other, urls, p.email)
    for earlier in (totp.at(now), totp.at(now - timedelta(seconds=30))):
        if earlier != totp.at(now + timedelta(seconds=30)):
            assert other.post(urls["verify"], data={"code": earlier}).status_code == 422
    assert other.get(urls["home"]).status_code == 302


def test_a_failed_totp_code_does_not_spend_the_right_one(client, urls, totp_principal):
    p, secret, _codes = totp_principal
    log_in(client, urls, p.email)
    assert client.post(urls["verify"], data={"code": wrong_code(secret)}).status_code == 422
    assert client.post(urls["verify"], data={"code": pyotp.TOTP(secret).now()}).status_code == 302
