"""Staff fixtures: operators with chosen rights and locations, logged in."""
from __future__ import annotations

import pytest

from tests.conftest import login_operator


@pytest.fixture
def make_operator(db):
    """make_operator(rights=("billing.run",), locations=[loc]) — admin=True for every right."""
    from tests.factories import OperatorFactory

    def make(rights: tuple = (), locations=(), admin: bool = False):
        op = OperatorFactory(admin=admin, rights=tuple(rights))
        op.locations = list(locations)
        db.commit()
        return op

    return make


@pytest.fixture
def operator_client(make_client, make_operator):
    """operator_client(rights=(...), locations=[...]) — a client logged in as a new operator."""

    def make(rights: tuple = (), locations=(), admin: bool = False):
        client = make_client()
        op = make_operator(rights=rights, locations=locations, admin=admin)
        resp = login_operator(client, op.email)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        client.operator = op
        return client

    return make
