"""/api/v1/agreements and /api/v1/agreement-types: the staff list's filters and cursor pages,
an agreement, its stored PDF, drafting, issuing, accepting and invalidating through the
agreement rules (audited via the token, the staff refusals as 422), rights and scope."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.domain import agreements as rules
from portal.domain.actors import Actor
from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    AuditEntry,
    ServiceState,
    StoredDocument,
)
from tests.api.conftest import problem_fields
from tests.factories import CustomerFactory, CustomerServiceFactory, LocationFactory

SYSTEM = Actor.system("test")


def make_type(db, code="SA", *, is_annex=False) -> AgreementType:
    t = AgreementType(name=f"Type {code}", code=code, number_format="{year}/{seq:05d}", is_annex=is_annex,
                      template="annex.html" if is_annex else "standard.html", valid_from=date(2020, 1, 1))
    db.add(t)
    db.flush()
    return t


def draft(db, atype, customer=None) -> Agreement:
    customer = customer or CustomerFactory()
    agreement = rules.create_agreement(db, atype, customer, [CustomerServiceFactory(customer=customer)], actor=SYSTEM)
    db.commit()
    return agreement


def test_list_filters_and_pages(db, api):
    sa, tv = make_type(db, "SA"), make_type(db, "TV")
    novak = CustomerFactory(last_name="Zelený", name_key="zeleny")
    a1, a2, a3 = draft(db, sa, novak), draft(db, tv), draft(db, sa)
    rules.invalidate_agreement(db, a2, actor=SYSTEM, note="typo")
    db.commit()

    def ids(query=""):
        response = api.get(f"/api/v1/agreements?{query}")
        assert response.status_code == 200, response.get_json()
        return [a["id"] for a in response.get_json()["data"]]

    assert ids() == [a1.id, a2.id, a3.id]
    assert ids("state=invalid") == [a2.id]
    assert ids(f"type_id={sa.id}") == [a1.id, a3.id]
    assert ids("q=zelen") == [a1.id]
    assert ids(f"customer_id={a3.customer_id}") == [a3.id]
    page = api.get("/api/v1/agreements?limit=2").get_json()
    assert ids(f"limit=2&cursor={page['next_cursor']}") == [a3.id]
    for query, field in (("state=gone", "state"), ("type_id=x", "type_id")):
        assert problem_fields(api.get(f"/api/v1/agreements?{query}")) == {field}


def test_get_and_types(db, api):
    sa = make_type(db)
    agreement = draft(db, sa)
    body = api.get(f"/api/v1/agreements/{agreement.id}").get_json()
    assert body["state"] == "draft" and body["number"] is None and body["type_name"] == "Type SA"
    assert body["service_ids"] == [s.id for s in agreement.customer_services]
    assert api.get("/api/v1/agreement-types").get_json()["data"][0]["code"] == "SA"
    assert api.get(f"/api/v1/agreement-types/{sa.id}").get_json()["number_format"] == "{year}/{seq:05d}"
    assert api.get("/api/v1/agreement-types/999999").status_code == 404
    assert api.get(f"/api/v1/agreements/{agreement.id}/pdf").status_code == 404  # a draft has no document


def test_scope_and_rights(db, operator, make_token, make_api):
    sa = make_type(db)
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = draft(db, sa, CustomerFactory(location=here)), draft(db, sa, CustomerFactory(location=there))
    api = make_api(make_token(operator, locations=[here]))
    assert [a["id"] for a in api.get("/api/v1/agreements").get_json()["data"]] == [mine.id]
    for url in (f"/api/v1/agreements/{theirs.id}", f"/api/v1/agreements/{theirs.id}/pdf", "/api/v1/agreements/999999"):
        assert api.get(url).status_code == 404
    assert api.post(f"/api/v1/agreements/{theirs.id}/issue").status_code == 404
    service = CustomerServiceFactory(customer=theirs.customer)
    db.commit()
    response = api.post("/api/v1/agreements", json={"customer_id": theirs.customer_id, "type_id": sa.id,
                                                     "service_ids": [service.id]})
    assert response.status_code == 404  # another location's customer, as if it did not exist
    reader = make_api(make_token(operator, rights=["customers.read"]))
    for url in ("/api/v1/agreements", f"/api/v1/agreements/{mine.id}", "/api/v1/agreement-types"):
        assert reader.get(url).status_code == 403
    assert reader.post(f"/api/v1/agreements/{mine.id}/issue").status_code == 403


def test_draft_issue_download_accept(db, api):
    sa = make_type(db)
    customer = CustomerFactory()
    service = CustomerServiceFactory(customer=customer)
    db.commit()
    response = api.post("/api/v1/agreements", json={"customer_id": customer.id, "type_id": sa.id,
                                                    "service_ids": [service.id], "summary": "Internet"})
    assert response.status_code == 201, response.get_json()
    agreement_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/api/v1/agreements/{agreement_id}"
    issued = api.post(f"/api/v1/agreements/{agreement_id}/issue")
    assert issued.status_code == 200, issued.get_json()
    body = issued.get_json()
    assert body["state"] == "issued" and body["number"] == f"{date.today().year}/00001"
    pdf = api.get(f"/api/v1/agreements/{agreement_id}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    doc = db.get(StoredDocument, body["current_document_id"])
    assert pdf.headers["ETag"].strip('"') == doc.sha256
    assert api.get(f"/api/v1/agreements/{agreement_id}/pdf?version=1").data == pdf.data
    assert api.get(f"/api/v1/agreements/{agreement_id}/pdf?version=7").status_code == 404
    again = api.post(f"/api/v1/agreements/{agreement_id}/issue")
    assert again.status_code == 422 and problem_fields(again) == {None}
    accepted = api.post(f"/api/v1/agreements/{agreement_id}/accept", json={"note": "signed copy in the file"})
    assert accepted.status_code == 200 and accepted.get_json()["state"] == "accepted"
    actions = {e.action: e.via for e in db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "agreement"))}
    assert {"agreement.created", "agreement.issued"} <= set(actions)
    assert all(via.startswith("API token") for action, via in actions.items() if action.startswith("agreement."))


def test_create_refusals_name_the_field(db, api):
    sa, annex = make_type(db), make_type(db, "AN", is_annex=True)
    customer, other = CustomerFactory(), CustomerFactory()
    service = CustomerServiceFactory(customer=customer)
    cancelled = CustomerServiceFactory(customer=customer, state=ServiceState.CANCELLED)
    foreign = CustomerServiceFactory(customer=other)
    db.commit()
    base = {"customer_id": customer.id, "type_id": sa.id, "service_ids": [service.id]}
    for body, field in (({**base, "type_id": 999999}, "type_id"), ({**base, "service_ids": []}, "service_ids"),
                        ({**base, "service_ids": [foreign.id]}, "service_ids"),
                        ({**base, "service_ids": [cancelled.id]}, "service_ids"),
                        ({**base, "type_id": annex.id}, "parent"), ({**base, "parent_id": 999999}, "parent_id"),
                        ({**base, "valid_from": "soon"}, "valid_from"), ({**base, "colour": 1}, "colour"),
                        ({"type_id": sa.id, "service_ids": [service.id]}, "customer_id")):
        response = api.post("/api/v1/agreements", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, (body, response.get_json())
    assert db.query(Agreement).count() == 0


def test_invalidate_needs_a_note(db, api):
    agreement = draft(db, make_type(db))
    assert problem_fields(api.post(f"/api/v1/agreements/{agreement.id}/invalidate", json={})) == {"note"}
    assert problem_fields(api.post(f"/api/v1/agreements/{agreement.id}/invalidate", json={"note": " "})) == {"note"}
    response = api.post(f"/api/v1/agreements/{agreement.id}/invalidate", json={"note": "typo"})
    assert response.status_code == 200 and response.get_json()["state"] == "invalid"
    db.expire_all()
    assert db.get(Agreement, agreement.id).state == AgreementState.INVALID


def test_idempotency_key_replays_the_draft(db, api):
    sa = make_type(db)
    customer = CustomerFactory()
    service = CustomerServiceFactory(customer=customer)
    db.commit()
    body = {"customer_id": customer.id, "type_id": sa.id, "service_ids": [service.id]}
    first = api.post("/api/v1/agreements", json=body, headers={"Idempotency-Key": "draft-1"})
    again = api.post("/api/v1/agreements", json=body, headers={"Idempotency-Key": "draft-1"})
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(Agreement).count() == 1


def test_list_costs_bounded_statements(db, api, count_queries):
    sa = make_type(db)
    for _ in range(10):
        draft(db, sa)
    api.get("/api/v1/agreements?limit=2")
    with count_queries() as small:
        api.get("/api/v1/agreements?limit=2")
    with count_queries() as large:
        api.get("/api/v1/agreements?limit=10")
    assert large.count == small.count
