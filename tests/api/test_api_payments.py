"""/api/v1/payments: the staff list's filters, the unmatched queue, a payment with its pairing,
and recording money from a bank or gateway — paired at once like a statement line, a bank
reference already recorded refused like the import skips it, retries safe with an
Idempotency-Key; rights and location scope as on the staff pages."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.domain.payments import record_payment
from portal.models import AuditEntry, Payment, PaymentSource, PaymentState, ServiceState
from tests.api.conftest import problem_fields
from tests.domain.payments_fixtures import SYSTEM, make_invoice
from tests.domain.test_settlement import blocked_customer
from tests.factories import CustomerFactory, LocationFactory


def _record(db, customer=None, amount="100.00", **kw):
    payment = record_payment(db, amount=amount, currency="CZK", received_on=kw.pop("received_on", date(2025, 1, 10)),
                             actor=SYSTEM, customer=customer, **kw)
    db.commit()
    return payment


def _body(**extra):
    return {"amount": "1210.00", "currency": "CZK", "received_on": "2025-01-20", "variable_symbol": "777000111",
            "counterparty_account": "19-2000145399/0800", "counterparty_name": "Eva Svobodová",
            "bank_reference": "TX-1", "message": "Faktura", **extra}


def test_list_filters_and_unmatched(db, api):
    customer = CustomerFactory()
    matched = _record(db, customer, variable_symbol=customer.variable_symbol, received_on=date(2025, 2, 1))
    lost = _record(db, None, variable_symbol="999", message="who am I", received_on=date(2025, 1, 1))
    cash = _record(db, customer, source=PaymentSource.CASH)

    def ids(url):
        response = api.get(url)
        assert response.status_code == 200, response.get_json()
        return [p["id"] for p in response.get_json()["data"]]

    assert ids("/api/v1/payments") == [matched.id, lost.id, cash.id]
    assert ids("/api/v1/payments/unmatched") == [lost.id]
    assert ids("/api/v1/payments?state=unmatched") == [lost.id]
    assert ids("/api/v1/payments?source=cash") == [cash.id]
    assert ids("/api/v1/payments?q=who") == [lost.id]
    assert ids(f"/api/v1/payments?q={customer.customer_number}") == [matched.id, cash.id]
    assert ids(f"/api/v1/payments?customer_id={customer.id}") == [matched.id, cash.id]
    assert ids("/api/v1/payments?received_from=2025-01-05&received_to=2025-01-31") == [cash.id]
    page = api.get("/api/v1/payments?limit=2").get_json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    assert ids(f"/api/v1/payments?limit=2&cursor={page['next_cursor']}") == [cash.id]


def test_bad_filters_are_422(api):
    for query, field in (("state=lost", "state"), ("received_from=soon", "received_from"), ("limit=0", "limit")):
        response = api.get(f"/api/v1/payments?{query}")
        assert response.status_code == 422 and problem_fields(response) == {field}


def test_get_shows_the_pairing(db, api):
    customer = CustomerFactory()
    invoice = make_invoice(customer, "300")
    db.commit()
    payment = _record(db, None, amount="500", variable_symbol=invoice.variable_symbol)
    body = api.get(f"/api/v1/payments/{payment.id}").get_json()
    assert body["state"] == "overpaid" and body["customer_id"] == customer.id and body["unallocated"] == "200.00"
    assert [(a["invoice_id"], a["invoice_number"], a["amount"]) for a in body["allocations"]] == \
        [(invoice.id, invoice.number, "300.00")]


def test_scope_other_location_is_404_and_unidentified_is_everyones(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    mine, theirs = _record(db, CustomerFactory(location=here)), _record(db, CustomerFactory(location=there))
    nobodys = _record(db, None, variable_symbol="424242")
    api = make_api(make_token(operator, locations=[here]))
    assert api.get(f"/api/v1/payments/{mine.id}").status_code == 200
    assert api.get(f"/api/v1/payments/{nobodys.id}").status_code == 200
    assert api.get(f"/api/v1/payments/{theirs.id}").status_code == 404
    assert api.get("/api/v1/payments/999999").status_code == 404
    assert [p["id"] for p in api.get("/api/v1/payments").get_json()["data"]] == [mine.id, nobodys.id]
    # Recording pairs with any customer (like the statement import): all locations only.
    assert api.post("/api/v1/payments", json=_body()).status_code == 403
    assert db.query(Payment).count() == 3


def test_without_the_right_403(db, operator, make_token, make_api):
    payment = _record(db)
    api = make_api(make_token(operator, rights=["customers.read", "billing.run"]))
    for url in ("/api/v1/payments", "/api/v1/payments/unmatched", f"/api/v1/payments/{payment.id}"):
        assert api.get(url).status_code == 403
    assert api.post("/api/v1/payments", json=_body()).status_code == 403


def test_create_pairs_like_a_statement_line(db, api):
    customer = CustomerFactory()
    invoice = make_invoice(customer, "1210", variable_symbol="777000111")
    db.commit()
    response = api.post("/api/v1/payments", json=_body(variable_symbol="0777000111"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/payments/{body['id']}"
    assert body["state"] == "matched" and body["customer_id"] == customer.id and body["source"] == "bank_import"
    assert body["amount"] == "1210.00" and body["unallocated"] == "0.00"
    assert body["counterparty_account"] == "19-2000145399/0800" and body["bank_reference"] == "TX-1"
    assert [a["invoice_id"] for a in body["allocations"]] == [invoice.id]
    db.expire_all()
    assert db.get(type(invoice), invoice.id).paid_amount == invoice.gross_total
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "payment.recorded"))
    assert entry.entity_id == body["id"] and entry.via.startswith("API token")


def test_received_at_counts_by_its_local_day(db, api):
    body = {k: v for k, v in _body().items() if k != "received_on"}
    response = api.post("/api/v1/payments", json={**body, "received_at": "2025-01-31T23:30:00+00:00"})
    assert response.status_code == 201 and response.get_json()["received_on"] == "2025-02-01"  # Prague


def test_create_unidentified_waits_for_staff(db, api):
    response = api.post("/api/v1/payments", json=_body(variable_symbol="123", source="card", bank_reference="GW-9"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["state"] == "unmatched" and body["customer_id"] is None and body["source"] == "card"
    assert [p["id"] for p in api.get("/api/v1/payments/unmatched").get_json()["data"]] == [body["id"]]


def test_a_bank_reference_already_recorded_is_refused(db, api):
    assert api.post("/api/v1/payments", json=_body()).status_code == 201
    again = api.post("/api/v1/payments", json=_body(amount="5"))
    assert again.status_code == 422 and problem_fields(again) == {"bank_reference"}
    # The same reference from another source is another transaction.
    assert api.post("/api/v1/payments", json=_body(source="card")).status_code == 201
    assert db.query(Payment).count() == 2


def test_create_refusals_name_the_field(db, api):
    for body, field in ((_body(amount="0"), "amount"), (_body(amount="1.005"), "amount"), (_body(amount="abc"), "amount"),
                        (_body(currency="USD"), "currency"), (_body(received_on="today"), "received_on"),
                        (_body(received_at="2025-01-01T10:00:00"), "received_at"),
                        (_body(variable_symbol="12ab"), "variable_symbol"), (_body(source="manual"), "source"),
                        (_body(constant_symbol="12345"), "constant_symbol"), (_body(colour="red"), "colour"),
                        ({"amount": "5", "currency": "CZK"}, "received_on")):
        response = api.post("/api/v1/payments", json=body)
        assert response.status_code == 422, body
        assert field in problem_fields(response), (body, response.get_json())
    assert db.query(Payment).count() == 0


def test_idempotency_key_replays(db, api):
    headers = {"Idempotency-Key": "bank-TX-1"}
    first = api.post("/api/v1/payments", json=_body(), headers=headers)
    again = api.post("/api/v1/payments", json=_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert db.query(Payment).count() == 1
    assert db.scalar(select(Payment.state)) == PaymentState.UNMATCHED


def test_list_costs_bounded_statements(db, api, count_queries):
    customer = CustomerFactory()
    for n in range(12):
        make_invoice(customer, "10")
        db.commit()
        _record(db, customer, amount="10", bank_reference=f"R{n}")
    api.get("/api/v1/payments?limit=2")
    with count_queries() as small:
        api.get("/api/v1/payments?limit=2")
    with count_queries() as large:
        api.get("/api/v1/payments?limit=12")
    assert large.count == small.count


def test_a_payment_that_settles_a_blocked_debt_unblocks_at_once(db, api, outbox):
    """The API is one more way of paying: the settlement hook unblocks as the request commits,
    and the audit trail names the token."""
    customer, svc, inv, _email = blocked_customer(db)
    response = api.post("/api/v1/payments", json=_body(amount=str(inv.gross_total),
                                                       variable_symbol=inv.variable_symbol,
                                                       received_on=date.today().isoformat()))
    assert response.status_code == 201 and response.get_json()["state"] == "matched"
    db.expire_all()
    assert db.get(type(svc), svc.id).state == ServiceState.ACTIVE
    closed = db.scalar(select(AuditEntry).where(AuditEntry.action == "dunning.case_closed"))
    assert closed.via.startswith("API token ")
