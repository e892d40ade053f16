"""The selfcare rules without HTTP: portal/domain/profile.py, customer_requests.py, security.py."""
from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from portal.domain import DomainError, profile, security
from portal.domain import customer_requests as rules
from portal.domain.actors import Actor
from portal.models import AuditEntry, ContactKind, RequestState
from portal.security.totp import decrypt_secret


@pytest.fixture
def actor(customer_login):
    return Actor.customer(customer_login, ip="192.0.2.7", request_id="t-1")


@pytest.fixture
def ctx(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield


def test_contact_normalisation(ctx):
    assert profile.normalise_contact(ContactKind.EMAIL, " Jana@Example.ORG ")[1] == "jana@example.org"
    assert profile.normalise_contact(ContactKind.PHONE, "+420 777-123 456") == ("+420 777-123 456", "420777123456")
    for bad in ("", "12", "+42O777123456", "777 123 456 ext 5"):
        with pytest.raises(DomainError) as err:
            profile.normalise_contact(ContactKind.PHONE, bad)
        assert err.value.field == "value"


def test_address_change_records_before_and_after(ctx, db, mine, actor):
    changes = profile.update_billing_address(db, mine.customer, street="Nová 10", city="Brno", postal_code="602 00",
                                             country="cz", actor=actor)
    assert changes == {"street": ["Dlouhá 5", "Nová 10"]}
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.billing_address_changed"))
    assert entry.ip == "192.0.2.7" and entry.request_id == "t-1"
    # Nothing changed: nothing audited.
    assert profile.update_billing_address(db, mine.customer, street="Nová 10", city="Brno", postal_code="602 00",
                                          country="CZ", actor=actor) == {}


def test_request_kinds_and_targets(ctx, db, mine, actor):
    with pytest.raises(DomainError) as err:
        rules.create_request(db, mine.customer, actor, kind="other", subject="x", message="y")
    assert err.value.field == "kind"
    with pytest.raises(DomainError) as err:
        rules.create_request(db, mine.customer, actor, kind="plan_change", subject="x", message="y",
                             service=mine.service, target_definition_id=None)
    assert err.value.field == "target_definition_id"
    req = rules.create_request(db, mine.customer, actor, kind="plan_change", subject="x", message="y",
                               service=mine.service, target_definition_id=mine.target.id)
    assert req.payload["target_name"] == "Internet 1000"
    assert rules.plan_targets(mine.service) == [mine.target]


def test_comment_state_change(ctx, db, mine, actor):
    req = mine.request
    req.state = RequestState.IN_PROGRESS
    rules.add_customer_comment(db, req, mine.customer, "More details", actor)
    assert req.state == RequestState.IN_PROGRESS  # only "waiting for customer" moves
    req.state = RequestState.WAITING_FOR_CUSTOMER
    rules.add_customer_comment(db, req, mine.customer, "Answer", actor)
    assert req.state == RequestState.IN_PROGRESS
    assert [c.body for c in rules.visible_comments(db, req)][-2:] == ["More details", "Answer"]
    assert all(not c.internal for c in rules.visible_comments(db, req))


def test_totp_rules(ctx, db, customer_login, actor):
    with pytest.raises(DomainError):
        security.confirm_totp(db, customer_login, "123456", actor)  # nothing to confirm
    security.start_totp_enrolment(db, customer_login, actor)
    secret = decrypt_secret(customer_login.totp_secret)
    assert security.pending_secret(customer_login) == secret
    codes = security.confirm_totp(db, customer_login, pyotp.TOTP(secret).now(), actor)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert security.pending_secret(customer_login) is None
    with pytest.raises(DomainError):
        security.start_totp_enrolment(db, customer_login, actor)
    with pytest.raises(DomainError) as err:
        security.disable_totp(db, customer_login, "000000", actor)
    assert err.value.field == "proof"
    # The confirming code is spent (RFC 6238 §5.2): the next step's code proves the owner.
    security.disable_totp(db, customer_login, pyotp.TOTP(secret).at(time.time() + 30), actor)
    assert customer_login.totp_enabled_at is None
