"""/api/v1/invoices and /api/v1/credit-notes: the staff list's filters and cursor pages, an
invoice with its lines, the stored PDF and its embedded Factur-X XML, issuing a credit note
and cancelling through the billing rules (the staff refusals, audited via the token), rights
and location scope."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.documents import embedded_xml
from portal.models import AuditEntry, Invoice, InvoiceState, InvoiceType, StoredDocument
from tests.api.conftest import problem_fields
from tests.domain.payments_fixtures import make_credit_note, make_invoice
from tests.factories import CustomerFactory, LocationFactory


def _invoice(db, location=None, gross="1210.00", **kw):
    customer = CustomerFactory(location=location) if location else CustomerFactory()
    invoice = make_invoice(customer, gross, **kw)
    db.commit()
    return invoice


def test_list_pages_by_cursor_and_filters(db, api):
    made = [_invoice(db) for _ in range(5)]
    make_credit_note(made[0], "100")
    paid = made[1]
    paid.paid_amount = paid.gross_total
    db.commit()
    seen, cursor = [], None
    while True:
        body = api.get("/api/v1/invoices?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [i["id"] for i in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen)

    def ids(query):
        response = api.get(f"/api/v1/invoices?{query}")
        assert response.status_code == 200, response.get_json()
        return {i["id"] for i in response.get_json()["data"]}

    assert ids("type=credit_note") == {db.scalar(select(Invoice.id).where(Invoice.type == InvoiceType.CREDIT_NOTE))}
    assert ids("state=paid") == {paid.id}
    assert paid.id not in ids("state=unpaid") and made[2].id in ids("state=overdue")
    assert ids(f"number={made[3].number}") == {made[3].id}
    assert ids(f"customer={made[4].customer_number}") == {made[4].id}
    assert ids(f"customer_id={made[4].customer_id}") == {made[4].id}
    assert ids("issued_from=2030-01-01") == set()
    assert len(ids("issued_to=2030-01-01")) == 6


def test_bad_filters_are_422_with_the_field(api):
    for query, field in (("state=lost", "state"), ("period=2026-13", "period"), ("period=soon", "period"),
                         ("issued_from=yesterday", "issued_from"), ("type=bill", "type")):
        response = api.get(f"/api/v1/invoices?{query}")
        assert response.status_code == 422, query
        assert problem_fields(response) == {field}


def test_get_has_lines_and_vat_in_the_api_conventions(db, api):
    invoice = _invoice(db)
    body = api.get(f"/api/v1/invoices/{invoice.id}").get_json()
    assert body["number"] == invoice.number and body["gross_total"] == "1210.00"
    assert body["amount_due"] == "1210.00" and body["type"] == "invoice" and body["state"] == "issued"
    assert [line["gross"] for line in body["lines"]] == ["1210.00"]
    assert body["lines"][0]["unit_price"] == "1000.0000" and body["vat_breakdown"][0]["vat_rate"] == "21.00"


def test_unknown_and_other_location_invoices_are_404(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = _invoice(db, here), _invoice(db, there)
    api = make_api(make_token(operator, locations=[here]))
    assert api.get(f"/api/v1/invoices/{mine.id}").status_code == 200
    for url in (f"/api/v1/invoices/{theirs.id}", f"/api/v1/invoices/{theirs.id}/pdf", "/api/v1/invoices/999999",
                f"/api/v1/invoices/{theirs.id}/xml"):
        assert api.get(url).status_code == 404, url
    assert [i["id"] for i in api.get("/api/v1/invoices").get_json()["data"]] == [mine.id]
    response = api.post(f"/api/v1/invoices/{theirs.id}/credit-notes", json={"reason": "x"})
    assert response.status_code == 404


def test_without_the_right_403(db, operator, make_token, make_api):
    invoice = _invoice(db)
    api = make_api(make_token(operator, rights=["customers.read"]))
    for url in ("/api/v1/invoices", f"/api/v1/invoices/{invoice.id}", f"/api/v1/invoices/{invoice.id}/pdf",
                "/api/v1/credit-notes"):
        assert api.get(url).status_code == 403, url
    assert api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json={"reason": "x"}).status_code == 403


def test_pdf_is_the_stored_document_and_xml_the_one_it_embeds(db, api):
    invoice = _invoice(db)
    response = api.get(f"/api/v1/invoices/{invoice.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    doc = db.scalar(select(StoredDocument).where(StoredDocument.owner_type == "invoice",
                                                 StoredDocument.owner_id == invoice.id))
    assert response.headers["ETag"].strip('"') == doc.sha256
    again = api.get(f"/api/v1/invoices/{invoice.id}/pdf")
    assert again.data == response.data  # stored once, served again
    assert db.query(StoredDocument).count() == 1
    xml = api.get(f"/api/v1/invoices/{invoice.id}/xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert xml.data == embedded_xml(response.data) and b"CrossIndustryInvoice" in xml.data
    assert xml.headers["Content-Disposition"].endswith('.xml"')


def test_issue_a_credit_note(db, api):
    invoice = _invoice(db)
    response = api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json={"reason": "Outage"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["type"] == "credit_note" and body["corrects_id"] == invoice.id and body["gross_total"] == "-1210.00"
    assert response.headers["Location"] == f"/api/v1/credit-notes/{body['id']}"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "invoice.credit_note_issued"))
    assert entry.entity_id == body["id"] and entry.via.startswith("API token")
    assert api.get(f"/api/v1/credit-notes/{body['id']}").get_json()["lines"][0]["gross"] == "-1210.00"
    assert [n["id"] for n in api.get(f"/api/v1/credit-notes?corrects_id={invoice.id}").get_json()["data"]] == [body["id"]]
    assert api.get(f"/api/v1/credit-notes/{invoice.id}").status_code == 404  # an invoice is not a credit note
    assert api.get(f"/api/v1/credit-notes/{body['id']}/pdf").mimetype == "application/pdf"
    # Nothing is credited twice: the staff rule's refusal, as a 422.
    again = api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json={"reason": "Again"})
    assert again.status_code == 422 and problem_fields(again) == {None}
    assert db.query(Invoice).filter_by(type=InvoiceType.CREDIT_NOTE).count() == 1


def test_credit_note_refusals_name_the_field(db, api):
    invoice = _invoice(db)
    for body, field in (({}, "reason"), ({"reason": "x", "lines": [1]}, "lines"),
                        ({"reason": "x", "line_ids": ["a"]}, "line_ids.0"), ({"reason": "  "}, "reason"),
                        ({"reason": "x", "line_ids": [999999]}, "line_ids"), ({"reason": "x", "line_ids": []}, "line_ids")):
        response = api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, (body, response.get_json())
    assert db.query(Invoice).filter_by(type=InvoiceType.CREDIT_NOTE).count() == 0


def test_credit_note_idempotency_key_replays(db, api):
    invoice = _invoice(db)
    headers = {"Idempotency-Key": "credit-1"}
    first = api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json={"reason": "Outage"}, headers=headers)
    again = api.post(f"/api/v1/invoices/{invoice.id}/credit-notes", json={"reason": "Outage"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(Invoice).filter_by(type=InvoiceType.CREDIT_NOTE).count() == 1


def test_cancel(db, api):
    invoice = _invoice(db, issue_date=date.today(), due_date=date.today())
    assert problem_fields(api.post(f"/api/v1/invoices/{invoice.id}/cancel", json={"reason": ""})) == {"reason"}
    response = api.post(f"/api/v1/invoices/{invoice.id}/cancel", json={"reason": "Wrong customer"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "cancelled"
    db.expire_all()
    assert db.get(Invoice, invoice.id).state == InvoiceState.CANCELLED
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "invoice.cancelled"))
    assert entry.via.startswith("API token")


def test_list_costs_bounded_statements(db, api, count_queries):
    for _ in range(12):
        _invoice(db)
    api.get("/api/v1/invoices?limit=2")
    with count_queries() as small:
        api.get("/api/v1/invoices?limit=2")
    with count_queries() as large:
        api.get("/api/v1/invoices?limit=12")
    assert large.count == small.count
