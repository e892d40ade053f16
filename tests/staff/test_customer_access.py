"""Staff "Selfcare access" on the customer page: the logins with state and last login;
invite (e-mailed in the customer's language, prefilled with the billing e-mail), send again
(the old link dies), revoke, disable/enable, change role — customers.write, CSRF, location
scope; and the invitee's page: choose a password once, then logged in; dead links say so."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.models import (
    AuditEntry,
    ContactKind,
    ContactPurpose,
    CustomerLogin,
    Language,
    LoginRole,
    LoginState,
)
from tests.factories import ContactFactory, CustomerFactory, CustomerLoginFactory, LocationFactory

READ = ("customers.read",)
WRITE = ("customers.read", "customers.write")
PASSWORD = "a brand new long password"


@pytest.fixture
def places(db):
    a, b = LocationFactory(name="Praha"), LocationFactory(name="Brno")
    db.commit()
    return a, b


@pytest.fixture
def customer(db, places):
    c = CustomerFactory(location=places[0], language=Language.EN)
    ContactFactory(customer=c, kind=ContactKind.EMAIL, value="billing@firm.example", value_key="billing@firm.example",
                   purpose=ContactPurpose.BILLING)
    db.commit()
    return c


def body(resp) -> str:
    return resp.get_data(as_text=True)


def _link(message) -> str:
    return re.search(r"http://localhost(/invitation/\S+)", message.text).group(1)


def _invite(client, customer, email="new@firm.example", role="billing"):
    return client.post(f"/staff/customers/{customer.id}/logins", data={"invite-email": email, "invite-role": role})


def test_section_lists_logins_with_state_and_prefills_the_billing_email(operator_client, customer, db):
    CustomerLoginFactory(customer=customer, email="owner@firm.example")
    CustomerLoginFactory(customer=customer, email="off@firm.example", active=False, role=LoginRole.TECHNICAL)
    db.commit()
    html = body(operator_client(rights=WRITE).get(f"/staff/customers/{customer.id}"))
    assert "Selfcare access" in html and "owner@firm.example" in html and "off@firm.example" in html
    assert "Disabled" in html and "never" in html
    assert 'value="billing@firm.example"' in html and "Send invitation" in html


def test_read_only_operator_sees_the_list_without_actions(operator_client, customer, db):
    CustomerLoginFactory(customer=customer, email="owner@firm.example")
    db.commit()
    html = body(operator_client(rights=READ).get(f"/staff/customers/{customer.id}"))
    assert "owner@firm.example" in html and "Send invitation" not in html and "Disable" not in html


def test_invite_sends_the_link_and_the_invitee_sets_a_password_once(operator_client, make_client, customer, db,
                                                                    outbox):
    resp = _invite(operator_client(rights=WRITE), customer)
    assert resp.status_code == 303, body(resp)
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.email == "new@firm.example"))
    assert login.state == LoginState.INVITED and login.role == LoginRole.BILLING
    (mail,) = outbox()
    assert mail["To"] == "new@firm.example" and mail["Subject"] == "Your access to selfcare"
    assert mail.text.startswith("Hello,") and "expires in 7 days" in mail.text and "Billing" in mail.text
    link = _link(mail)

    invitee = make_client()
    page = invitee.get(link)
    assert page.status_code == 200 and "new@firm.example" in body(page)
    bad = invitee.post(link, data={"password": "short", "confirm": "short"})
    assert bad.status_code == 422
    ok = invitee.post(link, data={"password": PASSWORD, "confirm": PASSWORD})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/")
    assert invitee.get("/invoices").status_code == 200  # logged in, as billing
    assert invitee.get("/services").status_code == 403
    db.expire_all()
    assert login.state == LoginState.ACTIVE
    again = make_client().get(link)
    assert again.status_code == 410 and "no longer works" in body(again)


def test_invitation_email_is_in_the_customers_language(operator_client, customer, db, outbox):
    customer.language = Language.CS
    db.commit()
    _invite(operator_client(rights=WRITE), customer)
    (mail,) = outbox()
    assert "Dobrý den," in mail.text and "/invitation/" in mail.text


def test_invite_refuses_bad_input_next_to_the_field(operator_client, customer, db):
    CustomerLoginFactory(email="taken@firm.example")
    db.commit()
    client = operator_client(rights=WRITE)
    for email in ("not an address", "taken@firm.example", ""):
        resp = _invite(client, customer, email=email)
        assert resp.status_code == 422, email
        assert 'id="invite-email-error"' in body(resp), email
    assert db.scalar(select(CustomerLogin).where(CustomerLogin.customer_id == customer.id)) is None


def test_resend_kills_the_old_link_and_revoke_kills_the_new(operator_client, make_client, customer, db, outbox):
    client = operator_client(rights=WRITE)
    _invite(client, customer)
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.email == "new@firm.example"))
    old = _link(outbox()[0])
    assert client.post(f"/staff/customers/{customer.id}/logins/{login.id}/resend").status_code == 303
    new = _link(outbox()[1])
    assert make_client().get(old).status_code == 410
    assert make_client().get(new).status_code == 200
    assert client.post(f"/staff/customers/{customer.id}/logins/{login.id}/revoke").status_code == 303
    assert make_client().get(new).status_code == 410
    assert db.scalar(select(CustomerLogin).where(CustomerLogin.email == "new@firm.example")) is None
    actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert {"customer_login.invited", "customer_login.invitation_resent",
            "customer_login.invitation_revoked"} <= set(actions)


def test_disable_enable_and_role(operator_client, customer, db):
    login = CustomerLoginFactory(customer=customer)
    db.commit()
    client = operator_client(rights=WRITE)
    base = f"/staff/customers/{customer.id}/logins/{login.id}"
    assert client.post(f"{base}/disable").status_code == 303
    db.expire_all()
    assert login.state == LoginState.DISABLED
    assert client.post(f"{base}/enable").status_code == 303
    assert client.post(f"{base}/role", data={"login-role": "technical"}).status_code == 303
    db.expire_all()
    assert login.state == LoginState.ACTIVE and login.role == LoginRole.TECHNICAL
    # A refused action (revoke an active login) is a notice, not a 500, and changes nothing.
    resp = client.post(f"{base}/revoke", follow_redirects=True)
    assert resp.status_code == 200 and "disable the login instead" in body(resp)
    assert db.get(CustomerLogin, login.id) is not None


def test_actions_need_customers_write(operator_client, customer, db):
    login = CustomerLoginFactory(customer=customer)
    db.commit()
    client = operator_client(rights=READ)
    assert _invite(client, customer).status_code == 403
    for action in ("resend", "revoke", "disable", "enable", "role"):
        assert client.post(f"/staff/customers/{customer.id}/logins/{login.id}/{action}").status_code == 403


def test_actions_need_csrf(operator_client, customer, db):
    login = CustomerLoginFactory(customer=customer)
    db.commit()
    client = operator_client(rights=WRITE)
    assert client.post(f"/staff/customers/{customer.id}/logins/{login.id}/disable", csrf=False).status_code == 400
    db.expire_all()
    assert login.active


def test_other_location_and_other_customers_login_are_404(operator_client, customer, places, db):
    elsewhere = CustomerFactory(location=places[1])
    theirs = CustomerLoginFactory(customer=elsewhere)
    db.commit()
    client = operator_client(rights=WRITE, locations=[places[0]])
    assert _invite(client, elsewhere).status_code == 404
    assert client.post(f"/staff/customers/{elsewhere.id}/logins/{theirs.id}/disable").status_code == 404
    # Someone else's login through this customer's URL.
    assert client.post(f"/staff/customers/{customer.id}/logins/{theirs.id}/disable").status_code == 404
    db.expire_all()
    assert theirs.active


def test_unknown_link_shows_the_clear_page(client):
    resp = client.get("/invitation/nonsense")
    assert resp.status_code == 410 and "no longer works" in body(resp)
    assert client.post("/invitation/nonsense", data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 410
