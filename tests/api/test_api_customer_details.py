"""/api/v1/customers/{id}/contacts and /addresses, /api/v1/customer-groups: through the customer
rules (the staff forms' refusals), scoped to the token's locations, audited with the token."""
from __future__ import annotations

from portal.models import AuditEntry, Contact, CustomerAddress, CustomerGroup, Delivery
from tests.api.conftest import problem_fields
from tests.factories import (
    BillingPlanFactory,
    ContactFactory,
    CustomerFactory,
    LocationFactory,
    OperatorFactory,
)


def _address(customer, **extra):
    row = CustomerAddress(customer_id=customer.id, kind="postal", street="Krátká 1", city="Brno",
                          postal_code="602 00", country="CZ", **extra)
    return row


# -- contacts ----------------------------------------------------------------------------------


def test_list_and_get_contacts(db, api):
    customer = CustomerFactory()
    a, b = ContactFactory(customer=customer), ContactFactory(customer=customer, kind="phone", value="+420777111222")
    ContactFactory()  # another customer's
    db.commit()
    body = api.get(f"/api/v1/customers/{customer.id}/contacts?limit=1").get_json()
    assert [c["id"] for c in body["data"]] == [a.id] and body["next_cursor"]
    rest = api.get(f"/api/v1/customers/{customer.id}/contacts?cursor={body['next_cursor']}").get_json()
    assert [c["id"] for c in rest["data"]] == [b.id] and rest["next_cursor"] is None
    one = api.get(f"/api/v1/customers/{customer.id}/contacts/{a.id}").get_json()
    assert one == {**one, "kind": "email", "value": a.value, "purpose": "billing", "primary": True,
                   "customer_id": customer.id}


def test_contact_of_another_customer_or_location_is_404(db, operator, make_token, make_api, api):
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = CustomerFactory(location=here), CustomerFactory(location=there)
    contact, other = ContactFactory(customer=mine), ContactFactory(customer=theirs)
    db.commit()
    assert api.get(f"/api/v1/customers/{mine.id}/contacts/{other.id}").status_code == 404
    assert api.get(f"/api/v1/customers/{mine.id}/contacts/999999").status_code == 404
    assert api.get("/api/v1/customers/999999/contacts").status_code == 404
    local = make_api(make_token(operator, locations=[here]))
    assert local.get(f"/api/v1/customers/{mine.id}/contacts/{contact.id}").status_code == 200
    assert local.get(f"/api/v1/customers/{theirs.id}/contacts").status_code == 404
    assert local.get(f"/api/v1/customers/{theirs.id}/contacts/{other.id}").status_code == 404
    assert local.delete(f"/api/v1/customers/{theirs.id}/contacts/{other.id}").status_code == 404
    assert db.get(Contact, other.id) is not None


def test_add_contact_is_audited_via_the_token(db, api):
    customer = CustomerFactory()
    db.commit()
    response = api.post(f"/api/v1/customers/{customer.id}/contacts",
                        json={"kind": "email", "value": " Eva@Example.com ", "purpose": "technical"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["primary"] is True  # the first of its kind
    assert response.headers["Location"] == f"/api/v1/customers/{customer.id}/contacts/{body['id']}"
    entry = db.query(AuditEntry).filter_by(action="contact.added", entity_id=body["id"]).one()
    assert entry.via.startswith("API token ")


def test_add_contact_refusals_name_the_field(db, api):
    customer = CustomerFactory()
    existing = ContactFactory(customer=customer)
    db.commit()
    url = f"/api/v1/customers/{customer.id}/contacts"
    for body, field in (({"kind": "fax", "value": "1", "purpose": "billing"}, "kind"),
                        ({"kind": "email", "purpose": "billing"}, "value"),
                        ({"kind": "email", "value": "a@example.com", "purpose": "billing", "x": 1}, "x"),
                        ({"kind": "email", "value": "not an address", "purpose": "billing"}, "value"),
                        ({"kind": "email", "value": existing.value, "purpose": "billing"}, "value")):
        response = api.post(url, json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, body
    assert db.query(Contact).count() == 1


def test_update_contact_changes_only_what_is_sent(db, api):
    customer = CustomerFactory()
    first = ContactFactory(customer=customer)
    second = ContactFactory(customer=customer, primary=False)
    db.commit()
    url = f"/api/v1/customers/{customer.id}/contacts/{second.id}"
    response = api.patch(url, json={"primary": True})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["primary"] is True and response.get_json()["value"] == second.value
    db.expire_all()
    assert db.get(Contact, first.id).primary is False
    response = api.patch(f"/api/v1/customers/{customer.id}/contacts/{second.id}", json={"primary": False})
    assert response.status_code == 422 and problem_fields(response) == {"primary"}
    assert db.query(AuditEntry).filter_by(action="contact.updated").count() == 1


def test_remove_contact_and_the_rule_that_keeps_the_last_billing_email(db, api):
    customer = CustomerFactory(billing_plan=BillingPlanFactory(delivery=Delivery.EMAIL))
    email, phone = ContactFactory(customer=customer), ContactFactory(customer=customer, kind="phone",
                                                                     value="+420777111222")
    db.commit()
    assert api.delete(f"/api/v1/customers/{customer.id}/contacts/{phone.id}").status_code == 204
    response = api.delete(f"/api/v1/customers/{customer.id}/contacts/{email.id}")
    assert response.status_code == 422
    assert "e-mail" in response.get_json()["detail"]
    assert db.query(Contact).count() == 1
    entry = db.query(AuditEntry).filter_by(action="contact.removed").one()
    assert entry.via.startswith("API token ")


def test_contact_writes_need_customers_write(db, make_token, make_api):
    reader = OperatorFactory(rights=("customers.read",))
    customer = CustomerFactory()
    contact = ContactFactory(customer=customer)
    db.commit()
    api = make_api(make_token(reader))
    assert api.get(f"/api/v1/customers/{customer.id}/contacts").status_code == 200
    assert api.post(f"/api/v1/customers/{customer.id}/contacts",
                    json={"kind": "email", "value": "a@example.com", "purpose": "billing"}).status_code == 403
    assert api.patch(f"/api/v1/customers/{customer.id}/contacts/{contact.id}", json={}).status_code == 403
    assert api.delete(f"/api/v1/customers/{customer.id}/contacts/{contact.id}").status_code == 403
    nobody = make_api(make_token(OperatorFactory(rights=("services.lifecycle",))))
    assert nobody.get(f"/api/v1/customers/{customer.id}/contacts").status_code == 403


def test_add_contact_idempotency_key_replays(db, api):
    customer = CustomerFactory()
    db.commit()
    url, body = f"/api/v1/customers/{customer.id}/contacts", {"kind": "email", "value": "a@example.com",
                                                             "purpose": "billing"}
    first = api.post(url, json=body, headers={"Idempotency-Key": "k1"})
    again = api.post(url, json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert db.query(Contact).count() == 1


# -- addresses ---------------------------------------------------------------------------------


def test_address_list_get_add_change_remove(db, api):
    customer = CustomerFactory(country="CZ")
    db.commit()
    url = f"/api/v1/customers/{customer.id}/addresses"
    response = api.post(url, json={"kind": "installation", "street": "Polní 3", "city": "Zlín",
                                   "postal_code": "76001"})
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["country"] == "CZ" and made["postal_code"] == "760 01" and made["note"] == ""
    assert response.headers["Location"] == f"{url}/{made['id']}"
    assert [a["id"] for a in api.get(url).get_json()["data"]] == [made["id"]]
    assert api.get(f"{url}/{made['id']}").get_json()["city"] == "Zlín"
    response = api.patch(f"{url}/{made['id']}", json={"note": "gate code 12"})
    assert response.status_code == 200 and response.get_json()["note"] == "gate code 12"
    assert response.get_json()["street"] == "Polní 3"
    assert api.delete(f"{url}/{made['id']}").status_code == 204
    assert db.query(CustomerAddress).count() == 0
    entries = db.query(AuditEntry).filter_by(entity_type="customer_address").order_by(AuditEntry.id).all()
    assert [e.action for e in entries] == ["address.added", "address.updated", "address.removed"]
    assert all(e.via.startswith("API token ") for e in entries)


def test_address_refusals_name_the_fields(db, api):
    customer = CustomerFactory()
    db.add(_address(customer))
    db.commit()
    address = db.query(CustomerAddress).one()
    url = f"/api/v1/customers/{customer.id}/addresses"
    response = api.post(url, json={"kind": "installation", "street": " ", "city": "Zlín", "postal_code": "x"})
    assert response.status_code == 422 and problem_fields(response) == {"street", "postal_code"}
    response = api.post(url, json={"kind": "moon", "street": "a", "city": "b", "postal_code": "76001"})
    assert response.status_code == 422 and problem_fields(response) == {"kind"}
    response = api.post(url, json={"street": "a", "city": "b", "postal_code": "76001"})
    assert response.status_code == 422 and problem_fields(response) == {"kind"}
    response = api.patch(f"{url}/{address.id}", json={"country": "Czechia"})
    assert response.status_code == 422 and problem_fields(response) == {"country"}
    assert db.query(CustomerAddress).count() == 1


def test_address_scope_and_rights(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    theirs = CustomerFactory(location=there)
    db.add(_address(theirs))
    db.commit()
    address = db.query(CustomerAddress).one()
    local = make_api(make_token(operator, locations=[here]))
    assert local.get(f"/api/v1/customers/{theirs.id}/addresses/{address.id}").status_code == 404
    assert local.patch(f"/api/v1/customers/{theirs.id}/addresses/{address.id}", json={}).status_code == 404
    reader = make_api(make_token(operator, rights=["customers.read"]))
    assert reader.get(f"/api/v1/customers/{theirs.id}/addresses/{address.id}").status_code == 200
    assert reader.delete(f"/api/v1/customers/{theirs.id}/addresses/{address.id}").status_code == 403
    assert db.query(CustomerAddress).count() == 1


# -- groups ------------------------------------------------------------------------------------


def test_groups_list_and_get_with_counts_in_the_tokens_locations(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    vip, other = CustomerGroup(name="VIP"), CustomerGroup(name="Schools")
    db.add_all([vip, other])
    CustomerFactory(location=here, groups=[vip])
    CustomerFactory(location=there, groups=[vip])
    db.commit()
    api = make_api(make_token(operator))
    rows = api.get("/api/v1/customer-groups").get_json()["data"]
    assert [(g["name"], g["customer_count"]) for g in rows] == [("VIP", 2), ("Schools", 0)]
    local = make_api(make_token(operator, locations=[here], rights=["customers.read"]))
    assert local.get(f"/api/v1/customer-groups/{vip.id}").get_json()["customer_count"] == 1
    assert local.get("/api/v1/customer-groups/999999").status_code == 404
    assert local.post("/api/v1/customer-groups", json={"name": "New"}).status_code == 403


def test_group_create_and_update_through_the_rules(db, api):
    db.add(CustomerGroup(name="VIP"))
    db.commit()
    response = api.post("/api/v1/customer-groups", json={"name": " Schools ", "description": "Public"})
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["name"] == "Schools" and made["customer_count"] == 0
    assert response.headers["Location"] == f"/api/v1/customer-groups/{made['id']}"
    response = api.post("/api/v1/customer-groups", json={"name": "vip"})
    assert response.status_code == 422 and problem_fields(response) == {"name"}
    response = api.post("/api/v1/customer-groups", json={"description": "x"})
    assert response.status_code == 422 and problem_fields(response) == {"name"}
    response = api.patch(f"/api/v1/customer-groups/{made['id']}", json={"description": "All schools"})
    assert response.status_code == 200 and response.get_json()["name"] == "Schools"
    response = api.patch(f"/api/v1/customer-groups/{made['id']}", json={"name": ""})
    assert response.status_code == 422 and problem_fields(response) == {"name"}
    entries = db.query(AuditEntry).filter(AuditEntry.entity_type == "customer_group").all()
    assert [e.action for e in entries] == ["customer_group.created", "customer_group.updated"]
    assert all(e.via.startswith("API token ") for e in entries)


def test_group_create_idempotency_key_replays(db, api):
    first = api.post("/api/v1/customer-groups", json={"name": "VIP"}, headers={"Idempotency-Key": "g"})
    again = api.post("/api/v1/customer-groups", json={"name": "VIP"}, headers={"Idempotency-Key": "g"})
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(CustomerGroup).count() == 1


def test_lists_cost_bounded_statements(db, api, count_queries):
    customer = CustomerFactory()
    for n in range(12):
        ContactFactory(customer=customer, primary=False)
        db.add(CustomerGroup(name=f"G{n}"))
    db.commit()
    for url in (f"/api/v1/customers/{customer.id}/contacts", "/api/v1/customer-groups"):
        api.get(url + "?limit=2")
        with count_queries() as small:
            api.get(url + "?limit=2")
        with count_queries() as large:
            api.get(url + "?limit=12")
        assert large.count == small.count, url
