"""Selfcare shows by when an agreement must be accepted before its services are blocked
(portal.domain.agreements.acceptance_deadline), on the agreement and on the dashboard."""
from __future__ import annotations

from datetime import date, timedelta

from portal.domain.agreements import acceptance_deadline
from portal.models.base import utcnow
from tests.selfcare.conftest import text


def _en(d: date) -> str:
    return f"{d:%b} {d.day}, {d.year}"


def _blocking_type(db, agreement, *, days_ago: int):
    agreement.type.requires_confirmation = True
    agreement.type.remind_days, agreement.type.block_days = 7, 14
    agreement.issued_at = utcnow() - timedelta(days=days_ago)
    db.commit()
    return acceptance_deadline(agreement)


def _squash(resp) -> str:
    return " ".join(text(resp).split())


def test_detail_and_dashboard_say_by_when_to_accept(db, customer_client, mine):
    deadline = _blocking_type(db, mine.agreement, days_ago=2)
    assert deadline >= date.today()
    html = _squash(customer_client.get(f"/agreements/{mine.agreement.id}"))
    assert "This agreement is waiting for your acceptance." in html
    assert (f"Please accept it by {_en(deadline)}: otherwise the services it covers will be blocked from "
            f"{_en(deadline + timedelta(days=1))}.") in html
    html = _squash(customer_client.get("/"))
    assert "Agreements waiting for your acceptance" in html
    assert f'href="/agreements/{mine.agreement.id}/accept"' in html
    assert f"accept it by {_en(deadline)}, otherwise its services will be blocked" in html


def test_after_the_deadline(db, customer_client, mine):
    deadline = _blocking_type(db, mine.agreement, days_ago=30)
    html = _squash(customer_client.get(f"/agreements/{mine.agreement.id}"))
    assert f"It was to be accepted by {_en(deadline)}." in html
    assert f"it was to be accepted by {_en(deadline)}" in _squash(customer_client.get("/"))


def test_no_deadline_without_blocking(db, customer_client, mine):
    html = _squash(customer_client.get(f"/agreements/{mine.agreement.id}"))
    assert "This agreement is waiting for your acceptance." in html
    assert "Please accept it by" not in html
    dashboard = _squash(customer_client.get("/"))
    assert f'href="/agreements/{mine.agreement.id}/accept"' in dashboard  # awaiting, without a date
    assert "otherwise its services will be blocked" not in dashboard


def test_accepted_agreements_are_not_listed(db, customer_client, mine):
    from portal.models import AgreementState

    mine.agreement.state = AgreementState.ACCEPTED
    db.commit()
    assert "Agreements waiting for your acceptance" not in text(customer_client.get("/"))
