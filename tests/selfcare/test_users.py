"""Selfcare users: the owner invites users with a role, sends again, revokes, changes roles;
the account keeps an active owner; limited logins cannot open the page; read-only
impersonation cannot change anything; another customer's login is a 404."""
from __future__ import annotations

import re

from sqlalchemy import select

from portal.models import CustomerLogin, LoginRole, LoginState
from tests.factories import CustomerLoginFactory


def body(resp) -> str:
    return resp.get_data(as_text=True)


def test_owner_invites_a_billing_user(customer_client, customer_login, db, outbox):
    page = customer_client.get("/users")
    assert page.status_code == 200 and customer_login.email in body(page)
    resp = customer_client.post("/users", data={"email": "acc@firm.example", "role": "billing"})
    assert resp.status_code == 303
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.email == "acc@firm.example"))
    assert login.customer_id == customer_login.customer_id and login.role == LoginRole.BILLING
    assert login.state == LoginState.INVITED and login.invited_by == customer_login.email
    (mail,) = outbox()
    assert mail["To"] == "acc@firm.example" and re.search(r"/invitation/\S+", mail.text)


def test_invite_with_bad_input_is_422_next_to_the_field(customer_client, db):
    resp = customer_client.post("/users", data={"email": "nope", "role": "billing"})
    assert resp.status_code == 422 and 'id="email-error"' in body(resp)
    resp = customer_client.post("/users", data={"email": "a@firm.example", "role": "king"})
    assert resp.status_code == 422 and 'id="role-error"' in body(resp)


def test_owner_changes_role_revokes_and_cannot_drop_the_last_owner(customer_client, customer_login, db):
    other = CustomerLoginFactory(customer=customer_login.customer)
    db.commit()
    assert customer_client.post(f"/users/{other.id}/role", data={"user-role": "technical"}).status_code == 303
    db.expire_all()
    assert other.role == LoginRole.TECHNICAL
    # Through the page the owner cannot act on themselves; the rule refuses it anyway.
    resp = customer_client.post(f"/users/{customer_login.id}/role", data={"user-role": "billing"},
                                follow_redirects=True)
    assert "needs an active owner" in body(resp)
    db.expire_all()
    assert customer_login.role == LoginRole.OWNER
    customer_client.post("/users", data={"email": "x@firm.example", "role": "owner"})
    pending = db.scalar(select(CustomerLogin).where(CustomerLogin.email == "x@firm.example"))
    assert customer_client.post(f"/users/{pending.id}/revoke").status_code == 303
    assert db.scalar(select(CustomerLogin).where(CustomerLogin.email == "x@firm.example")) is None


def test_limited_logins_cannot_open_users(customer_client, customer_login, db):
    customer_login.role = LoginRole.BILLING
    db.commit()
    assert customer_client.get("/users").status_code == 403
    assert customer_client.post("/users", data={"email": "x@firm.example", "role": "owner"}).status_code == 403
    assert db.scalar(select(CustomerLogin).where(CustomerLogin.email == "x@firm.example")) is None
    assert 'href="/users"' not in body(customer_client.get("/"))


def test_another_customers_login_is_404(customer_client, db):
    theirs = CustomerLoginFactory()
    db.commit()
    assert customer_client.post(f"/users/{theirs.id}/disable").status_code == 404
    assert customer_client.post("/users/1/bogus").status_code == 404
    db.expire_all()
    assert theirs.active


def test_csrf_is_required(customer_client, customer_login, db):
    other = CustomerLoginFactory(customer=customer_login.customer)
    db.commit()
    assert customer_client.post(f"/users/{other.id}/disable", csrf=False).status_code == 400
    assert customer_client.post("/users", data={"email": "x@firm.example", "role": "owner"}, csrf=False).status_code == 400
