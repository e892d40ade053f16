"""Cancelling a contract: logged out through an e-mailed link, or logged in; the two-step
confirmation; what it leaves behind (scheduled cancellation, staff request, PDF, e-mail)."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import cancellation as rules
from portal.domain.lifecycle import earliest_end_date
from portal.models import (
    AuditEntry,
    CustomerRequest,
    RequestKind,
    RequestState,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
    StoredDocument,
)
from tests.selfcare.conftest import field_error, text

NEUTRAL = "If the details match, we sent a link"


def _link_from(outbox) -> str:
    mails = outbox()
    assert mails, "no e-mail"
    m = re.search(r"https?://[^/\s]+(/cancel/link/\S+)", mails[-1].text)
    assert m, mails[-1].text
    return m.group(1)


def _counts(db) -> tuple:
    return (db.scalar(select(func.count()).select_from(CustomerRequest)),
            db.scalar(select(func.count()).select_from(ServiceEvent)),
            db.scalar(select(func.count()).select_from(StoredDocument)))


# -- step 1, logged out ------------------------------------------------------------------------


def test_layout_links_to_cancel(client):
    assert 'href="/cancel"' in text(client.get("/login"))


def test_identify_sends_a_link_to_a_known_address(client, mine, outbox):
    resp = client.post("/cancel", data={"customer_number": mine.customer.customer_number,
                                        "email": mine.contact.value.upper()})
    assert resp.status_code == 302
    assert NEUTRAL in text(client.get(resp.headers["Location"]))
    mails = outbox()
    assert len(mails) == 1 and mails[0]["To"] == mine.contact.value.lower()
    assert "/cancel/link/" in mails[0].text


def test_login_email_works_too(client, mine, customer_login, outbox):
    client.post("/cancel", data={"customer_number": mine.customer.customer_number, "email": customer_login.email})
    assert len(outbox()) == 1


@pytest.mark.parametrize("number,email", [("nope", "x@example.com"), (None, "stranger@example.com"),
                                          ("other", None)])
def test_same_answer_when_details_do_not_match(client, mine, theirs, outbox, number, email):
    number = {None: mine.customer.customer_number, "other": theirs.customer.customer_number}.get(number, number)
    email = email or mine.contact.value  # my e-mail with their number
    resp = client.post("/cancel", data={"customer_number": number, "email": email})
    assert resp.status_code == 302
    assert NEUTRAL in text(client.get(resp.headers["Location"]))
    assert outbox() == []


def test_identify_validation_and_csrf(client, mine):
    resp = client.post("/cancel", data={"customer_number": "", "email": ""})
    assert resp.status_code == 422
    assert field_error(text(resp), "customer_number") and field_error(text(resp), "email")
    assert client.post("/cancel", data={"customer_number": "1", "email": "a@b.c"}, csrf=False).status_code == 400


def test_identify_is_rate_limited_per_ip(client, mine):
    for _ in range(10):
        assert client.post("/cancel", data={"customer_number": "x", "email": "a@example.com"}).status_code == 302
    assert client.post("/cancel", data={"customer_number": "x", "email": "a@example.com"}).status_code == 429


def test_logged_in_customer_goes_straight_to_step_2(customer_client, mine):
    resp = customer_client.get("/cancel")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/cancel/services")


# -- the link ----------------------------------------------------------------------------------


def test_bad_or_expired_link_is_410(client, mine, app, db):
    assert client.get("/cancel/link/garbage").status_code == 410
    token = rules.make_link_token(app.config["SECRET_KEY"], mine.customer, mine.contact.value)
    assert rules.read_link_token(db, app.config["SECRET_KEY"], token) is not None
    assert rules.read_link_token(db, app.config["SECRET_KEY"], token, max_age=-1) is None
    assert rules.read_link_token(db, "another-secret-key-of-enough-length", token) is None
    # An address removed since the link was sent no longer opens it.
    db.delete(mine.contact)
    db.commit()
    assert client.get(f"/cancel/link/{token}").status_code == 410


def test_logged_out_cancellation_end_to_end(client, mine, theirs, outbox, db):
    client.post("/cancel", data={"customer_number": mine.customer.customer_number, "email": mine.contact.value})
    link = _link_from(outbox)
    page = text(client.get(link))
    earliest = earliest_end_date(mine.service, date.today())
    assert "Internet 300" in page and "30 days" in page
    assert re.search(rf'<option[^>]*value="{mine.service.id}"', page)
    assert not re.search(rf'<option[^>]*value="{theirs.service.id}"', page)
    # Step 2 → review: nothing is changed yet.
    before = _counts(db)
    review = client.post(link, data={"service_id": str(mine.service.id), "end_date": ""})
    assert review.status_code == 200
    assert "Confirm the cancellation" in text(review) and 'name="confirm" value="yes"' in text(review)
    assert _counts(db) == before
    # Confirm.
    done = client.post(link, data={"service_id": str(mine.service.id), "end_date": earliest.isoformat(),
                                   "confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/cancel/done")
    db.expire_all()
    _assert_cancelled(db, mine, earliest, outbox, mine.contact.value.lower())


def _assert_cancelled(db, world, end_date, outbox, to):
    service = world.service
    pending = db.scalars(select(ServiceEvent).where(ServiceEvent.customer_service_id == service.id,
                                                    ServiceEvent.kind == ServiceEventKind.CANCELLED)).all()
    if end_date > date.today():
        assert len(pending) == 1 and pending[0].scheduled_for == end_date and pending[0].done_at is None
        assert service.state != ServiceState.CANCELLED
    req = db.scalar(select(CustomerRequest).where(CustomerRequest.kind == RequestKind.CANCELLATION))
    assert req.state == RequestState.NEW and req.customer_id == world.customer.id
    assert req.payload["service_id"] == service.id and req.payload["end_date"] == end_date.isoformat()
    doc = db.scalar(select(StoredDocument).where(StoredDocument.owner_type == "customer_service",
                                                 StoredDocument.owner_id == service.id))
    assert doc is not None and doc.kind.value == "cancellation_confirmation"
    mail = outbox()[-1]
    assert mail["To"] == to and "confirmed" in mail["Subject"]
    attachments = list(mail.iter_attachments())
    assert len(attachments) == 1 and attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content().startswith(b"%PDF")
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "cancellation.confirmed")) == 1


def test_link_cannot_touch_another_customers_service(client, mine, theirs, outbox, db):
    client.post("/cancel", data={"customer_number": mine.customer.customer_number, "email": mine.contact.value})
    link = _link_from(outbox)
    before = _counts(db)
    assert client.get(f"{link}?service_id={theirs.service.id}").status_code == 404
    for confirm in ("", "yes"):
        resp = client.post(link, data={"service_id": str(theirs.service.id), "end_date": "2030-01-01", "confirm": confirm})
        assert resp.status_code == 404
    assert _counts(db) == before


# -- logged in ---------------------------------------------------------------------------------


def test_logged_in_cancellation_with_a_later_date(customer_client, customer_login, mine, outbox, db):
    earliest = earliest_end_date(mine.service, date.today())
    later = earliest + timedelta(days=10)
    page = text(customer_client.get("/cancel/services"))
    assert "Earliest end date" in page and "Internet 300" in page
    assert f'value="{earliest.isoformat()}"' in page  # the end date starts at the earliest
    review = customer_client.post("/cancel/services", data={"service_id": str(mine.service.id),
                                                            "end_date": later.isoformat()})
    assert review.status_code == 200 and "Confirm the cancellation" in text(review)
    done = customer_client.post("/cancel/services", data={"service_id": str(mine.service.id),
                                                          "end_date": later.isoformat(), "confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/services/{mine.service.id}")
    db.expire_all()
    _assert_cancelled(db, mine, later, outbox, customer_login.email)
    # Scheduled: the service page says so, and it is no longer offered for cancellation.
    assert "Scheduled: cancellation" in text(customer_client.get(f"/services/{mine.service.id}"))
    assert not re.search(rf'<option[^>]*value="{mine.service.id}"', text(customer_client.get("/cancel/services")))


def test_end_date_before_the_earliest_is_refused(customer_client, mine, db):
    earliest = earliest_end_date(mine.service, date.today())
    before = _counts(db)
    for confirm in ("", "yes"):
        resp = customer_client.post("/cancel/services", data={
            "service_id": str(mine.service.id), "end_date": (earliest - timedelta(days=1)).isoformat(),
            "confirm": confirm})
        assert resp.status_code == 422
        assert "earliest possible end date" in field_error(text(resp), "end_date")
    assert _counts(db) == before


def test_step_2_validation(customer_client, mine):
    resp = customer_client.post("/cancel/services", data={"service_id": "", "end_date": "not a date"})
    assert resp.status_code == 422
    assert field_error(text(resp), "service_id") and field_error(text(resp), "end_date")


def test_logged_in_foreign_ids_are_404(customer_client, mine, theirs, db):
    before = _counts(db)
    assert customer_client.get(f"/cancel/services?service_id={theirs.service.id}").status_code == 404
    resp = customer_client.post("/cancel/services", data={"service_id": str(theirs.service.id), "confirm": "yes"})
    assert resp.status_code == 404
    assert _counts(db) == before


def test_logged_in_csrf_and_impersonation(customer_client, customer_login, mine, db):
    from sqlalchemy import update

    from portal.models import AuthSession
    from tests.factories import OperatorFactory

    data = {"service_id": str(mine.service.id), "confirm": "yes"}
    assert customer_client.post("/cancel/services", data=data, csrf=False).status_code == 400
    op = OperatorFactory()
    db.execute(update(AuthSession).where(AuthSession.customer_login_id == customer_login.id).values(impersonator_id=op.id))
    db.commit()
    assert customer_client.post("/cancel/services", data=data).status_code == 403
    assert db.scalar(select(func.count()).select_from(CustomerRequest)) == 1  # mine.request only


def test_cancelled_service_is_not_offered(customer_client, mine, db):
    mine.service.state = ServiceState.CANCELLED
    db.commit()
    html = text(customer_client.get("/cancel/services"))
    assert "no service that can be cancelled" in html
    resp = customer_client.post("/cancel/services", data={"service_id": str(mine.service.id), "confirm": "yes"})
    assert resp.status_code == 422


# -- the rules without HTTP --------------------------------------------------------------------


def test_rules_refuse_an_early_date_and_a_second_cancellation(mine, db, outbox):
    from portal.domain.actors import Actor

    actor = Actor.system("test")
    earliest = earliest_end_date(mine.service, date.today())
    with pytest.raises(rules.CancellationRefused) as exc:
        rules.cancel_by_customer(db, mine.service, end_date=earliest - timedelta(days=1), actor=actor, email=None)
    assert exc.value.field == "end_date"
    done = rules.cancel_by_customer(db, mine.service, end_date=earliest, actor=actor, email=None)
    assert done.request.state == RequestState.NEW and done.document.owner_id == mine.service.id
    assert outbox() == []  # no address, no e-mail
    assert rules.cancellable_services(db, mine.customer.id) == []
    with pytest.raises(rules.CancellationRefused) as exc:
        rules.cancel_by_customer(db, mine.service, end_date=earliest, actor=actor, email=None)
    assert exc.value.field == "service_id"


def test_identify_matches_number_and_any_known_address(mine, theirs, customer_login, db):
    assert rules.identify(db, mine.customer.customer_number, f"  {mine.contact.value.upper()} ") == mine.customer
    assert rules.identify(db, mine.customer.customer_number, customer_login.email) == mine.customer
    assert rules.identify(db, mine.customer.customer_number, theirs.contact.value) is None
    assert rules.identify(db, "", mine.contact.value) is None
