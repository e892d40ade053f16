"""Selfcare: the agreement PDF and accepting an agreement with an e-mailed code."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import select

from portal.models import (
    AcceptanceMethod,
    AgreementAcceptance,
    AgreementState,
    AuditEntry,
    OneTimeCode,
)
from portal.models.base import utcnow
from tests.selfcare.conftest import field_error, text


def _pdf(client, agreement):
    return client.get(f"/agreements/{agreement.id}/pdf")


def _accept_url(agreement) -> str:
    return f"/agreements/{agreement.id}/accept"


def _send_code(client, agreement, outbox) -> str:
    resp = client.post(_accept_url(agreement), data={"action": "send_code"})
    assert resp.status_code == 302, text(resp)
    return re.search(r"\b(\d{6})\b", outbox()[-1].text).group(1)


def _other(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_pdf_is_served_and_recorded_as_opened(customer_client, mine, db):
    resp = _pdf(customer_client, mine.agreement)
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    db.expire_all()
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "agreement.document_opened")).one()
    assert entry.changes["sha256"] == hashlib.sha256(resp.data).hexdigest()


def test_pdf_404_for_drafts_and_other_customers(customer_client, mine, theirs):
    assert _pdf(customer_client, mine.draft).status_code == 404
    assert _pdf(customer_client, theirs.agreement).status_code == 404
    assert customer_client.get(_accept_url(mine.draft)).status_code == 404
    assert customer_client.get(_accept_url(theirs.agreement)).status_code == 404
    assert customer_client.post(_accept_url(theirs.agreement), data={"action": "send_code"}).status_code == 404


def test_accept_page_asks_to_open_the_pdf_first(customer_client, mine):
    resp = customer_client.get(_accept_url(mine.agreement))
    assert resp.status_code == 200
    html = text(resp)
    assert f"/agreements/{mine.agreement.id}/pdf" in html
    assert "Open the agreement first" in html
    assert 'for="code"' in html  # labelled field


def test_send_code_refused_before_opening(customer_client, mine, outbox):
    resp = customer_client.post(_accept_url(mine.agreement), data={"action": "send_code"})
    assert resp.status_code == 422
    assert "PDF first" in text(resp)
    assert outbox() == []


def test_happy_path(customer_client, mine, outbox, db, customer_login):
    pdf = _pdf(customer_client, mine.agreement).data
    code = _send_code(customer_client, mine.agreement, outbox)
    assert outbox()[-1]["To"] == customer_login.email
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": code},
                                headers={"User-Agent": "TestBrowser/1.0"}, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/agreements/{mine.agreement.id}")
    db.expire_all()
    acc = db.scalars(select(AgreementAcceptance)).one()
    assert acc.method == AcceptanceMethod.EMAIL_CODE and acc.customer_login_id == customer_login.id
    assert acc.document_sha256 == hashlib.sha256(pdf).hexdigest()
    assert acc.ip == "198.51.100.7" and acc.user_agent == "TestBrowser/1.0"
    assert db.get(type(mine.agreement), mine.agreement.id).state == AgreementState.ACCEPTED
    page = text(customer_client.get(resp.headers["Location"]))
    assert "is accepted" in page and acc.document_sha256 in page


def test_wrong_code_is_shown_next_to_the_field_and_counted(customer_client, mine, outbox, db):
    _pdf(customer_client, mine.agreement)
    code = _send_code(customer_client, mine.agreement, outbox)
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": _other(code)})
    assert resp.status_code == 422
    assert "not right" in field_error(text(resp), "code")
    db.expire_all()
    assert db.scalars(select(OneTimeCode)).one().attempts == 1


def test_malformed_code(customer_client, mine):
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": "12ab"})
    assert resp.status_code == 422
    assert "6 digits" in field_error(text(resp), "code")


def test_five_attempts_then_locked(customer_client, mine, outbox, db):
    _pdf(customer_client, mine.agreement)
    code = _send_code(customer_client, mine.agreement, outbox)
    for _ in range(5):
        resp = customer_client.post(_accept_url(mine.agreement), data={"code": _other(code)})
        assert resp.status_code == 422
    assert "Too many" in field_error(text(resp), "code")
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": code})
    assert resp.status_code == 422 and "Too many" in field_error(text(resp), "code")
    db.expire_all()
    assert db.scalars(select(AgreementAcceptance)).all() == []


def test_expired_code(customer_client, mine, outbox, db):
    _pdf(customer_client, mine.agreement)
    code = _send_code(customer_client, mine.agreement, outbox)
    db.scalars(select(OneTimeCode)).one().expires_at = utcnow() - timedelta(minutes=1)
    db.commit()
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": code})
    assert resp.status_code == 422 and "expired" in field_error(text(resp), "code")


def test_code_cannot_be_reused(customer_client, mine, outbox, db):
    _pdf(customer_client, mine.agreement)
    code = _send_code(customer_client, mine.agreement, outbox)
    assert customer_client.post(_accept_url(mine.agreement), data={"code": code}).status_code == 302
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": code})
    assert resp.status_code == 422
    db.expire_all()
    assert len(db.scalars(select(AgreementAcceptance)).all()) == 1


def test_csrf_required(customer_client, mine, outbox, db):
    _pdf(customer_client, mine.agreement)
    resp = customer_client.post(_accept_url(mine.agreement), data={"action": "send_code"}, csrf=False)
    assert resp.status_code in (400, 422)
    assert outbox() == []
    code = _send_code(customer_client, mine.agreement, outbox)
    resp = customer_client.post(_accept_url(mine.agreement), data={"code": code}, csrf=False)
    assert resp.status_code in (400, 422)
    db.expire_all()
    assert db.scalars(select(AgreementAcceptance)).all() == []


def test_anonymous_is_sent_to_login(client, mine):
    resp = client.get(_accept_url(mine.agreement))
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert _pdf(client, mine.agreement).status_code == 302


def test_htmx_gets_only_the_form_block(customer_client, mine):
    resp = customer_client.htmx("POST", _accept_url(mine.agreement), data={"code": "1"})
    assert resp.status_code == 422
    html = text(resp)
    assert 'id="accept-forms"' in html and "<html" not in html
    assert "6 digits" in field_error(html, "code")


def test_accepted_agreement_is_not_accepted_again(customer_client, mine, outbox):
    _pdf(customer_client, mine.agreement)
    code = _send_code(customer_client, mine.agreement, outbox)
    customer_client.post(_accept_url(mine.agreement), data={"code": code})
    assert "not waiting for acceptance" in text(customer_client.get(_accept_url(mine.agreement)))
    resp = customer_client.post(_accept_url(mine.agreement), data={"action": "send_code"})
    assert resp.status_code == 422 and "not waiting for acceptance" in text(resp)


def test_staff_viewing_as_customer_cannot_accept_and_opening_does_not_count(customer_client, customer_login, mine, db,
                                                                           outbox):
    from sqlalchemy import update

    from portal.models import AuthSession
    from tests.factories import OperatorFactory

    op = OperatorFactory()
    db.execute(update(AuthSession).where(AuthSession.customer_login_id == customer_login.id)
               .values(impersonator_id=op.id))
    db.commit()
    assert _pdf(customer_client, mine.agreement).status_code == 200
    db.expire_all()
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "agreement.document_opened")).all() == []
    assert "Only the customer can accept" in text(customer_client.get(_accept_url(mine.agreement)))
    assert customer_client.post(_accept_url(mine.agreement), data={"action": "send_code"}).status_code == 403
    assert outbox() == []
