"""Profile: contacts, billing address, language, notifications, password."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.models import (
    AuditEntry,
    AuthSession,
    Contact,
    ContactKind,
    Customer,
    CustomerLogin,
    Invoice,
    Language,
)
from portal.security.passwords import verify_password
from tests.conftest import PASSWORD, login_customer
from tests.selfcare.conftest import field_error, text

NEW_PASSWORD = "Brand-new-password-7"


def test_profile_page(customer_client, mine):
    resp = customer_client.get("/profile")
    assert resp.status_code == 200
    html = text(resp)
    assert mine.contact.value in html
    assert 'value="Dlouhá 5"' in html
    for action in ("/profile/contacts", "/profile/address", "/profile/language", "/profile/notifications",
                   "/profile/password"):
        assert f'action="{action}"' in html


def test_add_email_and_phone(customer_client, mine, db):
    resp = customer_client.post("/profile/contacts", data={"kind": "email", "value": " Jana@Example.org ",
                                                           "purpose": "technical"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/profile")
    resp = customer_client.post("/profile/contacts", data={"kind": "phone", "value": "+420 777 123 456",
                                                           "purpose": "general"})
    assert resp.status_code == 302
    values = {c.value_key for c in db.scalars(select(Contact).where(Contact.customer_id == mine.customer.id))}
    assert "jana@example.org" in values and "420777123456" in values
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "contact.added")) == 2
    assert "The contact has been added." in text(customer_client.get("/profile"))


def test_invalid_contacts_are_refused_next_to_the_field(customer_client, mine, db):
    before = db.scalar(select(func.count()).select_from(Contact))
    resp = customer_client.post("/profile/contacts", data={"kind": "email", "value": "not-an-email", "purpose": "billing"})
    assert resp.status_code == 422
    assert field_error(text(resp), "value") == "This is not a valid e-mail address."
    resp = customer_client.post("/profile/contacts", data={"kind": "phone", "value": "call me", "purpose": "billing"})
    assert resp.status_code == 422
    assert "digits" in field_error(text(resp), "value")
    resp = customer_client.post("/profile/contacts", data={"kind": "email", "value": mine.contact.value.upper(),
                                                           "purpose": "billing"})
    assert resp.status_code == 422
    assert field_error(text(resp), "value") == "You already have this contact."
    resp = customer_client.htmx("POST", "/profile/contacts", data={"kind": "email", "value": "x", "purpose": "billing"})
    assert resp.status_code == 422 and "<html" not in text(resp) and field_error(text(resp), "value")
    assert db.scalar(select(func.count()).select_from(Contact)) == before


def test_the_last_email_stays(customer_client, mine, db):
    resp = customer_client.post(f"/profile/contacts/{mine.contact.id}/remove")
    assert resp.status_code == 422
    assert "at least one e-mail" in text(resp)
    assert db.get(Contact, mine.contact.id) is not None
    customer_client.post("/profile/contacts", data={"kind": "email", "value": "second@example.org", "purpose": "general"})
    resp = customer_client.post(f"/profile/contacts/{mine.contact.id}/remove")
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(Contact, mine.contact.id) is None
    remaining = db.scalars(select(Contact).where(Contact.customer_id == mine.customer.id, Contact.kind == ContactKind.EMAIL)).all()
    assert [c.primary for c in remaining] == [True]
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "contact.removed")) is not None


def test_billing_address_is_audited_and_issued_invoices_keep_theirs(customer_client, mine, db):
    resp = customer_client.post("/profile/address", data={"street": "Nová 10", "city": "Praha", "postal_code": "110 00",
                                                          "country": "CZ"})
    assert resp.status_code == 302
    db.expire_all()
    customer = db.get(Customer, mine.customer.id)
    assert (customer.street, customer.city, customer.postal_code) == ("Nová 10", "Praha", "110 00")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.billing_address_changed"))
    assert entry.changes["street"] == ["Dlouhá 5", "Nová 10"]
    assert entry.changes["city"] == ["Brno", "Praha"]
    assert "country" not in entry.changes
    assert entry.customer_id == customer.id and entry.actor_type.value == "customer"
    assert "Dlouhá 5" in db.get(Invoice, mine.invoice.id).customer_address


def test_billing_address_errors(customer_client, mine, db):
    resp = customer_client.post("/profile/address", data={"street": "Nová 10", "city": "", "postal_code": "1",
                                                          "country": "CZ"})
    assert resp.status_code == 422
    html = text(resp)
    assert field_error(html, "city") == "Enter the city."
    db.expire_all()
    assert db.get(Customer, mine.customer.id).street == "Dlouhá 5"
    resp = customer_client.post("/profile/address", data={"street": "Nová 10", "city": "Praha", "postal_code": "!!",
                                                          "country": "CZ"})
    assert resp.status_code == 422
    assert field_error(text(resp), "postal_code") == "This is not a valid postal code."
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.billing_address_changed")) is None


def test_language_saves_to_login_and_customer(customer_client, mine, db):
    resp = customer_client.post("/profile/language", data={"language": "cs"})
    assert resp.status_code == 302
    db.expire_all()
    customer = db.get(Customer, mine.customer.id)
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.customer_id == customer.id))
    assert login.language == Language.CS and customer.language == Language.CS
    resp = customer_client.post("/profile/language", data={"language": "de"})
    assert resp.status_code == 422
    assert field_error(text(resp), "language")


def test_notification_preference(customer_client, mine, db):
    resp = customer_client.post("/profile/notifications", data={})
    assert resp.status_code == 302
    db.expire_all()
    login = db.scalar(select(CustomerLogin).where(CustomerLogin.customer_id == mine.customer.id))
    assert login.notify_email is False
    customer_client.post("/profile/notifications", data={"notify_email": "y"})
    db.expire_all()
    assert db.get(CustomerLogin, login.id).notify_email is True
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "customer_login.notifications_changed")) == 2


def test_password_change_needs_the_current_password(customer_client, customer_login, mine, db):
    resp = customer_client.post("/profile/password", data={"current_password": "wrong-one-123",
                                                           "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 422
    assert field_error(text(resp), "current_password") == "This is not your current password."
    resp = customer_client.post("/profile/password", data={"current_password": PASSWORD,
                                                           "new_password": "short", "confirm": "short"})
    assert resp.status_code == 422
    assert "at least 10" in field_error(text(resp), "new_password")
    resp = customer_client.post("/profile/password", data={"current_password": PASSWORD,
                                                           "new_password": NEW_PASSWORD, "confirm": "different-123456"})
    assert resp.status_code == 422
    assert field_error(text(resp), "confirm") == "The passwords differ."
    db.expire_all()
    assert verify_password(db.get(CustomerLogin, customer_login.id).password_hash, PASSWORD)


def test_password_change_ends_other_sessions_and_keeps_this_one(customer_client, customer_login, mine, db, make_client):
    other = make_client()
    assert login_customer(other, customer_login.email).status_code == 302
    assert other.get("/profile").status_code == 200
    resp = customer_client.post("/profile/password", data={"current_password": PASSWORD,
                                                           "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert resp.status_code == 302
    assert customer_client.get("/profile").status_code == 200  # carries on in a fresh session
    assert other.get("/profile").status_code == 302  # logged out
    db.expire_all()
    assert verify_password(db.get(CustomerLogin, customer_login.id).password_hash, NEW_PASSWORD)
    live = db.scalar(select(func.count()).select_from(AuthSession).where(
        AuthSession.customer_login_id == customer_login.id, AuthSession.revoked_at.is_(None)))
    assert live >= 1
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "password.changed")) is not None


def test_htmx_success_redirects_the_browser(customer_client, mine):
    resp = customer_client.htmx("POST", "/profile/notifications", data={"notify_email": "y"})
    assert resp.status_code == 204
    assert resp.headers["HX-Redirect"] == "/profile"
    assert "Your notification preference has been saved." in text(customer_client.get("/profile"))
