"""Every refusal of the API's door: no token, a wrong one, revoked, expired, a deactivated
operator, a missing right, another location; and that a token never exceeds its operator."""
from __future__ import annotations

import warnings
from datetime import timedelta

from portal import create_app
from portal.domain.actors import Actor
from portal.domain.api_tokens import revoke_token
from portal.models import ApiToken, AuditEntry
from portal.models.base import utcnow
from tests.factories import CustomerFactory, LocationFactory, OperatorFactory


def test_no_token_is_401_problem_with_challenge(make_api):
    response = make_api(None).get("/api/v1/customers")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["status"] == 401


def test_a_session_cookie_does_not_authenticate_the_api(staff_client):
    assert staff_client.get("/api/v1/customers").status_code == 401


def test_wrong_token_is_401(make_api):
    for token in ("ptk_nope", "nonsense", "ptk_" + "x" * 300):
        response = make_api(token).get("/api/v1/customers")
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoked_token_is_401(db, operator, make_token, make_api):
    plain = make_token(operator)
    token = db.query(ApiToken).one()
    revoke_token(db, Actor.system("tests"), token)
    db.commit()
    response = make_api(plain).get("/api/v1/customers")
    assert response.status_code == 401
    assert "revoked" in response.get_json()["detail"]


def test_expired_token_is_401(db, operator, make_token, make_api):
    plain = make_token(operator, days=1)
    db.query(ApiToken).one().expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    response = make_api(plain).get("/api/v1/customers")
    assert response.status_code == 401
    assert "expired" in response.get_json()["detail"]


def test_token_of_deactivated_operator_is_401(db, operator, make_token, make_api):
    plain = make_token(operator)
    operator.active = False
    db.commit()
    assert make_api(plain).get("/api/v1/customers").status_code == 401


def test_last_used_is_recorded(db, operator, make_token, make_api):
    plain = make_token(operator)
    assert make_api(plain).get("/api/v1/customers").status_code == 200
    db.expire_all()
    assert db.query(ApiToken).one().last_used_at is not None


def test_missing_right_is_403(db, make_token, make_api):
    reader = OperatorFactory(rights=("customers.read",))
    db.commit()
    api = make_api(make_token(reader))
    assert api.get("/api/v1/customers").status_code == 200
    response = api.post("/api/v1/customers", json={"kind": "person", "location_id": 1, "last_name": "X"})
    assert response.status_code == 403
    assert "customers.write" in response.get_json()["detail"]


def test_token_narrower_than_operator(db, operator, make_token, make_api):
    api = make_api(make_token(operator, rights=["customers.read"]))
    customer = CustomerFactory()
    db.commit()
    assert api.get(f"/api/v1/customers/{customer.id}").status_code == 200
    assert api.patch(f"/api/v1/customers/{customer.id}", json={"note": "x"}).status_code == 403


def test_token_loses_what_its_operator_loses(db, make_token, make_api):
    op = OperatorFactory(rights=("customers.read", "customers.write"))
    db.commit()
    api = make_api(make_token(op))
    customer = CustomerFactory()
    db.commit()
    assert api.patch(f"/api/v1/customers/{customer.id}", json={"note": "x"}).status_code == 200
    op.roles[0].rights = [r for r in op.roles[0].rights if r.code != "customers.write"]
    db.commit()
    assert api.patch(f"/api/v1/customers/{customer.id}", json={"note": "y"}).status_code == 403


def test_other_location_is_404_and_absent_from_lists(db, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    op = OperatorFactory(rights=("customers.read",))
    op.locations = [here]
    mine, theirs = CustomerFactory(location=here), CustomerFactory(location=there)
    db.commit()
    api = make_api(make_token(op))
    assert api.get(f"/api/v1/customers/{mine.id}").status_code == 200
    assert api.get(f"/api/v1/customers/{theirs.id}").status_code == 404
    ids = [c["id"] for c in api.get("/api/v1/customers").get_json()["data"]]
    assert ids == [mine.id]
    assert api.get(f"/api/v1/locations/{there.id}").status_code == 404


def test_token_limited_to_one_of_the_operators_locations(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = CustomerFactory(location=here), CustomerFactory(location=there)
    db.commit()
    api = make_api(make_token(operator, locations=[here]))
    assert api.get(f"/api/v1/customers/{mine.id}").status_code == 200
    assert api.get(f"/api/v1/customers/{theirs.id}").status_code == 404


def test_writes_are_audited_with_the_token_as_the_means(db, api):
    customer = CustomerFactory()
    db.commit()
    assert api.patch(f"/api/v1/customers/{customer.id}", json={"note": "from the CRM"}).status_code == 200
    entry = db.query(AuditEntry).filter_by(action="customer.updated").one()
    assert entry.actor_type == "operator"
    assert entry.via.startswith("API token ") and "test token" in entry.via


def test_rate_limited_per_token(app, db, operator, make_token, make_api):
    app.config["API_RATE_LIMIT"] = "3 per minute"
    try:
        first, second = make_api(make_token(operator, name="a")), make_api(make_token(operator, name="b"))
        assert [first.get("/api/v1/locations").status_code for _ in range(4)] == [200, 200, 200, 429]
        response = first.get("/api/v1/locations")
        assert response.status_code == 429 and response.mimetype == "application/problem+json"
        assert second.get("/api/v1/locations").status_code == 200  # another token, its own count
    finally:
        app.config["API_RATE_LIMIT"] = "1200 per minute"


def test_unknown_path_and_method_are_problems(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    response = api.open("PUT", "/api/v1/customers")
    assert response.status_code == 405 and response.mimetype == "application/problem+json"


def test_openapi_document_is_public_and_valid(make_api):
    from openapi_spec_validator import validate

    response = make_api(None).get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_schema_has_a_name_of_its_own():
    """apispec renames a second schema of the same name with only a warning: the document's
    components would then be named by registration order."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Multiple schemas resolved")
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://"}).test_client().get("/api/v1/openapi.json")


def test_reference_page_lists_operations_without_javascript(make_api):
    response = make_api(None).get("/api/v1/reference")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "/api/v1/customers" in html and "vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
