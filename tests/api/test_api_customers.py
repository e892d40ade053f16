"""/api/v1/customers: list with filters and cursor pages, get, create and update through the
customer rules (the same refusals as the form), Idempotency-Key retries."""
from __future__ import annotations

from portal.models import AuditEntry, Customer, CustomerGroup
from tests.api.conftest import problem_fields
from tests.factories import CustomerFactory, LocationFactory


def _new(location, **extra):
    return {"kind": "person", "location_id": location.id, "first_name": "Eva", "last_name": "Svobodová",
            "street": "Dlouhá 5", "city": "Brno", "postal_code": "602 00", **extra}


def test_list_pages_by_cursor_in_id_order(db, api):
    made = [CustomerFactory() for _ in range(5)]
    db.commit()
    seen, cursor = [], None
    while True:
        url = "/api/v1/customers?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(url).get_json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(c.id for c in made)


def test_list_filters(db, api):
    a = CustomerFactory(last_name="Zelený", name_key="zeleny")
    CustomerFactory(active=False)
    db.commit()
    assert [c["id"] for c in api.get("/api/v1/customers?q=zelen").get_json()["data"]] == [a.id]
    assert len(api.get("/api/v1/customers?active=false").get_json()["data"]) == 1
    # Ids in the query string are text: "?location_id=5" is a number, not a refusal.
    response = api.get(f"/api/v1/customers?location_id={a.location_id}")
    assert response.status_code == 200 and [c["id"] for c in response.get_json()["data"]] == [a.id]
    assert api.get("/api/v1/customers?location_id=0").status_code == 422


def test_list_filters_by_location_and_group(db, api):
    vip = CustomerGroup(name="VIP")
    here = LocationFactory()
    a = CustomerFactory(location=here, groups=[vip])
    CustomerFactory(location=here)
    CustomerFactory(groups=[vip])
    db.commit()
    assert len(api.get(f"/api/v1/customers?location_id={here.id}").get_json()["data"]) == 2
    assert [c["id"] for c in api.get(f"/api/v1/customers?location_id={here.id}&group_id={vip.id}")
            .get_json()["data"]] == [a.id]


def test_bad_query_values_are_422_with_the_field(api):
    for url, field in (("/api/v1/customers?limit=0", "limit"), ("/api/v1/customers?cursor=%%%", "cursor"),
                       ("/api/v1/customers?kind=robot", "kind"), ("/api/v1/customers?active=maybe", "active")):
        response = api.get(url)
        assert response.status_code == 422, url
        assert problem_fields(response) == {field}


def test_get_shows_values_in_the_api_conventions(db, api):
    customer = CustomerFactory()
    db.commit()
    body = api.get(f"/api/v1/customers/{customer.id}").get_json()
    assert body["id"] == customer.id and isinstance(body["id"], int)
    assert body["credit_limit"] == "0.00"
    assert body["kind"] == "person" and body["active"] is True
    assert body["created_at"].endswith("+00:00")


def test_unknown_customer_is_404(api):
    assert api.get("/api/v1/customers/999999").status_code == 404
    assert api.get("/api/v1/customers/99999999999").status_code == 404


def test_create(db, api):
    location = LocationFactory()
    db.commit()
    response = api.post("/api/v1/customers", json=_new(location, credit_limit="250.5"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["last_name"] == "Svobodová" and body["credit_limit"] == "250.50"
    assert response.headers["Location"] == f"/api/v1/customers/{body['id']}"
    assert db.query(AuditEntry).filter_by(action="customer.created", entity_id=body["id"]).count() == 1


def test_create_refusals_name_the_fields_and_save_nothing(db, api):
    location = LocationFactory()
    db.commit()
    response = api.post("/api/v1/customers", json=_new(location, last_name="", postal_code="x", company_id="123"))
    assert response.status_code == 422
    assert {"last_name", "postal_code", "company_id"} <= problem_fields(response)
    assert db.query(Customer).count() == 0


def test_create_body_schema_refusals(db, api):
    location = LocationFactory()
    db.commit()
    for body, field in ((_new(location, kind="robot"), "kind"), (_new(location, shoe_size=42), "shoe_size"),
                        (_new(location, birth_date="yesterday"), "birth_date"),
                        ({"location_id": location.id}, "kind")):
        response = api.post("/api/v1/customers", json=body)
        assert response.status_code == 422, body
        assert field in problem_fields(response)
    response = api.post("/api/v1/customers", data="not json", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_create_in_a_location_the_token_cannot_reach_is_refused(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    db.commit()
    api = make_api(make_token(operator, locations=[here]))
    response = api.post("/api/v1/customers", json=_new(there))
    assert response.status_code == 422 and problem_fields(response) == {"location_id"}


def test_update_changes_only_what_is_sent(db, api):
    customer = CustomerFactory(note="old")
    db.commit()
    response = api.patch(f"/api/v1/customers/{customer.id}", json={"city": "Olomouc"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["city"] == "Olomouc" and body["note"] == "old" and body["last_name"] == customer.last_name
    response = api.patch(f"/api/v1/customers/{customer.id}", json={"postal_code": "nope"})
    assert response.status_code == 422 and problem_fields(response) == {"postal_code"}


def test_idempotency_key_replays_the_first_answer(db, api):
    location = LocationFactory()
    db.commit()
    headers = {"Idempotency-Key": "create-eva-1"}
    first = api.post("/api/v1/customers", json=_new(location), headers=headers)
    again = api.post("/api/v1/customers", json=_new(location), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(Customer).count() == 1
    other = api.post("/api/v1/customers", json=_new(location, last_name="Jiná"), headers=headers)
    assert other.status_code == 422 and problem_fields(other) == {"Idempotency-Key"}
    assert db.query(Customer).count() == 1


def test_idempotency_keys_are_per_token(db, operator, make_token, make_api):
    location = LocationFactory()
    db.commit()
    headers = {"Idempotency-Key": "same"}
    one, two = make_api(make_token(operator, name="one")), make_api(make_token(operator, name="two"))
    assert one.post("/api/v1/customers", json=_new(location), headers=headers).status_code == 201
    assert two.post("/api/v1/customers", json=_new(location, last_name="B"), headers=headers).status_code == 201
    assert db.query(Customer).count() == 2


def test_list_costs_bounded_statements(db, api, count_queries):
    for _ in range(30):
        CustomerFactory()
    db.commit()
    api.get("/api/v1/customers?limit=5")
    with count_queries() as small:
        api.get("/api/v1/customers?limit=5")
    with count_queries() as large:
        api.get("/api/v1/customers?limit=30")
    assert large.count == small.count



def test_text_with_a_nul_character_is_refused_naming_the_field(db, api):
    customer = CustomerFactory()
    db.commit()
    response = api.patch(f"/api/v1/customers/{customer.id}", json={"note": "a\x00b", "city": "Brno"})
    assert response.status_code == 422
    assert problem_fields(response) == {"note"}
