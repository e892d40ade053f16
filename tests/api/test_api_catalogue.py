"""/api/v1/catalogue (read): definitions with their prices and plan-change targets, service
groups, billing plans, discounts (those of the token's locations); the staff catalogue's right."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from portal.models import Discount, DiscountKind, PriceChange
from tests.api.conftest import problem_fields
from tests.factories import (
    BillingPlanFactory,
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
    ServiceGroupFactory,
)

TODAY = date.today()


def _discount(customer=None, service=None, **extra):
    row = Discount(name=extra.pop("name", "Loyalty"), kind=DiscountKind.PERCENT, value=Decimal("10"),
                   customer_id=customer.id if customer else None,
                   customer_service_id=service.id if service else None,
                   valid_from=extra.pop("valid_from", date(2024, 1, 1)), **extra)
    return row


def test_definitions_with_prices_and_targets(db, api):
    group = ServiceGroupFactory()
    target = ServiceDefinitionFactory(group=group)
    d = ServiceDefinitionFactory(code="FIB1", price=Decimal("605.00"), allowed_targets=[target])
    db.add(PriceChange(definition=d, new_price=Decimal("650"), effective_from=TODAY - timedelta(days=3)))
    db.add(PriceChange(definition=d, new_price=Decimal("700"), effective_from=TODAY + timedelta(days=30)))
    db.commit()
    body = api.get(f"/api/v1/catalogue/definitions/{d.id}").get_json()
    assert body["code"] == "FIB1" and body["price"] == "605.0000" and body["price_today"] == "650.0000"
    assert [(c["new_price"], c["effective_from"]) for c in body["price_changes"]] == [
        ("650.0000", (TODAY - timedelta(days=3)).isoformat()), ("700.0000", (TODAY + timedelta(days=30)).isoformat())]
    assert body["allowed_target_ids"] == [target.id] and body["vat_rate"] == "21.0000"
    assert body["period"] == "monthly" and body["active"] is True
    rows = api.get(f"/api/v1/catalogue/definitions?group_id={group.id}").get_json()["data"]
    assert [r["id"] for r in rows] == [target.id]
    assert api.get("/api/v1/catalogue/definitions?active=false").get_json()["data"] == []
    page = api.get("/api/v1/catalogue/definitions?limit=1").get_json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    response = api.get("/api/v1/catalogue/definitions?group_id=x")
    assert response.status_code == 422 and problem_fields(response) == {"group_id"}
    assert api.get("/api/v1/catalogue/definitions/999999").status_code == 404


def test_service_groups_and_billing_plans(db, api):
    group = ServiceGroupFactory(name="TV", position=3)
    plan = BillingPlanFactory(name="Quarterly", due_days=21)
    db.commit()
    assert [g["name"] for g in api.get("/api/v1/catalogue/service-groups").get_json()["data"]] == ["TV"]
    body = api.get(f"/api/v1/catalogue/service-groups/{group.id}").get_json()
    assert body == {**body, "name": "TV", "kind": "internet", "position": 3}
    assert [p["id"] for p in api.get("/api/v1/catalogue/billing-plans").get_json()["data"]] == [plan.id]
    body = api.get(f"/api/v1/catalogue/billing-plans/{plan.id}").get_json()
    assert body == {**body, "name": "Quarterly", "due_days": 21, "delivery": "email", "payment_method": "transfer"}
    assert api.get("/api/v1/catalogue/service-groups/999999").status_code == 404
    assert api.get("/api/v1/catalogue/billing-plans/999999").status_code == 404


def test_discounts_of_the_tokens_locations_only(db, operator, make_token, make_api, api):
    here, there = LocationFactory(), LocationFactory()
    mine = CustomerFactory(location=here)
    service = CustomerServiceFactory(customer=CustomerFactory(location=here))
    theirs = CustomerFactory(location=there)
    a, b = _discount(customer=mine), _discount(service=service, name="Fibre promo")
    c = _discount(customer=theirs, name="Old", valid_to=date(2024, 12, 31))
    db.add_all([a, b, c])
    db.commit()
    assert [d["id"] for d in api.get("/api/v1/catalogue/discounts").get_json()["data"]] == [a.id, b.id, c.id]
    assert [d["id"] for d in api.get("/api/v1/catalogue/discounts?current=true").get_json()["data"]] == [a.id, b.id]
    assert [d["id"] for d in api.get("/api/v1/catalogue/discounts?q=promo").get_json()["data"]] == [b.id]
    body = api.get(f"/api/v1/catalogue/discounts/{b.id}").get_json()
    assert body["customer_id"] == service.customer_id and body["customer_service_id"] == service.id
    assert body["value"] == "10.0000" and body["kind"] == "percent"
    local = make_api(make_token(operator, locations=[here]))
    assert [d["id"] for d in local.get("/api/v1/catalogue/discounts").get_json()["data"]] == [a.id, b.id]
    assert local.get(f"/api/v1/catalogue/discounts/{c.id}").status_code == 404
    assert local.get("/api/v1/catalogue/discounts/999999").status_code == 404
    page = api.get("/api/v1/catalogue/discounts?limit=2").get_json()
    rest = api.get(f"/api/v1/catalogue/discounts?limit=2&cursor={page['next_cursor']}").get_json()
    assert [d["id"] for d in page["data"] + rest["data"]] == [a.id, b.id, c.id]


def test_catalogue_needs_the_catalogue_right(db, make_token, make_api):
    d = ServiceDefinitionFactory()
    db.commit()
    reader = make_api(make_token(OperatorFactory(rights=("customers.read", "services.lifecycle"))))
    for url in ("/api/v1/catalogue/definitions", f"/api/v1/catalogue/definitions/{d.id}",
                "/api/v1/catalogue/service-groups", "/api/v1/catalogue/billing-plans",
                "/api/v1/catalogue/discounts"):
        response = reader.get(url)
        assert response.status_code == 403, url
        assert "catalogue.write" in response.get_json()["detail"]
    editor = make_api(make_token(OperatorFactory(rights=("catalogue.write",))))
    assert editor.get(f"/api/v1/catalogue/definitions/{d.id}").status_code == 200


def test_lists_cost_bounded_statements(db, api, count_queries):
    for n in range(12):
        d = ServiceDefinitionFactory(allowed_targets=[ServiceDefinitionFactory()])
        db.add(PriceChange(definition=d, new_price=Decimal("1"), effective_from=date(2030, 1, 1)))
        db.add(_discount(customer=CustomerFactory(), name=f"D{n}"))
    db.commit()
    for url in ("/api/v1/catalogue/definitions", "/api/v1/catalogue/discounts"):
        api.get(url + "?limit=2")
        with count_queries() as small:
            api.get(url + "?limit=2")
        with count_queries() as large:
            api.get(url + "?limit=20")
        assert large.count == small.count, url
