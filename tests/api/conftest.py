"""API tests: tokens made by the real rule, a client that sends them as Bearer."""
from __future__ import annotations

import pytest

from portal.domain.actors import Actor
from portal.domain.api_tokens import create_token
from portal.models import RIGHTS


class ApiClient:
    """The Flask test client with `Authorization: Bearer <token>` (None: no header)."""

    def __init__(self, app, token: str | None):
        self.client = app.test_client()
        self.token = token

    def open(self, method: str, url: str, *, token: str | None = ..., headers=None, **kwargs):
        token = self.token if token is ... else token
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, url, **kwargs):
        return self.open("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.open("POST", url, **kwargs)

    def patch(self, url, **kwargs):
        return self.open("PATCH", url, **kwargs)

    def delete(self, url, **kwargs):
        return self.open("DELETE", url, **kwargs)


@pytest.fixture
def make_token(db):
    """make_token(operator, rights=None (all the operator has), locations=(), days=None) → secret."""

    def make(operator, rights=None, locations=(), days=None, name="test token") -> str:
        wanted = [r for r in RIGHTS if operator.has_right(r)] if rights is None else list(rights)
        _token, plain = create_token(db, Actor.system("tests"), operator, name=name, rights=wanted,
                                     location_ids=[getattr(x, "id", x) for x in locations],
                                     expires_in_days=days)
        db.commit()
        return plain

    return make


@pytest.fixture
def make_api(app):
    return lambda token: ApiClient(app, token)


@pytest.fixture
def api(app, operator, make_token):
    """A client with a token of the admin operator (every right, every location)."""
    return ApiClient(app, make_token(operator))


def problem_fields(response) -> set[str]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    return {e["field"] for e in response.get_json().get("errors", [])}
