"""Staff e-mail outbox: the list with filters, a message's page, re-send (POST, CSRF,
audited, a new row); the right, location scope, system e-mails only for all-location
operators, one-time links never shown."""
from __future__ import annotations

import smtplib

from sqlalchemy import func, select

from portal.mail import send_email
from portal.models import AuditEntry, EmailState, OutboundEmail
from tests.factories import CustomerFactory, LocationFactory


def _mail(db, customer=None, to="jana@example.com", subject="Your invoice", template="request_comment", **context):
    context.setdefault("request", type("R", (), {"subject": "Router", "id": 1})())
    row = send_email(to, subject, template, customer_id=customer.id if customer else None, customer=customer,
                     name="Jana", link="http://localhost/reset/SECRET-TOKEN", comment=type("C", (), {"body": "Hello"})(),
                     url="http://localhost/requests/1", minutes=30, **context)
    db.commit()
    return row


def _world(db):
    a, b = LocationFactory(), LocationFactory()
    ca, cb = CustomerFactory(location=a, customer_number="CA-000001"), CustomerFactory(location=b, customer_number="CB-000002")
    db.commit()
    return a, b, ca, cb


def test_list_filters_and_detail(staff_client, db):
    _a, _b, ca, cb = _world(db)
    first = _mail(db, ca, to="ca@example.com", subject="Invoice FV1")
    second = _mail(db, cb, to="cb@example.com", subject="Invoice FV2")
    second.state, second.error = EmailState.FAILED, "550 mailbox unavailable"
    db.commit()
    html = staff_client.get("/staff/outbox").get_data(as_text=True)
    assert "Invoice FV1" in html and "Invoice FV2" in html and "550 mailbox unavailable" in html
    assert 'class="table-wrap" role="region"' in html
    only_failed = staff_client.get("/staff/outbox?state=failed").get_data(as_text=True)
    assert "Invoice FV2" in only_failed and "Invoice FV1" not in only_failed
    assert "Invoice FV2" not in staff_client.get("/staff/outbox?to=CA@example").get_data(as_text=True)
    assert "Invoice FV1" not in staff_client.get("/staff/outbox?customer=CB-000002").get_data(as_text=True)
    assert "Invoice FV1" not in staff_client.get("/staff/outbox?date_to=2000-01-01").get_data(as_text=True)
    for qs in ("state=x", "date_from=nonsense", "to=%00", "page=0", "customer=" + "x" * 100):
        assert staff_client.get(f"/staff/outbox?{qs}").status_code == 200, qs
    detail = staff_client.get(f"/staff/outbox/{first.id}")
    assert detail.status_code == 200 and "ca@example.com" in detail.get_data(as_text=True)
    assert "Hello" in detail.get_data(as_text=True) or "Router" in detail.get_data(as_text=True)
    assert staff_client.get("/staff/outbox/999999").status_code == 404


def test_customer_page_links_the_outbox(staff_client, db):
    _a, _b, ca, _cb = _world(db)
    html = staff_client.get(f"/staff/customers/{ca.id}").get_data(as_text=True)
    assert "/staff/outbox?customer=CA-000001" in html


def test_one_time_links_are_not_shown(staff_client, db):
    row = _mail(db, None, to="someone@example.com", subject="Reset your password", template="password_reset")
    html = staff_client.get(f"/staff/outbox/{row.id}").get_data(as_text=True)
    assert "SECRET-TOKEN" not in html and "one-time link or code" in html


def test_resend_is_a_new_audited_send(staff_client, db, outbox):
    _a, _b, ca, _cb = _world(db)
    row = _mail(db, ca, to="ca@example.com", subject="Invoice FV1")
    row.state, row.error = EmailState.FAILED, "timeout"
    db.commit()
    assert staff_client.post(f"/staff/outbox/{row.id}/resend", csrf=False).status_code == 400
    assert db.scalar(select(func.count()).select_from(OutboundEmail)) == 1
    resp = staff_client.post(f"/staff/outbox/{row.id}/resend")
    assert resp.status_code == 302
    new = db.scalar(select(OutboundEmail).where(OutboundEmail.id != row.id))
    assert new.resent_from_id == row.id and new.state == EmailState.SENT and new.to == "ca@example.com"
    assert new.subject == "Invoice FV1" and new.customer_id == ca.id
    messages = outbox()
    assert len(messages) == 2 and messages[0]["Message-ID"] != messages[1]["Message-ID"]
    assert messages[0].text == messages[1].text
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "email.resent"))
    assert entry.entity_id == new.id and entry.changes["resent_from"] == row.id and entry.customer_id == ca.id
    # A re-send of the re-send still points at the first send: attempts count 3.
    staff_client.post(f"/staff/outbox/{new.id}/resend")
    assert db.scalar(select(func.count()).where(OutboundEmail.resent_from_id == row.id)) == 2
    html = staff_client.get("/staff/outbox").get_data(as_text=True)
    assert '<td class="num">3</td>' in html


def test_resend_failure_is_recorded(staff_client, db, app, monkeypatch):
    _a, _b, ca, _cb = _world(db)
    row = _mail(db, ca)

    def refuse(_msg):
        raise smtplib.SMTPRecipientsRefused({"ca@example.com": (550, b"no")})

    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.invalid")
    monkeypatch.setattr("portal.mail._smtp_send", refuse)
    resp = staff_client.post(f"/staff/outbox/{row.id}/resend")
    assert resp.status_code == 302
    new = db.scalar(select(OutboundEmail).where(OutboundEmail.id != row.id))
    assert new.state == EmailState.FAILED and new.error
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "email.resent")).changes["state"] == "failed"


def test_queued_or_lost_message_is_refused(staff_client, db):
    _a, _b, ca, _cb = _world(db)
    queued = _mail(db, ca)
    queued.state = EmailState.QUEUED
    lost = _mail(db, ca)
    lost.body_path = "/nonexistent/gone.eml"
    db.commit()
    for row in (queued, lost):
        resp = staff_client.post(f"/staff/outbox/{row.id}/resend")
        assert resp.status_code == 302
    assert db.scalar(select(func.count()).select_from(OutboundEmail)) == 2
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "email.resent")) == 0


def test_needs_customers_read(operator_client, db):
    _a, _b, ca, _cb = _world(db)
    row = _mail(db, ca)
    client = operator_client(rights=("billing.run",))
    for url in ("/staff/outbox", f"/staff/outbox/{row.id}"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/staff/outbox/{row.id}/resend").status_code == 403
    assert db.scalar(select(func.count()).select_from(OutboundEmail)) == 1


def test_location_scope_and_system_mails(operator_client, db):
    a, _b, ca, cb = _world(db)
    mine = _mail(db, ca, subject="Invoice FV-A")
    theirs = _mail(db, cb, subject="Invoice FV-B")
    system = _mail(db, None, to="op@example.com", subject="Reset your password", template="password_reset")
    client = operator_client(rights=("customers.read",), locations=[a])
    html = client.get("/staff/outbox").get_data(as_text=True)
    assert "Invoice FV-A" in html and "Invoice FV-B" not in html and "Reset your password" not in html
    assert client.get(f"/staff/outbox/{mine.id}").status_code == 200
    for row in (theirs, system):
        assert client.get(f"/staff/outbox/{row.id}").status_code == 404
        assert client.post(f"/staff/outbox/{row.id}/resend").status_code == 404
    everywhere = operator_client(rights=("customers.read",))
    assert "Reset your password" in everywhere.get("/staff/outbox").get_data(as_text=True)
