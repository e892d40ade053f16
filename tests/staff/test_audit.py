"""Staff audit log: filters, pagination on (at, id), entry detail with before → after, CSV
of the filtered list, location scoping, 403, bounded queries."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import ActorType, AuditEntry
from tests.factories import CustomerFactory, LocationFactory, OperatorFactory

RIGHT = ("audit.read",)


@pytest.fixture
def audit_client(operator_client):
    return operator_client(rights=RIGHT)


def _entry(db, action="service.blocked", at=None, actor=None, entity_type="customer_service", entity_id=1,
           customer_id=None, changes=None):
    e = record(db, actor or Actor.system("billing"), action, entity_type, entity_id, changes or {},
               customer_id=customer_id)
    if at is not None:
        e.at = at
    db.flush()
    return e


def test_forbidden_without_the_right(operator_client, db):
    client = operator_client(rights=("customers.read",))
    e = _entry(db)
    db.commit()
    assert client.get("/staff/audit").status_code == 403
    assert client.get(f"/staff/audit/{e.id}").status_code == 403
    assert client.get("/staff/audit?format=csv").status_code == 403


def test_list_filters(audit_client, db):
    op = OperatorFactory(name="Petra Admin")
    cust = CustomerFactory(customer_number="C777")
    day = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    _entry(db, "service.blocked", at=day, actor=Actor.operator(op), entity_id=5, customer_id=cust.id)
    _entry(db, "service.unblocked", at=day + timedelta(days=1), entity_id=5, customer_id=cust.id)
    _entry(db, "billing_plan.updated", at=day + timedelta(days=5), entity_type="billing_plan", entity_id=2)
    db.commit()

    def actions(query):
        resp = audit_client.get("/staff/audit" + query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        html = resp.get_data(as_text=True)
        return {a for a in ("service.blocked", "service.unblocked", "billing_plan.updated") if f"<code>{a}</code>" in html}

    assert actions("") == {"service.blocked", "service.unblocked", "billing_plan.updated"}
    assert actions(f"?actor=operator:{op.id}") == {"service.blocked"}
    assert actions("?actor=system") == {"service.unblocked", "billing_plan.updated"}
    assert actions("?entity_type=customer_service&entity_id=5") == {"service.blocked", "service.unblocked"}
    assert actions("?entity_type=billing_plan") == {"billing_plan.updated"}
    assert actions("?action=service.") == {"service.blocked", "service.unblocked"}
    assert actions("?action=service.blocked") == {"service.blocked"}
    assert actions("?action=service") == set()  # exact unless it ends with a dot
    assert actions("?customer=C777") == {"service.blocked", "service.unblocked"}
    assert actions("?date_from=2026-03-11&date_to=2026-03-11") == {"service.unblocked"}
    assert actions("?date_from=2026-03-12") == {"billing_plan.updated"}
    fragment = audit_client.htmx("GET", "/staff/audit?action=service.").get_data(as_text=True)
    assert "<html" not in fragment and "service.blocked" in fragment


def test_bad_filters_are_422(audit_client, db):
    _entry(db)
    db.commit()
    for query in ("?entity_id=abc", "?date_from=2026-13-45", "?entity_id=-1", "?action=" + "x" * 200):
        resp = audit_client.get("/staff/audit" + query)
        assert resp.status_code == 422, query
        assert "service.blocked" not in resp.get_data(as_text=True)
    assert audit_client.get("/staff/audit?entity_id=abc&format=csv").status_code == 422
    assert audit_client.get("/staff/audit?page=abc").status_code == 200


def test_pagination_newest_first(audit_client, db):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(55):
        _entry(db, f"thing.n{i:02d}", at=base + timedelta(minutes=i))
    db.commit()
    first = audit_client.get("/staff/audit?action=thing.").get_data(as_text=True)
    assert "thing.n54" in first and "thing.n05" in first and "thing.n04" not in first
    second = audit_client.get("/staff/audit?action=thing.&page=2").get_data(as_text=True)
    assert "thing.n04" in second and "thing.n00" in second and "thing.n54" not in second
    assert 'href="/staff/audit?action=thing.&amp;page=2"' in first


def test_entry_detail_shows_before_after_table(audit_client, db):
    cust = CustomerFactory()
    e = _entry(db, "service_definition.updated", entity_type="service_definition", entity_id=3, customer_id=cust.id,
               changes={"name": ["Old <b>name</b>", "New name"], "vat_rate": ["21.00", "12.00"],
                        "allowed_targets": [[], ["NET1"]], "note": "free text"})
    db.commit()
    html = audit_client.get(f"/staff/audit/{e.id}").get_data(as_text=True)
    assert "<th scope=\"row\">name</th>" in html
    assert "Old &lt;b&gt;name&lt;/b&gt;" in html and "New name" in html
    assert "21.00" in html and "12.00" in html and "NET1" in html and "free text" in html
    assert cust.customer_number in html
    assert audit_client.get("/staff/audit/999999").status_code == 404
    op = OperatorFactory()
    about_operator = _entry(db, "operator.updated", entity_type="operator", entity_id=op.id)
    db.commit()
    assert f'href="/staff/operators/{op.id}"' in audit_client.get(f"/staff/audit/{about_operator.id}").get_data(as_text=True)


def test_date_filter_uses_the_portal_time_zone(audit_client, db):
    # 23:30 UTC on 10 March is already 11 March in Prague.
    _entry(db, "late.evening", at=datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    db.commit()
    assert "late.evening" in audit_client.get("/staff/audit?date_from=2026-03-11&date_to=2026-03-11").get_data(as_text=True)
    assert "late.evening" not in audit_client.get("/staff/audit?date_to=2026-03-10").get_data(as_text=True)


def test_csv_export_of_the_filtered_list(audit_client, db):
    _entry(db, "service.blocked", changes={"state": ["active", "blocked"]})
    _entry(db, "=cmd|' /C calc'!A0", entity_type="customer")
    db.commit()
    resp = audit_client.get("/staff/audit?format=csv&action=service.")
    assert resp.status_code == 200 and resp.mimetype == "text/csv" and resp.is_streamed
    lines = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,at,actor_type,actor_id,actor_name,action,entity_type")
    assert len(lines) == 2 and "service.blocked" in lines[1] and "blocked" in lines[1]
    everything = audit_client.get("/staff/audit?format=csv").get_data(as_text=True)
    assert "'=cmd" in everything


def test_location_scope(operator_client, db):
    here, there = LocationFactory(), LocationFactory()
    ours, theirs = CustomerFactory(location=here), CustomerFactory(location=there)
    a = _entry(db, "ours.changed", customer_id=ours.id)
    b = _entry(db, "theirs.changed", customer_id=theirs.id)
    _entry(db, "catalogue.changed")
    db.commit()
    client = operator_client(rights=RIGHT, locations=[here])
    html = client.get("/staff/audit").get_data(as_text=True)
    assert "ours.changed" in html and "catalogue.changed" in html and "theirs.changed" not in html
    assert client.get(f"/staff/audit/{a.id}").status_code == 200
    assert client.get(f"/staff/audit/{b.id}").status_code == 404
    assert "theirs.changed" not in client.get("/staff/audit?format=csv").get_data(as_text=True)
    assert "theirs.changed" not in client.get(f"/staff/audit?customer={theirs.customer_number}").get_data(as_text=True)


def test_query_count_does_not_grow(audit_client, db, count_queries):
    def make(n):
        for _ in range(n):
            c = CustomerFactory()
            _entry(db, customer_id=c.id, actor=Actor(ActorType.OPERATOR, 1, "x"))
        db.commit()

    make(2)
    with count_queries() as few:
        assert audit_client.get("/staff/audit").status_code == 200
    make(18)
    with count_queries() as many:
        assert audit_client.get("/staff/audit").status_code == 200
    assert many.count == few.count


def test_changes_made_in_staff_areas_appear_in_the_log(operator_client, db):
    client = operator_client(rights=("catalogue.write", "audit.read"))
    client.post("/staff/catalogue/groups/new", data={"name": "Internet", "kind": "internet"})
    html = client.get("/staff/audit?action=service_group.created").get_data(as_text=True)
    assert "service_group.created" in html and client.operator.name in html
    assert db.scalar(select(AuditEntry.actor_id).where(AuditEntry.action == "service_group.created")) == client.operator.id
