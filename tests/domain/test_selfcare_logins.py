"""Selfcare logins: invitations (a link that works once, dies when sent again or revoked,
and expires), roles with an owner kept by the customer's own users, disabling; audited."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain import selfcare_logins as rules
from portal.domain.accounts import authenticate
from portal.domain.actors import Actor
from portal.models import AuditEntry, CustomerLogin, Face, LoginRole, LoginState, PasswordResetToken
from portal.models.base import utcnow
from tests.factories import CustomerFactory, CustomerLoginFactory, OperatorFactory

AGE = timedelta(days=7)
NEW_PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(db):
    return Actor.operator(OperatorFactory(admin=True))


def _actions(db, action):
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_invite_makes_a_pending_login_with_a_link(db, staff):
    customer = CustomerFactory()
    login, token = rules.invite_login(db, staff, customer, " Acc@Example.com ", "billing", AGE)
    assert login.email == "acc@example.com" and login.role == LoginRole.BILLING
    assert login.state == LoginState.INVITED and login.invited_by == staff.name
    assert rules.invitation_login(db, token) == login
    # The random password is unusable: nobody logs in before the link is used.
    assert authenticate(db, Face.CUSTOMER, login.email, "", ip=None, user_agent=None) is None
    assert _actions(db, "customer_login.invited")[0].entity_id == login.id


def test_invite_refuses_a_bad_or_taken_address_and_a_bad_role(db, staff):
    customer = CustomerFactory()
    taken = CustomerLoginFactory()
    for email, role, field in [("nope", "owner", "email"), (taken.email, "owner", "email"), ("x@example.com", "boss", "role")]:
        with pytest.raises(DomainError) as exc:
            rules.invite_login(db, staff, customer, email, role, AGE)
        assert exc.value.field == field


def test_accept_sets_the_password_once_and_activates(db, staff):
    login, token = rules.invite_login(db, staff, CustomerFactory(), "a@example.com", "owner", AGE)
    rules.accept_invitation(db, token, NEW_PASSWORD)
    assert login.state == LoginState.ACTIVE and login.activated_at is not None
    assert authenticate(db, Face.CUSTOMER, "a@example.com", NEW_PASSWORD, ip=None, user_agent=None) == login
    assert rules.invitation_login(db, token) is None
    with pytest.raises(DomainError):
        rules.accept_invitation(db, token, "another long password here")
    assert _actions(db, "customer_login.invitation_accepted")


def test_accept_holds_the_password_rules(db, staff):
    login, token = rules.invite_login(db, staff, CustomerFactory(), "a@example.com", "owner", AGE)
    with pytest.raises(DomainError) as exc:
        rules.accept_invitation(db, token, "short")
    assert exc.value.field == "password"
    assert login.state == LoginState.INVITED and rules.invitation_login(db, token) == login


def test_resend_kills_the_old_link(db, staff):
    login, old = rules.invite_login(db, staff, CustomerFactory(), "a@example.com", "owner", AGE)
    new = rules.resend_invitation(db, staff, login, AGE)
    assert rules.invitation_login(db, old) is None
    assert rules.invitation_login(db, new) == login
    with pytest.raises(DomainError):
        rules.accept_invitation(db, old, NEW_PASSWORD)
    assert _actions(db, "customer_login.invitation_resent")


def test_expired_link_is_refused(db, staff):
    login, token = rules.invite_login(db, staff, CustomerFactory(), "a@example.com", "owner", AGE)
    row = db.scalar(select(PasswordResetToken).where(PasswordResetToken.customer_login_id == login.id))
    row.expires_at = utcnow() - timedelta(seconds=1)
    assert rules.invitation_login(db, token) is None
    with pytest.raises(DomainError):
        rules.accept_invitation(db, token, NEW_PASSWORD)


def test_revoke_removes_the_pending_login_and_its_link(db, staff):
    login, token = rules.invite_login(db, staff, CustomerFactory(), "a@example.com", "owner", AGE)
    login_id = login.id
    rules.revoke_invitation(db, staff, login)
    assert db.get(CustomerLogin, login_id) is None
    assert rules.invitation_login(db, token) is None
    assert _actions(db, "customer_login.invitation_revoked")[0].entity_id == login_id


def test_only_a_pending_invitation_is_revoked_or_resent(db, staff):
    login = CustomerLoginFactory()
    with pytest.raises(DomainError):
        rules.revoke_invitation(db, staff, login)
    with pytest.raises(DomainError):
        rules.resend_invitation(db, staff, login, AGE)


def test_disable_and_enable(db, staff):
    login = CustomerLoginFactory()
    rules.disable_login(db, staff, login)
    assert login.state == LoginState.DISABLED
    with pytest.raises(DomainError):
        rules.disable_login(db, staff, login)
    rules.enable_login(db, staff, login)
    assert login.state == LoginState.ACTIVE
    assert _actions(db, "customer_login.disabled") and _actions(db, "customer_login.enabled")


def test_existing_logins_are_owners_and_open_everything(db):
    login = CustomerLoginFactory()
    db.flush()
    assert login.role == LoginRole.OWNER and login.state == LoginState.ACTIVE
    assert all(rules.may_open(login, area) for area in ("billing", "services", "users"))


def test_roles_open_their_areas_only(db):
    billing = CustomerLoginFactory(role=LoginRole.BILLING)
    technical = CustomerLoginFactory(role=LoginRole.TECHNICAL)
    assert rules.may_open(billing, "billing") and not rules.may_open(billing, "services")
    assert rules.may_open(technical, "services") and not rules.may_open(technical, "billing")
    assert not rules.may_open(billing, "users") and not rules.may_open(technical, "users")


def test_the_customers_own_users_keep_an_owner(db, staff):
    owner = CustomerLoginFactory()
    db.flush()
    me = Actor.customer(owner)
    with pytest.raises(DomainError):
        rules.change_role(db, me, owner, "billing")
    with pytest.raises(DomainError):
        rules.disable_login(db, me, owner)
    # Staff may (they can invite an owner again).
    assert rules.change_role(db, staff, owner, "billing") is True
    assert _actions(db, "customer_login.role_changed")


def test_a_customer_acts_only_on_their_own_logins(db):
    mine, theirs = CustomerLoginFactory(), CustomerLoginFactory()
    db.flush()
    with pytest.raises(DomainError):
        rules.disable_login(db, Actor.customer(mine), theirs)
    with pytest.raises(DomainError):
        rules.invite_login(db, Actor.customer(mine), theirs.customer, "x@example.com", "owner", AGE)
