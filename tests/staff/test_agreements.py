"""Staff agreements: list (filters, CSV, scoping, query count), detail, drafting for a
customer's services, issuing with a PDF, recording a signed copy, invalidating with a note,
the PDFs and their versions, and editing agreement types — each audited, bad input 422."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, select

from portal.domain import agreements as rules
from portal.domain.actors import Actor
from portal.models import Agreement, AgreementState, AgreementType, AuditEntry, ServiceState
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

SYSTEM = Actor.system("test")


def make_type(db, code="SA", *, is_annex=False, **kw) -> AgreementType:
    t = AgreementType(name=f"Type {code}", code=code, number_format="{year}/{seq:05d}", is_annex=is_annex,
                      template="annex.html" if is_annex else "standard.html", valid_from=date(2020, 1, 1), **kw)
    db.add(t)
    db.flush()
    return t


def draft(db, atype, customer=None, services=None) -> Agreement:
    customer = customer or CustomerFactory()
    services = services if services is not None else [CustomerServiceFactory(customer=customer)]
    return rules.create_agreement(db, atype, customer, services, actor=SYSTEM)


def _audit(db, entity_type, entity_id, action) -> list[AuditEntry]:
    return db.scalars(select(AuditEntry).where(AuditEntry.entity_type == entity_type,
                                               AuditEntry.entity_id == entity_id,
                                               AuditEntry.action == action)).all()


def _reload(db, agreement) -> Agreement:
    db.expire_all()
    return db.get(Agreement, agreement.id)


# -- list ----------------------------------------------------------------------------------------


def test_list_filters_and_csv(staff_client, db):
    sa, other = make_type(db, "SA"), make_type(db, "TV")
    novak = CustomerFactory(last_name="Novák", name_key="novak", customer_number="C800001")
    a1 = draft(db, sa, novak)
    a2 = draft(db, other)
    rules.invalidate_agreement(db, a2, actor=SYSTEM, note="typo")
    db.commit()

    def shown(query):
        text = staff_client.get(f"/staff/agreements?{query}").get_data(as_text=True)
        return {a.id for a in (a1, a2) if f'href="/staff/agreements/{a.id}"' in text}

    assert shown("") == {a1.id, a2.id}
    assert shown("state=invalid") == {a2.id}
    assert shown(f"type={sa.id}") == {a1.id}
    assert shown("q=novak") == {a1.id}
    assert shown("q=C800001") == {a1.id}
    assert shown("state=bogus&type=x") == {a1.id, a2.id}
    resp = staff_client.get("/staff/agreements?state=invalid&format=csv")
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert resp.mimetype == "text/csv" and rows[0][0] == "id"
    assert [r[0] for r in rows[1:]] == [str(a2.id)] and rows[1][5] == "invalid" and rows[1][11] == "typo"
    htmx = staff_client.htmx("GET", "/staff/agreements?state=invalid").get_data(as_text=True)
    assert "<html" not in htmx and f"/staff/agreements/{a2.id}" in htmx


def test_list_and_detail_are_scoped(operator_client, db):
    t = make_type(db)
    loc_a, loc_b = LocationFactory(), LocationFactory()
    mine = draft(db, t, CustomerFactory(location=loc_a))
    theirs = draft(db, t, CustomerFactory(location=loc_b))
    db.commit()
    client = operator_client(rights=("agreements.write", "customers.read"), locations=[loc_a])
    text = client.get("/staff/agreements").get_data(as_text=True)
    assert f"/staff/agreements/{mine.id}" in text and f"/staff/agreements/{theirs.id}" not in text
    assert client.get(f"/staff/agreements/{theirs.id}").status_code == 404
    assert client.get(f"/staff/agreements/{theirs.id}/pdf").status_code == 404
    assert client.post(f"/staff/agreements/{theirs.id}/invalidate", data={"note": "x"}).status_code == 404
    assert client.post(f"/staff/agreements/{theirs.id}/issue").status_code == 404
    assert client.get(f"/staff/customers/{theirs.customer_id}/agreements/new").status_code == 404
    assert _reload(db, theirs).state == AgreementState.DRAFT


def test_list_query_count_does_not_grow(staff_client, db, count_queries):
    t = make_type(db)

    def count():
        staff_client.get("/staff/agreements")
        with count_queries() as q:
            assert staff_client.get("/staff/agreements").status_code == 200
        return q.count

    for _ in range(2):
        draft(db, t)
    db.commit()
    few = count()
    for i in range(18):
        draft(db, make_type(db, f"X{i}"))
    db.commit()
    assert count() == few


def test_forbidden_without_the_right(operator_client, db):
    t = make_type(db)
    a = draft(db, t)
    db.commit()
    client = operator_client(rights=("customers.read", "services.lifecycle"))
    for url in ("/staff/agreements", f"/staff/agreements/{a.id}", "/staff/agreements/types",
                f"/staff/agreements/types/{t.id}", f"/staff/customers/{a.customer_id}/agreements/new"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/staff/agreements/{a.id}/invalidate", data={"note": "x"}).status_code == 403
    assert client.post(f"/staff/agreements/types/{t.id}", data={"name": "Hacked"}).status_code == 403
    assert _reload(db, a).state == AgreementState.DRAFT
    assert db.get(AgreementType, t.id).name == "Type SA"


# -- create, issue, accept, invalidate -----------------------------------------------------------


def test_create_issue_accept_and_download(staff_client, db):
    t = make_type(db)
    customer = CustomerFactory()
    s1 = CustomerServiceFactory(customer=customer, definition=ServiceDefinitionFactory(name="Fibre 300"))
    CustomerServiceFactory(customer=customer, state=ServiceState.CANCELLED,
                           definition=ServiceDefinitionFactory(name="Old DSL"))
    db.commit()
    page = staff_client.get(f"/staff/customers/{customer.id}/agreements/new").get_data(as_text=True)
    assert "Fibre 300" in page and "Old DSL" not in page
    resp = staff_client.post(f"/staff/customers/{customer.id}/agreements/new",
                             data={"type": t.id, "services": [s1.id], "summary": "Home internet"})
    assert resp.status_code == 302
    agreement = db.scalar(select(Agreement).where(Agreement.customer_id == customer.id))
    assert agreement.state == AgreementState.DRAFT and [s.id for s in agreement.customer_services] == [s1.id]
    assert _audit(db, "agreement", agreement.id, "agreement.created")
    detail = staff_client.get(f"/staff/agreements/{agreement.id}").get_data(as_text=True)
    assert "Issue (number and PDF)" in detail and "Fibre 300" in detail
    assert staff_client.get(f"/staff/agreements/{agreement.id}/pdf").status_code == 404  # a draft has none

    assert staff_client.post(f"/staff/agreements/{agreement.id}/issue").status_code == 302
    agreement = _reload(db, agreement)
    assert agreement.state == AgreementState.ISSUED and agreement.number == f"{date.today().year}/00001"
    assert _audit(db, "agreement", agreement.id, "agreement.issued")
    pdf = staff_client.get(f"/staff/agreements/{agreement.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert staff_client.get(f"/staff/agreements/{agreement.id}/pdf?version=1").data == pdf.data
    assert staff_client.get(f"/staff/agreements/{agreement.id}/pdf?version=9").status_code == 404
    again = staff_client.post(f"/staff/agreements/{agreement.id}/issue")
    assert again.status_code == 422 and "Only a draft can be issued" in again.get_data(as_text=True)

    resp = staff_client.post(f"/staff/agreements/{agreement.id}/accept", data={"note": "Signed copy in binder 4"})
    assert resp.status_code == 302
    agreement = _reload(db, agreement)
    assert agreement.state == AgreementState.ACCEPTED
    [acceptance] = agreement.acceptances
    assert acceptance.method.value == "staff" and acceptance.document_sha256 == agreement.current_document.sha256
    [entry] = _audit(db, "agreement", agreement.id, "agreement.accepted")
    assert entry.changes["note"] == "Signed copy in binder 4"
    detail = staff_client.get(f"/staff/agreements/{agreement.id}").get_data(as_text=True)
    assert 'id="acceptance-table"' in detail and acceptance.document_sha256 in detail
    assert "Document versions" in detail and "?version=1" in detail


@pytest.mark.parametrize("data, message", [
    ({"services": ["SVC"]}, "Choose a type."),
    ({"type": "TYPE"}, "Choose at least one service."),
    ({"type": "TYPE", "services": ["FOREIGN"]}, "Choose among this customer&#39;s services."),
    ({"type": "TYPE", "services": ["abc"]}, "could not be coerced"),
    ({"type": "ANNEX", "services": ["SVC"]}, "is an annex: choose the agreement it amends"),
    ({"type": "TYPE", "services": ["SVC"], "valid_from": "2025-02-30"}, "Not a valid date value."),
    ({"type": "TYPE", "services": ["SVC"], "parent": "999999"}, "Choose one of this customer&#39;s agreements."),
])
def test_create_bad_input_is_422(staff_client, db, data, message):
    t, annex = make_type(db), make_type(db, "AN", is_annex=True)
    customer = CustomerFactory()
    mine, foreign = CustomerServiceFactory(customer=customer), CustomerServiceFactory()
    db.commit()
    subst = {"TYPE": str(t.id), "ANNEX": str(annex.id), "SVC": str(mine.id), "FOREIGN": str(foreign.id)}
    data = {k: ([subst.get(x, x) for x in v] if isinstance(v, list) else subst.get(v, v)) for k, v in data.items()}
    resp = staff_client.post(f"/staff/customers/{customer.id}/agreements/new", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Agreement)) == 0


def test_invalidate_needs_a_note(staff_client, db):
    t = make_type(db)
    a = draft(db, t)
    db.commit()
    resp = staff_client.post(f"/staff/agreements/{a.id}/invalidate", data={"note": "  "})
    assert resp.status_code == 422 and "Say why the agreement is invalid." in resp.get_data(as_text=True)
    assert _reload(db, a).state == AgreementState.DRAFT
    resp = staff_client.post(f"/staff/agreements/{a.id}/invalidate", data={"note": "Wrong customer"})
    assert resp.status_code == 302
    a = _reload(db, a)
    assert a.state == AgreementState.INVALID and a.invalid_note == "Wrong customer"
    [entry] = _audit(db, "agreement", a.id, "agreement.invalidated")
    assert entry.changes["note"] == "Wrong customer" and entry.actor_type.value == "operator"
    resp = staff_client.post(f"/staff/agreements/{a.id}/invalidate", data={"note": "again"})
    assert resp.status_code == 422 and "already invalid" in resp.get_data(as_text=True)
    resp = staff_client.post(f"/staff/agreements/{a.id}/accept", data={})
    assert resp.status_code == 422 and "only an issued agreement can be accepted" in resp.get_data(as_text=True)


def test_detail_shows_annexes_and_parent(staff_client, db):
    t, annex_type = make_type(db), make_type(db, "AN", is_annex=True)
    customer = CustomerFactory()
    parent = draft(db, t, customer)
    rules.issue_agreement(db, parent, actor=SYSTEM)
    annex = rules.create_agreement(db, annex_type, customer, [], actor=SYSTEM, parent=parent, summary="Faster line")
    db.commit()
    text = staff_client.get(f"/staff/agreements/{parent.id}").get_data(as_text=True)
    assert f"/staff/agreements/{annex.id}" in text and "Faster line" in text
    text = staff_client.get(f"/staff/agreements/{annex.id}").get_data(as_text=True)
    assert f"/staff/agreements/{parent.id}" in text and "Amends" in text


# -- agreement types -----------------------------------------------------------------------------


def test_types_list_and_edit(staff_client, db):
    t = make_type(db, remind_days=7)
    db.commit()
    text = staff_client.get("/staff/agreements/types").get_data(as_text=True)
    assert "Type SA" in text and "standard.html" in text and "{year}/{seq:05d}" in text
    assert staff_client.get("/staff/agreements/types?format=csv").mimetype == "text/csv"
    form = staff_client.get(f"/staff/agreements/types/{t.id}").get_data(as_text=True)
    assert "annex.html" in form and 'value="Type SA"' in form
    resp = staff_client.post(f"/staff/agreements/types/{t.id}", data={
        "name": "Internet agreement", "template": "annex.html", "number_format": "SA-{year}-{seq:04d}",
        "remind_days": "10", "block_days": "30", "requires_confirmation": "y"})
    assert resp.status_code == 302
    db.expire_all()
    t = db.get(AgreementType, t.id)
    assert (t.name, t.template, t.number_format, t.remind_days, t.block_days) == \
        ("Internet agreement", "annex.html", "SA-{year}-{seq:04d}", 10, 30)
    [entry] = _audit(db, "agreement_type", t.id, "agreement_type.updated")
    assert entry.changes["remind_days"] == [7, 10] and entry.changes["name"] == ["Type SA", "Internet agreement"]


@pytest.mark.parametrize("change, message", [
    ({"name": ""}, "Give the type a name."),
    ({"name": "Type TV"}, "Another agreement type is called"),
    ({"template": "../../base.html"}, "There is no agreement template"),
    ({"number_format": "{year}/{bogus}"}, "which is not available"),
    ({"number_format": "{year}/{seq:05d"}, "Malformed number format"),
    ({"number_format": "{year}"}, "must contain {seq}"),
    ({"remind_days": "0"}, "Between 1 and 3650 days."),
    ({"remind_days": "ten"}, "Not a valid integer value."),
    ({"remind_days": "20", "block_days": "10"}, "Blocking comes after the reminder"),
])
def test_type_bad_input_is_422(staff_client, db, change, message):
    t = make_type(db)
    make_type(db, "TV")
    db.commit()
    data = {"name": "Type SA", "template": "standard.html", "number_format": "{year}/{seq:05d}", **change}
    resp = staff_client.post(f"/staff/agreements/types/{t.id}", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(AgreementType, t.id).number_format == "{year}/{seq:05d}"
    assert db.scalar(select(func.count()).select_from(AuditEntry)
                     .where(AuditEntry.action == "agreement_type.updated")) == 0


def test_unknown_ids_are_404(staff_client):
    assert staff_client.get("/staff/agreements/999999").status_code == 404
    assert staff_client.get("/staff/agreements/types/999999").status_code == 404
    assert staff_client.get("/staff/customers/999999/agreements/new").status_code == 404
