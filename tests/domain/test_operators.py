"""Operators and roles: the last-admin rule, deactivation ending sessions, two-factor reset
and enrolment, mandatory TOTP with exemptions; every change audited."""
from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain import operators as rules
from portal.domain.accounts import ensure_admin_role, ensure_rights, valid_reset_token
from portal.domain.actors import Actor
from portal.models import AuditEntry, AuthSession, Face, Operator, Role
from portal.models.base import utcnow
from portal.security.totp import decrypt_secret
from tests.factories import LocationFactory, OperatorFactory

AGE = timedelta(days=3)


def _actor(op):
    return Actor.operator(op)


def _actions(db, action):
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_last_admin_cannot_lose_the_admin_right(db):
    admin = OperatorFactory(admin=True)
    admin_role = admin.roles[0]
    clerk_role = Role(name="Clerk", rights=[ensure_rights(db)["customers.read"]])
    db.add(clerk_role)
    db.flush()
    with pytest.raises(rules.OperatorError) as err:
        rules.update_operator(db, _actor(admin), admin, name=admin.name, role_ids=[clerk_role.id], location_ids=[])
    assert err.value.field == "role_ids"
    with pytest.raises(rules.OperatorError):
        rules.save_role(db, _actor(admin), admin_role, name=admin_role.name, right_codes=["customers.read"])
    with pytest.raises(rules.OperatorError):
        rules.delete_role(db, _actor(admin), admin_role)
    # The system (CLI) is held to the same floor: someone must stay able to manage operators.
    with pytest.raises(rules.OperatorError):
        rules.deactivate_operator(db, Actor.system(), admin)
    assert admin.active and [r.name for r in admin.roles] == [admin_role.name]
    assert "operators.admin" in {r.code for r in admin_role.rights}


def test_an_admin_cannot_remove_their_own_admin_right_even_with_another_admin(db):
    me = OperatorFactory(admin=True)
    other = OperatorFactory(admin=True)
    clerk = Role(name="Clerk", rights=[ensure_rights(db)["customers.read"]])
    db.add(clerk)
    db.flush()
    with pytest.raises(rules.OperatorError) as err:
        rules.update_operator(db, _actor(me), me, name=me.name, role_ids=[clerk.id], location_ids=[])
    assert "your own" in str(err.value)
    with pytest.raises(rules.OperatorError):
        rules.deactivate_operator(db, _actor(me), me)
    # …but may take it from someone else while an admin remains.
    rules.update_operator(db, _actor(me), other, name=other.name, role_ids=[clerk.id], location_ids=[])
    assert not other.has_right("operators.admin")
    entry = _actions(db, "operator.updated")[0]
    assert entry.entity_id == other.id and entry.changes["roles"] == [["Administrator"], ["Clerk"]]
    assert rules.active_admin_count(db) == 1


def test_add_operator_with_password_or_invitation(db):
    admin = OperatorFactory(admin=True)
    role = ensure_admin_role(db)
    loc = LocationFactory()
    op, token = rules.add_operator(db, _actor(admin), email=" New@Example.com ", name="New One",
                                   password="Long-enough-1", role_ids=[role.id], location_ids=[loc.id],
                                   link_max_age=AGE)
    assert token is None and op.email == "new@example.com" and op.location_ids == {loc.id}
    invited, token = rules.add_operator(db, _actor(admin), email="inv@example.com", name="Invited", password=None,
                                        role_ids=[], location_ids=[], link_max_age=AGE)
    assert token and valid_reset_token(db, Face.OPERATOR, token).operator_id == invited.id
    assert len(_actions(db, "operator.created")) == 2 and len(_actions(db, "operator.invited")) == 1
    for kw, field in [({"email": "new@example.com"}, "email"), ({"email": "nope"}, "email"),
                      ({"name": " "}, "name"), ({"password": "short"}, "password"),
                      ({"role_ids": [99999]}, "role_ids"), ({"location_ids": [99999]}, "location_ids")]:
        args = {"email": "x@example.com", "name": "X", "password": "Long-enough-1", "role_ids": [],
                "location_ids": [], **kw}
        with pytest.raises(DomainError) as err:
            rules.add_operator(db, _actor(admin), link_max_age=AGE, **args)
        assert err.value.field == field


def test_deactivate_ends_sessions_and_reactivate(db):
    admin = OperatorFactory(admin=True)
    clerk = OperatorFactory(rights=("customers.read",))
    now = utcnow()
    db.add(AuthSession(token_hash="x" * 64, face=Face.OPERATOR, operator_id=clerk.id, session_version=1,
                       last_seen_at=now, expires_at=now + timedelta(hours=1)))
    db.flush()
    version = clerk.session_version
    assert rules.deactivate_operator(db, _actor(admin), clerk) == 1
    assert not clerk.active and clerk.session_version == version + 1
    assert db.scalar(select(AuthSession.revoked_at)) is not None
    assert _actions(db, "operator.deactivated")[0].changes == {"active": [True, False], "sessions_ended": 1}
    with pytest.raises(rules.OperatorError):
        rules.deactivate_operator(db, _actor(admin), clerk)
    rules.reactivate_operator(db, _actor(admin), clerk)
    assert clerk.active and _actions(db, "operator.reactivated")


def test_roles_create_edit_delete_and_unknown_right(db):
    admin = OperatorFactory(admin=True)
    role = rules.save_role(db, _actor(admin), None, name="Billing", right_codes=["billing.run", "payments.write"])
    assert [r.code for r in role.rights] == ["billing.run", "payments.write"]
    rules.save_role(db, _actor(admin), role, name="Billing", right_codes=["billing.run"])
    assert _actions(db, "role.updated")[0].changes == {"rights": [["billing.run", "payments.write"], ["billing.run"]]}
    with pytest.raises(rules.OperatorError) as err:
        rules.save_role(db, _actor(admin), None, name="Bad", right_codes=["root.everything"])
    assert err.value.field == "rights"
    with pytest.raises(rules.OperatorError) as err:
        rules.save_role(db, _actor(admin), None, name="billing", right_codes=[])
    assert err.value.field == "name"
    rules.delete_role(db, _actor(admin), role)
    assert db.get(Role, role.id) is None and _actions(db, "role.deleted")


def test_reset_totp_clears_secret_and_codes(db, app):
    admin = OperatorFactory(admin=True)
    op = OperatorFactory(rights=("customers.read",))
    with pytest.raises(rules.OperatorError):
        rules.reset_operator_totp(db, _actor(admin), op)
    rules.start_totp_enrolment(db, op, _actor(op))
    secret = decrypt_secret(op.totp_secret)
    codes = rules.confirm_totp(db, op, pyotp.TOTP(secret).now(), _actor(op))
    assert len(codes) == 10 and op.totp_enabled_at is not None
    rules.reset_operator_totp(db, _actor(admin), op)
    assert op.totp_secret is None and op.totp_enabled_at is None and op.recovery_code_hashes == []
    assert _actions(db, "operator.totp_reset")[0].changes == {"totp": [True, False]}


def test_totp_required_and_exempt(db):
    op = OperatorFactory(email="clerk@example.com")
    off = {"OPERATOR_TOTP_REQUIRED": False, "OPERATOR_TOTP_EXEMPT": []}
    on = {"OPERATOR_TOTP_REQUIRED": True, "OPERATOR_TOTP_EXEMPT": ["Demo@example.com"]}
    assert not rules.needs_enrolment(op, off)
    assert rules.needs_enrolment(op, on)
    demo = OperatorFactory(email="demo@example.com")
    assert not rules.needs_enrolment(demo, on)
    rules.start_totp_enrolment(db, op, _actor(op))
    with pytest.raises(rules.OperatorError) as err:
        rules.confirm_totp(db, op, "000000", _actor(op))
    assert err.value.field == "code"
    rules.confirm_totp(db, op, pyotp.TOTP(decrypt_secret(op.totp_secret)).now(), _actor(op))
    assert not rules.needs_enrolment(op, on)
    with pytest.raises(rules.OperatorError):
        rules.disable_totp(db, op, "Correct-horse-1", _actor(op), on)
    rules.disable_totp(db, op, "Correct-horse-1", _actor(op), off)
    assert op.totp_enabled_at is None
    assert db.scalars(select(Operator)).all()


def test_a_location_limited_admin_manages_only_their_locations(db):
    a, b = LocationFactory(), LocationFactory()
    OperatorFactory(admin=True)  # an unlimited admin exists
    limited = OperatorFactory(admin=True)
    limited.locations = [a]
    db.flush()
    with pytest.raises(rules.OperatorError) as err:
        rules.add_operator(db, _actor(limited), email="x@example.com", name="X", password="Long-enough-1",
                           role_ids=[], location_ids=[], link_max_age=AGE)
    assert err.value.field == "location_ids"
    with pytest.raises(rules.OperatorError):
        rules.add_operator(db, _actor(limited), email="x@example.com", name="X", password="Long-enough-1",
                           role_ids=[], location_ids=[a.id, b.id], link_max_age=AGE)
    op, _ = rules.add_operator(db, _actor(limited), email="x@example.com", name="X", password="Long-enough-1",
                               role_ids=[], location_ids=[a.id], link_max_age=AGE)
    assert op.location_ids == {a.id}
    elsewhere = OperatorFactory()
    elsewhere.locations = [b]
    db.flush()
    with pytest.raises(rules.OperatorError):
        rules.update_operator(db, _actor(limited), elsewhere, name="Y", role_ids=[], location_ids=[a.id])
    with pytest.raises(rules.OperatorError):
        rules.deactivate_operator(db, _actor(limited), elsewhere)
    rules.update_operator(db, _actor(limited), op, name="X2", role_ids=[], location_ids=[a.id])
    assert op.name == "X2"
    rules.deactivate_operator(db, _actor(limited), op)
    assert not op.active
