"""A TOTP code is accepted once: the last accepted time step is kept per login and that step or
an earlier one is refused (RFC 6238 §5.2) — for logging in, for confirming enrolment and for
the code that proves it is the owner — atomically, in the database."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyotp
import pytest
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.domain import DomainError
from portal.domain import operators as operator_rules
from portal.domain import security as customer_rules
from portal.domain.actors import Actor
from portal.extensions import db as _db
from portal.models import CustomerLogin, Operator
from portal.models.base import utcnow
from portal.security.totp import accept_totp, encrypt_secret, new_secret
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory

FACES = {"customer": ("/login", "/login/verify", "/"), "operator": ("/staff/login", "/staff/login/verify", "/staff/")}


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture
def principal(face, db):
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    return p


def _rules(principal):
    return operator_rules if isinstance(principal, Operator) else customer_rules


def _actor(principal):
    return Actor.operator(principal) if isinstance(principal, Operator) else Actor.customer(principal)


def _with_totp(principal, db) -> str:
    secret = new_secret()
    principal.totp_secret = encrypt_secret(secret)
    principal.totp_enabled_at = utcnow()
    db.commit()
    return secret


def _log_in(client, face, email, code):
    login, verify, _home = FACES[face]
    client.post(login, data={"email": email, "password": PASSWORD})
    return client.post(verify, data={"code": code})


def test_the_code_that_enables_2fa_cannot_log_in(make_client, face, principal, db):
    rules = _rules(principal)
    secret = rules.start_totp_enrolment(db, principal, _actor(principal))
    code = pyotp.TOTP(secret).now()
    rules.confirm_totp(db, principal, code, _actor(principal))
    db.commit()
    client = make_client()
    assert _log_in(client, face, principal.email, code).status_code == 422
    assert client.get(FACES[face][2]).status_code == 302


def test_the_enrolment_page_refuses_a_spent_code(face, principal, db):
    """Confirming with a code already used (here: to prove the owner's presence) is refused."""
    rules = _rules(principal)
    secret = rules.start_totp_enrolment(db, principal, _actor(principal))
    code = pyotp.TOTP(secret).now()
    assert accept_totp(db, principal, code, secret=secret)
    with pytest.raises(DomainError):
        rules.confirm_totp(db, principal, code, _actor(principal))


def test_the_code_that_logged_in_cannot_prove_the_owner(client, face, principal, db):
    """Renewing recovery codes takes a current code or the password: not a spent code."""
    secret = _with_totp(principal, db)
    code = pyotp.TOTP(secret).now()
    assert _log_in(client, face, principal.email, code).status_code == 302
    db.expire_all()
    fresh = db.get(type(principal), principal.id)
    with pytest.raises(DomainError):
        _rules(fresh).regenerate_recovery_codes(db, fresh, code, _actor(fresh))
    assert _rules(fresh).regenerate_recovery_codes(db, fresh, PASSWORD, _actor(fresh))


def test_accepting_records_the_step(principal, db):
    secret = _with_totp(principal, db)
    at = datetime.now(UTC)
    totp = pyotp.TOTP(secret)
    assert accept_totp(db, principal, totp.at(at))
    db.commit()
    db.expire_all()
    assert db.get(type(principal), principal.id).totp_last_step == totp.timecode(at)
    assert not accept_totp(db, principal, totp.at(at))


def test_the_check_is_made_by_the_database_not_the_loaded_object(principal, db):
    """A login object loaded before another request spent the code (its totp_last_step stale)
    still cannot spend it again: the condition is in the UPDATE."""
    secret = _with_totp(principal, db)
    code = pyotp.TOTP(secret).now()
    assert accept_totp(db, principal, code)
    db.commit()
    set_committed_value(principal, "totp_last_step", None)
    assert not accept_totp(db, principal, code)


def test_two_concurrent_uses_of_one_code_only_one_wins(app, face, principal, db):
    """Two transactions using the same code at once: the second waits for the first's row
    lock and then finds the step taken (PostgreSQL; SQLite serialises writers anyway)."""
    if _db.engine.dialect.name != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    secret = _with_totp(principal, db)
    code = pyotp.TOTP(secret).now()
    model, pid = type(principal), principal.id
    results = {}

    first = Session(_db.engine)
    results["first"] = accept_totp(first, first.get(model, pid), code)  # holds the row lock

    def second():
        with app.app_context():
            s = Session(_db.engine)
            try:
                results["second"] = accept_totp(s, s.get(model, pid), code)
                s.commit()
            finally:
                s.close()

    t = threading.Thread(target=second)
    t.start()
    t.join(0.5)
    assert t.is_alive(), "the second UPDATE should wait for the first transaction"
    first.commit()
    first.close()
    t.join(10)
    assert results == {"first": True, "second": False}


def test_models_have_the_column():
    assert "totp_last_step" in CustomerLogin.__table__.c
    assert "totp_last_step" in Operator.__table__.c
