"""Staff catalogue pages: every page and action, 403 without the right, 422 on bad input
with nothing saved, audit entries, prices from a date, discounts scoped by location, CSV,
bounded queries."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.models import (
    AuditEntry,
    BillingPlan,
    Discount,
    PriceChange,
    ServiceDefinition,
    ServiceGroup,
)
from tests.factories import (
    BillingPlanFactory,
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
    ServiceGroupFactory,
)

RIGHT = ("catalogue.write",)


@pytest.fixture
def cat_client(operator_client):
    return operator_client(rights=RIGHT)


def _audit(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def _definition_form(group, **kw):
    data = {"group_id": str(group.id), "code": "NET50", "name": "Internet 50", "customer_name": "Internet 50 Mbit/s",
            "price": "399,50", "price_includes_vat": "y", "vat_rate": "21.00", "period": "monthly",
            "commitment_months": "12", "notice_days": "30", "valid_from": "2026-01-01", "active": "y"}
    data.update(kw)
    return data


def test_without_the_right_every_catalogue_page_is_403(operator_client, db):
    client = operator_client(rights=("customers.read",))
    g = ServiceGroupFactory()
    d = ServiceDefinitionFactory(group=g)
    db.commit()
    for url in ("/staff/catalogue", "/staff/catalogue/groups/new", f"/staff/catalogue/services/{d.id}",
                "/staff/catalogue/discounts", "/staff/catalogue/plans/new"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/staff/catalogue/services/{d.id}/price",
                       data={"new_price": "1", "effective_from": "2099-01-01"}).status_code == 403
    assert db.scalar(select(func.count()).select_from(PriceChange)) == 0


def test_overview_lists_services_groups_plans(cat_client, db):
    d = ServiceDefinitionFactory(code="TV1", name="Television", price=Decimal("300"))
    BillingPlanFactory(name="Monthly e-mail")
    db.add(PriceChange(definition=d, new_price=Decimal("350"), effective_from=date.today() + timedelta(days=40)))
    db.commit()
    html = cat_client.get("/staff/catalogue").get_data(as_text=True)
    assert "TV1" in html and "Television" in html and d.group.name in html and "Monthly e-mail" in html
    assert "350" in html


def test_overview_csv(cat_client, db):
    ServiceDefinitionFactory(code="NETX", name="=HYPERLINK(1)")
    db.commit()
    resp = cat_client.get("/staff/catalogue?format=csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True)
    assert text.splitlines()[0].lstrip("\ufeff").startswith("code,name,customer_name,group,price_today")
    assert "NETX,'=HYPERLINK(1)" in text


def test_overview_query_count_does_not_grow(cat_client, db, count_queries):
    def make(n):
        group = ServiceGroupFactory()
        for _ in range(n):
            d = ServiceDefinitionFactory(group=group)
            db.add(PriceChange(definition=d, new_price=Decimal("1"), effective_from=date(2030, 1, 1)))
        db.commit()

    make(2)
    cat_client.get("/staff/catalogue")
    with count_queries() as few:
        assert cat_client.get("/staff/catalogue").status_code == 200
    make(18)
    with count_queries() as many:
        assert cat_client.get("/staff/catalogue").status_code == 200
    assert many.count == few.count


def test_group_create_edit_and_bad_input(cat_client, db):
    assert cat_client.get("/staff/catalogue/groups/new").status_code == 200
    resp = cat_client.post("/staff/catalogue/groups/new", data={"name": "Internet", "kind": "internet", "position": "1"})
    assert resp.status_code == 302
    group = db.scalar(select(ServiceGroup))
    assert _audit(db, "service_group.created")[0].entity_id == group.id
    resp = cat_client.post("/staff/catalogue/groups/new", data={"name": "internet", "kind": "tv"})
    assert resp.status_code == 422 and "already exists" in resp.get_data(as_text=True)
    resp = cat_client.post(f"/staff/catalogue/groups/{group.id}", data={"name": "", "kind": "tv"})
    assert resp.status_code == 422
    resp = cat_client.post(f"/staff/catalogue/groups/{group.id}", data={"name": "TV", "kind": "nonsense"})
    assert resp.status_code == 422
    assert cat_client.get(f"/staff/catalogue/groups/{group.id}").status_code == 200
    assert cat_client.get("/staff/catalogue/groups/99999").status_code == 404
    resp = cat_client.post(f"/staff/catalogue/groups/{group.id}", data={"name": "TV", "kind": "tv", "position": "2"})
    assert resp.status_code == 302
    db.expire_all()
    assert group.name == "TV"
    assert _audit(db, "service_group.updated")[0].changes["name"] == ["Internet", "TV"]


def test_definition_create_with_targets(cat_client, db):
    group = ServiceGroupFactory()
    other = ServiceDefinitionFactory(group=group)
    db.commit()
    assert cat_client.get("/staff/catalogue/services/new").status_code == 200
    data = _definition_form(group, target_ids=[str(other.id)])
    resp = cat_client.post("/staff/catalogue/services/new", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    d = db.scalar(select(ServiceDefinition).where(ServiceDefinition.code == "NET50"))
    assert d.price == Decimal("399.50") and [t.id for t in d.allowed_targets] == [other.id]
    assert _audit(db, "service_definition.created")[0].entity_id == d.id
    page = cat_client.get(f"/staff/catalogue/services/{d.id}").get_data(as_text=True)
    assert "NET50" in page and "Schedule the new price" in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("price", "-1", "cannot be negative"),
    ("price", "abc", "Enter a number"),
    ("vat_rate", "19.00", "VAT rates"),
    ("period", "weekly", "Choose one of the options"),
    ("group_id", "", "Choose a group"),
    ("commitment_months", "x", ""),
    ("valid_from", "31.13.2026", ""),
    ("code", "a b", "Use letters"),
])
def test_definition_bad_input_is_422_and_saves_nothing(cat_client, db, field, value, message):
    group = ServiceGroupFactory()
    db.commit()
    resp = cat_client.post("/staff/catalogue/services/new", data=_definition_form(group, **{field: value}))
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(ServiceDefinition)) == 0
    assert _audit(db, "service_definition.created") == []


def test_definition_edit_no_self_target_and_htmx_block(cat_client, db):
    d = ServiceDefinitionFactory()
    db.commit()
    data = _definition_form(d.group, code=d.code, target_ids=[str(d.id)])
    del data["price"]
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}", data=data)
    assert resp.status_code == 422 and "target of itself" in resp.get_data(as_text=True)
    resp = cat_client.htmx("POST", f"/staff/catalogue/services/{d.id}", data=data)
    assert resp.status_code == 422 and "<html" not in resp.get_data(as_text=True)
    data["target_ids"] = []
    data["price"] = "1"  # ignored: prices change from a date
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}", data=data)
    assert resp.status_code == 302
    db.expire_all()
    assert d.name == "Internet 50" and d.price == Decimal("605.00")
    assert "price" not in _audit(db, "service_definition.updated")[0].changes


def test_definition_in_use_keeps_its_period(cat_client, db):
    svc = CustomerServiceFactory()
    d = svc.definition
    db.commit()
    data = _definition_form(d.group, code=d.code, period="yearly")
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}", data=data)
    assert resp.status_code == 422 and "cannot change any more" in resp.get_data(as_text=True)


def test_price_change_from_a_date(cat_client, db):
    d = ServiceDefinitionFactory()
    db.commit()
    past = (date.today() - timedelta(days=1)).isoformat()
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}/price", data={"new_price": "700", "effective_from": past})
    assert resp.status_code == 422 and "at the earliest" in resp.get_data(as_text=True)
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}/price",
                           data={"new_price": "-1", "effective_from": "2099-01-01"})
    assert resp.status_code == 422
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}/price", data={"new_price": "", "effective_from": ""})
    assert resp.status_code == 422
    assert db.scalar(select(func.count()).select_from(PriceChange)) == 0
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}/price",
                           data={"new_price": "726,00", "effective_from": "2099-01-01", "note": "Review"})
    assert resp.status_code == 302
    change = db.scalar(select(PriceChange))
    assert change.new_price == Decimal("726.00") and change.effective_from == date(2099, 1, 1)
    entry = _audit(db, "service_definition.price_scheduled")[0]
    assert entry.changes["price"] == ["605.00", "726.00"]
    page = cat_client.get(f"/staff/catalogue/services/{d.id}").get_data(as_text=True)
    assert "Withdraw" in page
    resp = cat_client.post(f"/staff/catalogue/services/{d.id}/price/{change.id}/cancel")
    assert resp.status_code == 302
    assert db.scalar(select(func.count()).select_from(PriceChange)) == 0
    assert _audit(db, "service_definition.price_cancelled")
    other = ServiceDefinitionFactory()
    db.commit()
    assert cat_client.post(f"/staff/catalogue/services/{other.id}/price/{change.id}/cancel").status_code == 404


def test_billing_plan_pages(cat_client, db):
    assert cat_client.get("/staff/catalogue/plans/new").status_code == 200
    data = {"name": "Monthly", "customer_name": "Monthly by e-mail", "invoice_day": "1", "due_days": "14",
            "delivery": "email", "payment_method": "transfer", "block_enabled": "y", "series": "FV",
            "constant_symbol": "0308", "active": "y"}
    assert cat_client.post("/staff/catalogue/plans/new", data={**data, "invoice_day": "31"}).status_code == 422
    assert cat_client.post("/staff/catalogue/plans/new", data={**data, "due_days": "abc"}).status_code == 422
    assert cat_client.post("/staff/catalogue/plans/new", data={**data, "series": "FV123"}).status_code == 422
    assert db.scalar(select(func.count()).select_from(BillingPlan)) == 0
    assert cat_client.post("/staff/catalogue/plans/new", data=data).status_code == 302
    plan = db.scalar(select(BillingPlan))
    assert cat_client.get(f"/staff/catalogue/plans/{plan.id}").status_code == 200
    assert cat_client.post(f"/staff/catalogue/plans/{plan.id}", data={**data, "due_days": "10"}).status_code == 302
    assert _audit(db, "billing_plan.created") and _audit(db, "billing_plan.updated")[0].changes == {"due_days": [14, 10]}


def test_discounts_create_edit_list_scoped_by_location(operator_client, db):
    here, there = LocationFactory(), LocationFactory()
    ours = CustomerFactory(location=here, customer_number="C1")
    theirs = CustomerFactory(location=there, customer_number="C2")
    svc = CustomerServiceFactory(customer=ours)
    foreign = Discount(name="Foreign discount", kind="percent", value=Decimal("5"), customer_id=theirs.id,
                       valid_from=date(2030, 1, 1))
    db.add(foreign)
    db.commit()
    client = operator_client(rights=RIGHT, locations=[here])
    assert client.get("/staff/catalogue/discounts/new?customer=C1").status_code == 200
    data = {"customer_number": "C1", "customer_service_id": str(svc.id), "name": "Loyalty", "kind": "percent",
            "value": "10", "valid_from": "2030-01-01", "min_commitment_months": "0", "shown_on_invoice": "y"}
    resp = client.post("/staff/catalogue/discounts/new", data={**data, "customer_number": "C2"})
    assert resp.status_code == 422 and "No customer" in resp.get_data(as_text=True)
    assert client.post("/staff/catalogue/discounts/new", data={**data, "value": "150"}).status_code == 422
    assert client.post("/staff/catalogue/discounts/new", data={**data, "valid_to": "2029-01-01"}).status_code == 422
    resp = client.post("/staff/catalogue/discounts/new", data=data)
    assert resp.status_code == 302
    mine = db.scalar(select(Discount).where(Discount.name == "Loyalty"))
    assert _audit(db, "discount.created")[0].customer_id == ours.id
    listing = client.get("/staff/catalogue/discounts").get_data(as_text=True)
    assert "Loyalty" in listing and "Foreign discount" not in listing
    assert client.get(f"/staff/catalogue/discounts/{foreign.id}").status_code == 404
    csv = client.get("/staff/catalogue/discounts?format=csv").get_data(as_text=True)
    assert "Loyalty" in csv and "Foreign" not in csv
    assert "Loyalty" in client.htmx("GET", "/staff/catalogue/discounts?q=loy").get_data(as_text=True)
    assert "Loyalty" not in client.get("/staff/catalogue/discounts?q=zzz").get_data(as_text=True)
    assert client.get(f"/staff/catalogue/discounts/{mine.id}").status_code == 200
    resp = client.post(f"/staff/catalogue/discounts/{mine.id}",
                       data={"name": "Loyalty", "valid_to": "2029-12-31", "shown_on_invoice": "y"})
    assert resp.status_code == 422
    resp = client.post(f"/staff/catalogue/discounts/{mine.id}",
                       data={"name": "Loyalty", "valid_to": "2030-12-31", "shown_on_invoice": "y"})
    assert resp.status_code == 302
    assert _audit(db, "discount.updated")[0].changes == {"valid_to": [None, "2030-12-31"]}


def test_discount_list_query_count_does_not_grow(cat_client, db, count_queries):
    def make(n):
        for _ in range(n):
            c = CustomerFactory()
            db.add(Discount(name="D", kind="amount", value=Decimal("10"), customer_id=c.id, valid_from=date(2030, 1, 1)))
        db.commit()

    make(2)
    with count_queries() as few:
        assert cat_client.get("/staff/catalogue/discounts").status_code == 200
    make(18)
    with count_queries() as many:
        assert cat_client.get("/staff/catalogue/discounts").status_code == 200
    assert many.count == few.count


def test_htmx_forms_answer_with_the_form_or_a_redirect_header(cat_client, db):
    d = ServiceDefinitionFactory()
    db.commit()
    url = f"/staff/catalogue/services/{d.id}/price"
    resp = cat_client.htmx("POST", url, data={"new_price": "abc", "effective_from": "2099-01-01"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and html.lstrip().startswith("<form") and "Enter a number" in html
    resp = cat_client.htmx("POST", url, data={"new_price": "700", "effective_from": "2099-01-01"})
    assert resp.status_code == 204
    assert resp.headers["HX-Redirect"] == f"/staff/catalogue/services/{d.id}#prices"
    assert db.scalar(select(func.count()).select_from(PriceChange)) == 1
    resp = cat_client.htmx("POST", "/staff/catalogue/groups/new", data={"name": "", "kind": "tv"})
    assert resp.status_code == 422 and resp.get_data(as_text=True).lstrip().startswith("<form")


def test_ids_no_row_can_have_are_404_or_422_never_500(operator_client, db):
    big = "9" * 25
    client = operator_client(rights=("catalogue.write", "operators.admin", "audit.read"))
    for url in (f"/staff/catalogue/services/{big}", f"/staff/catalogue/groups/{big}", f"/staff/catalogue/plans/{big}",
                f"/staff/catalogue/discounts/{big}", f"/staff/operators/{big}", f"/staff/operators/roles/{big}",
                f"/staff/audit/{big}"):
        assert client.get(url).status_code == 404, url
    group = ServiceGroupFactory()
    db.commit()
    resp = client.post("/staff/catalogue/services/new",
                       data=_definition_form(group, group_id=big, target_ids=[big], commitment_months=big))
    assert resp.status_code == 422
    resp = client.post("/staff/catalogue/services/new", data=_definition_form(group, target_ids=[big]))
    assert resp.status_code == 422
    resp = client.post("/staff/catalogue/discounts/new",
                       data={"customer_number": "x", "customer_service_id": big, "name": "n", "kind": "percent",
                             "value": "1", "valid_from": "2030-01-01", "min_commitment_months": "0"})
    assert resp.status_code == 422
    resp = client.post("/staff/operators/new", data={"name": "n", "email": "a@example.com", "role_ids": [big]})
    assert resp.status_code == 422
    assert client.get(f"/staff/audit?entity_id={big}").status_code == 422
