"""The token rules without HTTP: what a token may be given, its state, whose tokens a list has."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.domain.actors import Actor
from portal.domain.api_tokens import (
    ApiTokenError,
    create_token,
    revoke_token,
    token_state,
    tokens_of,
)
from tests.factories import LocationFactory, OperatorFactory

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SYSTEM = Actor.system("tests")


def _make(db, operator, **kwargs):
    values = {"name": "sync", "rights": ["customers.read"], "now": NOW, **kwargs}
    return create_token(db, SYSTEM, operator, **values)[0]


def test_state_is_active_expired_or_revoked(db):
    op = OperatorFactory(rights=("customers.read",))
    token = _make(db, op, expires_in_days=1)
    assert token_state(token, NOW) == "active"
    assert token_state(token, NOW + timedelta(days=1)) == "expired"
    revoke_token(db, SYSTEM, token, now=NOW)
    assert token_state(token, NOW) == "revoked"
    assert token_state(_make(db, op), NOW + timedelta(days=10000)) == "active"  # no expiry


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rights": ["billing.run"]}, "rights"),
    ({"rights": []}, "rights"),
    ({"name": "  "}, "name"),
    ({"expires_in_days": 0}, "expires"),
    ({"expires_in_days": 3651}, "expires"),
])
def test_refusals_name_the_field(db, kwargs, field):
    op = OperatorFactory(rights=("customers.read",))
    with pytest.raises(ApiTokenError) as refused:
        _make(db, op, **kwargs)
    assert refused.value.field == field


def test_locations_within_the_operators(db):
    mine, other = LocationFactory(), LocationFactory()
    op = OperatorFactory(rights=("customers.read",))
    op.locations = [mine]
    db.flush()
    assert _make(db, op, location_ids=[mine.id]).location_ids == [mine.id]
    with pytest.raises(ApiTokenError) as refused:
        _make(db, op, location_ids=[other.id])
    assert refused.value.field == "locations"


def test_tokens_of_one_operator_or_everyone_newest_first(db):
    alice, bob = OperatorFactory(rights=("customers.read",)), OperatorFactory(rights=("customers.read",))
    a1, b1, a2 = _make(db, alice), _make(db, bob), _make(db, alice)
    assert tokens_of(db, alice) == [a2, a1]
    assert tokens_of(db) == [a2, b1, a1]
