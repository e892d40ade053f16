"""Catalogue rules: validation, what may change once a service is sold, prices from a date
(used by billing for later periods, never for issued invoices), discounts, audit."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.domain import catalogue as rules
from portal.domain.actors import Actor
from portal.domain.billing import effective_price, run_billing
from portal.models import (
    AuditEntry,
    Discount,
    DiscountKind,
    Invoice,
    Period,
    PriceChange,
    ServiceGroupKind,
)
from tests.domain.billing_fixtures import World
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
    ServiceGroupFactory,
)

ACTOR = Actor.system("test")
D = Decimal


def _audit(db, action):
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _input(group, **kw):
    values = dict(group_id=group.id, code="net50", name="Internet 50", customer_name="Internet 50 Mbit/s",
                  price="399.00", vat_rate="21", period="monthly", commitment_months=12, notice_days=30,
                  valid_from=date(2026, 1, 1))
    values.update(kw)
    return rules.DefinitionInput(**values)


def test_group_create_edit_and_unique_name(db):
    g = rules.save_group(db, ACTOR, None, name="Internet", kind="internet", position=1)
    assert g.kind == ServiceGroupKind.INTERNET
    rules.save_group(db, ACTOR, g, name="Internet access", kind="internet", position=1)
    with pytest.raises(rules.CatalogueError) as err:
        rules.save_group(db, ACTOR, None, name="internet ACCESS", kind="tv")
    assert err.value.field == "name"
    with pytest.raises(rules.CatalogueError) as err:
        rules.save_group(db, ACTOR, None, name="TV", kind="radio")
    assert err.value.field == "kind"
    assert [e.changes for e in _audit(db, "service_group.updated")] == [{"name": ["Internet", "Internet access"]}]
    assert len(_audit(db, "service_group.created")) == 1


def test_create_definition_validates_and_audits(db):
    group = ServiceGroupFactory()
    other = ServiceDefinitionFactory(group=group)
    d = rules.create_definition(db, ACTOR, _input(group, target_ids=[other.id]))
    assert d.code == "NET50" and d.price == D("399.00") and d.vat_rate == D("21.00")
    assert [t.id for t in d.allowed_targets] == [other.id]
    entry = _audit(db, "service_definition.created")[0]
    assert entry.entity_id == d.id and entry.changes["price"] == [None, "399.00"]
    assert entry.changes["allowed_targets"] == [None, [other.code]]


@pytest.mark.parametrize(("field", "value"), [
    ("price", "-1"), ("price", "abc"), ("price", "1.00001"), ("price", "NaN"), ("vat_rate", "20"),
    ("vat_rate", ""), ("period", "weekly"), ("commitment_months", -1), ("notice_days", "x"), ("code", "a b"),
    ("name", "  "), ("valid_to", date(2025, 1, 1)), ("group_id", None), ("group_id", 999999),
])
def test_create_definition_refuses_bad_input(db, field, value):
    group = ServiceGroupFactory()
    with pytest.raises(rules.CatalogueError) as err:
        rules.create_definition(db, ACTOR, _input(group, **{field: value}))
    assert err.value.field == field


def test_code_is_unique(db):
    group = ServiceGroupFactory()
    rules.create_definition(db, ACTOR, _input(group))
    with pytest.raises(rules.CatalogueError) as err:
        rules.create_definition(db, ACTOR, _input(group, name="Other"))
    assert err.value.field == "code"


def test_a_definition_is_not_its_own_target(db):
    group = ServiceGroupFactory()
    d = rules.create_definition(db, ACTOR, _input(group))
    with pytest.raises(rules.CatalogueError) as err:
        rules.update_definition(db, ACTOR, d, _input(group, target_ids=[d.id]))
    assert err.value.field == "target_ids"
    with pytest.raises(rules.CatalogueError):
        rules.update_definition(db, ACTOR, d, _input(group, target_ids=[987654]))


def test_update_audits_only_changes_and_keeps_the_price(db):
    group = ServiceGroupFactory()
    d = rules.create_definition(db, ACTOR, _input(group))
    assert rules.update_definition(db, ACTOR, d, _input(group)) == {}
    changes = rules.update_definition(db, ACTOR, d, _input(group, name="Internet 50 Plus", price="1", vat_rate="12"))
    assert changes == {"name": ["Internet 50", "Internet 50 Plus"], "vat_rate": ["21.00", "12.00"]}
    assert d.price == D("399.00")
    assert len(_audit(db, "service_definition.updated")) == 1


def test_period_and_vat_side_are_fixed_once_sold(db):
    world = World()
    svc = world.service()
    d = svc.definition
    data = _input(d.group, code=d.code, name=d.name, customer_name=d.customer_name, vat_rate="21",
                  period="quarterly", valid_from=d.valid_from)
    with pytest.raises(rules.CatalogueError) as err:
        rules.update_definition(db, ACTOR, d, data)
    assert err.value.field == "period"
    data.period, data.price_includes_vat = "monthly", False
    with pytest.raises(rules.CatalogueError) as err:
        rules.update_definition(db, ACTOR, d, data)
    assert err.value.field == "price_includes_vat"


def test_price_change_dates_follow_what_is_charged(db):
    world = World()
    svc = world.service(billing_from=date(2026, 1, 1))
    d = svc.definition
    assert rules.earliest_price_change(db, d, date(2026, 1, 1)) == date(2026, 1, 1)
    assert rules.earliest_price_change(db, d, date(2026, 1, 15)) == date(2026, 2, 1)
    run_billing(db, "2026-01", actor=ACTOR, issue_date=date(2026, 1, 1))
    assert rules.last_charged_day(db, d) == date(2026, 1, 31)
    assert rules.earliest_price_change(db, d, date(2025, 12, 1)) == date(2026, 2, 1)
    assert rules.earliest_price_change(db, d, date(2026, 3, 3)) == date(2026, 4, 1)
    for day in (date(2026, 1, 20), date(2026, 1, 31), date(2026, 1, 1), date(2026, 2, 15)):
        with pytest.raises(rules.CatalogueError) as err:
            rules.schedule_price_change(db, ACTOR, d, new_price="700", effective_from=day, today=date(2026, 1, 15))
        assert err.value.field == "effective_from"
    with pytest.raises(rules.CatalogueError) as err:
        rules.schedule_price_change(db, ACTOR, d, new_price="-5", effective_from=date(2026, 2, 1),
                                    today=date(2026, 1, 15))
    assert err.value.field == "new_price"
    assert db.scalars(select(PriceChange)).all() == []


def test_price_change_applies_to_later_periods_not_to_issued_invoices(db):
    world = World()
    svc = world.service(billing_from=date(2026, 1, 1))
    d = svc.definition
    run_billing(db, "2026-01", actor=ACTOR, issue_date=date(2026, 1, 1))
    january = db.scalar(select(Invoice))
    assert january.gross_total == D("605.00")
    change = rules.schedule_price_change(db, ACTOR, d, new_price="726,00".replace(",", "."),
                                         effective_from=date(2026, 2, 1), note="Yearly review",
                                         today=date(2026, 1, 15))
    db.commit()
    assert change.id and rules.price_on(d, date(2026, 1, 31)) == D("605.00")
    assert rules.price_on(d, date(2026, 2, 1)) == D("726.00")
    assert effective_price(db, svc, date(2026, 2, 1)) == D("726.00")
    assert effective_price(db, svc, date(2026, 1, 1)) == D("605.00")
    entry = _audit(db, "service_definition.price_scheduled")[0]
    assert entry.changes["price"] == ["605.00", "726.00"] and entry.changes["effective_from"] == "2026-02-01"

    run_billing(db, "2026-02", actor=ACTOR, issue_date=date(2026, 2, 1))
    invoices = db.scalars(select(Invoice).order_by(Invoice.issue_date)).all()
    assert [i.gross_total for i in invoices] == [D("605.00"), D("726.00")]
    db.refresh(january)
    assert january.gross_total == D("605.00")
    # Charged now: the change can no longer be withdrawn.
    with pytest.raises(rules.CatalogueError):
        rules.cancel_price_change(db, ACTOR, change, today=date(2026, 2, 2))


def test_a_quarterly_price_changes_at_a_quarter_start(db):
    world = World()
    d = world.definition(period=Period.QUARTERLY)
    assert rules.earliest_price_change(db, d, date(2026, 2, 10)) == date(2026, 4, 1)
    with pytest.raises(rules.CatalogueError) as err:
        rules.schedule_price_change(db, ACTOR, d, new_price="900", effective_from=date(2026, 5, 1),
                                    today=date(2026, 2, 10))
    assert "2026-07-01" in str(err.value)
    assert rules.schedule_price_change(db, ACTOR, d, new_price="900", effective_from=date(2026, 7, 1),
                                       today=date(2026, 2, 10)).new_price == D("900")


def test_same_day_change_is_replaced_and_future_change_withdrawn(db):
    world = World()
    d = world.service(billing_from=date(2026, 1, 1)).definition
    first = rules.schedule_price_change(db, ACTOR, d, new_price="700", effective_from=date(2026, 6, 1),
                                        today=date(2026, 1, 15))
    again = rules.schedule_price_change(db, ACTOR, d, new_price="710", effective_from=date(2026, 6, 1),
                                        today=date(2026, 1, 15))
    assert first.id == again.id and again.new_price == D("710")
    rules.cancel_price_change(db, ACTOR, again, today=date(2026, 1, 20))
    assert db.scalars(select(PriceChange)).all() == []
    assert _audit(db, "service_definition.price_cancelled")[0].changes["price"] == ["710.00", None]


def test_billing_plan_rules(db):
    data = rules.PlanInput(name="Monthly", customer_name="Monthly by e-mail", invoice_day=1, due_days=14,
                           series="fv", constant_symbol="0308")
    plan = rules.save_billing_plan(db, ACTOR, None, data)
    assert plan.series == "FV"
    for field, value in [("invoice_day", 29), ("due_days", 121), ("series", "F-V"), ("series", "F123"),
                         ("constant_symbol", "38"), ("delivery", "pigeon"), ("payment_method", "gold")]:
        bad = rules.PlanInput(**{**data.__dict__, field: value})
        with pytest.raises(rules.CatalogueError) as err:
            rules.save_billing_plan(db, ACTOR, plan, bad)
        assert err.value.field == field
    with pytest.raises(rules.CatalogueError) as err:
        rules.save_billing_plan(db, ACTOR, None, rules.PlanInput(**{**data.__dict__, "name": "MONTHLY"}))
    assert err.value.field == "name"
    rules.save_billing_plan(db, ACTOR, plan, rules.PlanInput(**{**data.__dict__, "due_days": 10}))
    assert _audit(db, "billing_plan.updated")[0].changes == {"due_days": [14, 10]}


def test_discount_cannot_reach_into_charged_periods(db):
    world = World()
    svc = world.service(billing_from=date(2026, 1, 1))
    run_billing(db, "2026-01", actor=ACTOR, issue_date=date(2026, 1, 1))
    data = rules.DiscountInput(name="Loyalty", kind="percent", value="10", customer_id=svc.customer_id,
                               customer_service_id=svc.id, valid_from=date(2026, 1, 15))
    with pytest.raises(rules.CatalogueError) as err:
        rules.create_discount(db, ACTOR, data, svc.customer)
    assert err.value.field == "valid_from"
    for field, value in [("value", "0"), ("value", "101"), ("kind", "gift")]:
        bad = rules.DiscountInput(**{**data.__dict__, "valid_from": date(2026, 2, 1), field: value})
        with pytest.raises(rules.CatalogueError) as err:
            rules.create_discount(db, ACTOR, bad, svc.customer)
        assert err.value.field == field
    other = world.service()
    with pytest.raises(rules.CatalogueError) as err:
        rules.create_discount(db, ACTOR, rules.DiscountInput(**{**data.__dict__, "valid_from": date(2026, 2, 1),
                                                                 "customer_service_id": other.id}), svc.customer)
    assert err.value.field == "customer_service_id"

    data.valid_from = date(2026, 2, 1)
    discount = rules.create_discount(db, ACTOR, data, svc.customer)
    entry = _audit(db, "discount.created")[0]
    assert entry.customer_id == svc.customer_id and entry.changes["value"] == [None, "10.00"]
    run_billing(db, "2026-02", actor=ACTOR, issue_date=date(2026, 2, 1))
    feb = db.scalars(select(Invoice).where(Invoice.customer_id == svc.customer_id).order_by(Invoice.id.desc())).first()
    assert feb.gross_total == D("544.50")
    # Ending it inside a charged period would change what February's invoice says.
    with pytest.raises(rules.CatalogueError) as err:
        rules.update_discount(db, ACTOR, discount, name="Loyalty", valid_to=date(2026, 2, 10), shown_on_invoice=True)
    assert err.value.field == "valid_to"
    with pytest.raises(rules.CatalogueError) as err:
        rules.update_discount(db, ACTOR, discount, name="Loyalty", valid_to=None, shown_on_invoice=False)
    assert err.value.field == "shown_on_invoice"
    changes = rules.update_discount(db, ACTOR, discount, name="Loyalty 10 %", valid_to=date(2026, 2, 28),
                                    shown_on_invoice=True)
    assert changes == {"name": ["Loyalty", "Loyalty 10 %"], "valid_to": [None, "2026-02-28"]}
    assert _audit(db, "discount.updated")[0].customer_id == svc.customer_id


def test_discounts_statement_by_owner_location_text_and_validity(db):
    here, there = LocationFactory(), LocationFactory()
    mine = CustomerFactory(location=here)
    service = CustomerServiceFactory(customer=CustomerFactory(location=here))
    theirs = CustomerFactory(location=there)
    made = [Discount(name=name, kind=DiscountKind.PERCENT, value=D("5"), valid_from=date(2024, 1, 1), **owner)
            for name, owner in (("Loyalty", {"customer_id": mine.id}),
                                ("Fibre promo", {"customer_service_id": service.id}),
                                ("Old", {"customer_id": theirs.id, "valid_to": date(2024, 6, 30)}))]
    db.add_all(made)
    db.flush()
    a, b, c = made

    def rows(*args, **kw):
        return [(d.id, customer.id) for d, customer in db.execute(rules.discounts_statement(*args, **kw))]

    assert rows(None) == [(c.id, theirs.id), (b.id, service.customer_id), (a.id, mine.id)]  # newest first
    assert rows([here.id]) == [(b.id, service.customer_id), (a.id, mine.id)]
    assert rows(None, text="PROMO") == [(b.id, service.customer_id)]
    assert rows(None, text=theirs.customer_number) == [(c.id, theirs.id)]
    assert rows(None, current_on=date(2025, 1, 1)) == [(b.id, service.customer_id), (a.id, mine.id)]
