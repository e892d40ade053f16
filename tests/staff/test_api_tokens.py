"""/staff/api-tokens: an operator's own tokens, an administrator's view of everyone's, the
secret shown once, revoking with a confirmation step."""
from __future__ import annotations

import re

from sqlalchemy import select

from portal.domain.actors import Actor
from portal.domain.api_tokens import create_token
from portal.models import ApiToken, AuditEntry
from tests.factories import CustomerFactory, LocationFactory

SECRET = re.compile(r"ptk_[A-Za-z0-9_-]{20,}")


def _token(db, operator, name="existing", rights=("customers.read",)) -> ApiToken:
    token, _plain = create_token(db, Actor.system("tests"), operator, name=name, rights=list(rights))
    db.commit()
    return token


def _create(client, **values):
    data = {"name": "billing sync", "expires": "", "rights": ["customers.read"], **values}
    return client.post("/staff/api-tokens/new", data=data)


def test_an_operator_lists_only_their_own_tokens(db, operator_client, make_operator):
    client = operator_client(rights=("customers.read",))
    mine = _token(db, client.operator, name="mine")
    _token(db, make_operator(rights=("customers.read",)), name="someone else's")
    resp = client.get("/staff/api-tokens")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "mine" in page and mine.prefix in page and "customers.read" in page
    assert "someone else" not in page
    assert 'href="/staff/api-tokens"' in page  # the nav entry, without any right


def test_an_admin_sees_every_operators_tokens(db, operator_client, make_operator):
    client = operator_client(admin=True)
    other = make_operator(rights=("customers.read",))
    _token(db, other, name="someone else's")
    page = client.get("/staff/api-tokens").get_data(as_text=True)
    assert "someone else&#39;s" in page and other.email in page


def test_states_active_expired_revoked(db, operator_client):
    from datetime import timedelta

    from portal.models.base import utcnow

    client = operator_client(rights=("customers.read",))
    _token(db, client.operator, name="live")
    expired = _token(db, client.operator, name="old")
    expired.expires_at = utcnow() - timedelta(days=1)
    revoked = _token(db, client.operator, name="gone")
    revoked.revoked_at = utcnow()
    db.commit()
    page = client.get("/staff/api-tokens").get_data(as_text=True)
    assert ">Active<" in page and ">Expired<" in page and ">Revoked<" in page


def test_the_form_offers_only_the_operators_rights_and_locations(db, operator_client):
    mine, other = LocationFactory(code="MINE"), LocationFactory(code="OTHER")
    db.commit()
    client = operator_client(rights=("customers.read", "billing.run"), locations=[mine])
    page = client.get("/staff/api-tokens/new").get_data(as_text=True)
    assert 'value="customers.read"' in page and 'value="billing.run"' in page
    assert 'value="payments.write"' not in page
    assert f'value="{mine.id}"' in page and f'value="{other.id}"' not in page


def test_the_secret_is_shown_once_not_stored_and_works(db, app, operator_client, make_client):
    client = operator_client(rights=("customers.read",))
    CustomerFactory()
    db.commit()
    resp = _create(client, expires="30")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    secret = SECRET.search(page).group(0)
    assert f'curl -H "Authorization: Bearer {secret}" http://localhost/api/v1/customers' in page
    token = db.scalar(select(ApiToken))
    assert token.name == "billing sync" and token.rights == ["customers.read"] and token.expires_at is not None
    assert secret not in token.token_hash and token.prefix == secret[:12]
    # Afterwards only the prefix.
    listing = client.get("/staff/api-tokens").get_data(as_text=True)
    assert secret not in listing and token.prefix in listing
    # The token works against the API.
    api = make_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200 and len(api.get_json()["data"]) == 1
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "api_token.created"))
    assert entry.entity_id == token.id and entry.actor_id == client.operator.id


def test_a_right_the_operator_lacks_is_refused_next_to_the_field(db, operator_client):
    client = operator_client(rights=("customers.read",))
    resp = _create(client, rights=["customers.read", "billing.run"])
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert re.search(r'id="rights-error">[^<]*billing\.run', page)
    assert db.scalar(select(ApiToken)) is None


def test_a_location_the_operator_lacks_is_refused_next_to_the_field(db, operator_client):
    mine, other = LocationFactory(), LocationFactory()
    db.commit()
    client = operator_client(rights=("customers.read",), locations=[mine])
    resp = _create(client, locations=[str(other.id)])
    assert resp.status_code == 422
    assert 'id="locations-error"' in resp.get_data(as_text=True)
    assert db.scalar(select(ApiToken)) is None


def test_bad_values_are_shown_beside_their_fields(db, operator_client):
    client = operator_client(rights=("customers.read",))
    resp = _create(client, name="", expires="0", rights=[])
    assert resp.status_code == 422
    assert 'id="name-error"' in resp.get_data(as_text=True)
    resp = _create(client, expires="0")
    assert resp.status_code == 422 and 'id="expires-error"' in resp.get_data(as_text=True)
    resp = _create(client, expires="soon")
    assert resp.status_code == 422 and 'id="expires-error"' in resp.get_data(as_text=True)
    resp = _create(client, rights=[])
    assert resp.status_code == 422 and 'id="rights-error"' in resp.get_data(as_text=True)
    resp = _create(client, locations=["x"])
    assert resp.status_code == 422 and 'id="locations-error"' in resp.get_data(as_text=True)
    assert db.scalar(select(ApiToken)) is None


def test_an_htmx_refusal_is_the_form_alone(db, operator_client):
    client = operator_client(rights=("customers.read",))
    resp = client.htmx("POST", "/staff/api-tokens/new", data={"name": "", "rights": ["customers.read"]})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert page.lstrip().startswith("<form") and 'id="name-error"' in page


def test_create_without_csrf_is_refused(db, operator_client):
    client = operator_client(rights=("customers.read",))
    resp = client.post("/staff/api-tokens/new", data={"name": "x", "rights": ["customers.read"]}, csrf=False)
    assert resp.status_code == 400
    assert db.scalar(select(ApiToken)) is None


def test_revoke_asks_then_revokes_and_audits(db, operator_client, make_client):
    client = operator_client(rights=("customers.read",))
    token, plain = create_token(db, Actor.system("tests"), client.operator, name="old", rights=["customers.read"])
    db.commit()
    confirm = client.get(f"/staff/api-tokens/{token.id}/revoke")
    assert confirm.status_code == 200 and "Confirm: revoke" in confirm.get_data(as_text=True)
    resp = client.post(f"/staff/api-tokens/{token.id}/revoke")
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(ApiToken, token.id).revoked_at is not None
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "api_token.revoked")).entity_id == token.id
    api = make_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {plain}"})
    assert api.status_code == 401
    # Again: refused with a notice, nothing changes.
    resp = client.post(f"/staff/api-tokens/{token.id}/revoke", follow_redirects=True)
    assert "already revoked" in resp.get_data(as_text=True)


def test_revoke_without_csrf_is_refused(db, operator_client):
    client = operator_client(rights=("customers.read",))
    token = _token(db, client.operator)
    assert client.post(f"/staff/api-tokens/{token.id}/revoke", csrf=False).status_code == 400
    db.expire_all()
    assert db.get(ApiToken, token.id).revoked_at is None


def test_a_non_admin_cannot_see_or_revoke_anothers_token(db, operator_client, make_operator):
    client = operator_client(rights=("customers.read",))
    token = _token(db, make_operator(rights=("customers.read",)))
    assert client.get(f"/staff/api-tokens/{token.id}/revoke").status_code == 404
    assert client.post(f"/staff/api-tokens/{token.id}/revoke").status_code == 404
    assert client.get("/staff/api-tokens/99999/revoke").status_code == 404
    db.expire_all()
    assert db.get(ApiToken, token.id).revoked_at is None


def test_an_admin_revokes_anothers_token(db, operator_client, make_operator):
    client = operator_client(admin=True)
    token = _token(db, make_operator(rights=("customers.read",)))
    assert client.post(f"/staff/api-tokens/{token.id}/revoke").status_code == 302
    db.expire_all()
    assert db.get(ApiToken, token.id).revoked_at is not None


def test_anonymous_and_customers_are_kept_out(db, client, customer_client, operator):
    token = _token(db, operator)
    for url in ("/staff/api-tokens", "/staff/api-tokens/new", f"/staff/api-tokens/{token.id}/revoke"):
        assert customer_client.get(url).status_code == 403
    anonymous = client.application.test_client()
    for url in ("/staff/api-tokens", "/staff/api-tokens/new"):
        resp = anonymous.get(url)
        assert resp.status_code == 302 and "/staff/login" in resp.headers["Location"]


def test_an_operator_without_rights_is_told_so(db, operator_client):
    client = operator_client()
    page = client.get("/staff/api-tokens/new").get_data(as_text=True)
    assert "You have no rights a token could have." in page
    resp = _create(client, rights=["customers.read"])
    assert resp.status_code == 422 and 'id="rights-error"' in resp.get_data(as_text=True)


def test_the_admin_list_costs_bounded_statements(db, operator_client, make_operator, count_queries):
    client = operator_client(admin=True)
    for _ in range(2):
        _token(db, make_operator(rights=("customers.read",)))
    client.get("/staff/api-tokens")
    with count_queries() as few:
        client.get("/staff/api-tokens")
    for _ in range(8):
        _token(db, make_operator(rights=("customers.read",), locations=[LocationFactory()]))
    with count_queries() as many:
        client.get("/staff/api-tokens")
    assert many.count == few.count
