"""Staff payments: list and queue (filters, CSV, scoping, query counts), statement upload
(summary, bad files: type, size, encoding, a bad line — nothing half-imported), suggestions,
manual pairing and unpairing, manual entry; all audited."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.payments import record_payment
from portal.models import (
    ActorType,
    AuditEntry,
    Invoice,
    Job,
    JobState,
    Payment,
    PaymentAllocation,
    PaymentState,
    StatementImport,
)
from tests.domain.payments_fixtures import SYSTEM, make_invoice, read
from tests.factories import CustomerFactory, LocationFactory


def audits(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


@pytest.fixture
def world(db):
    a, b = LocationFactory(), LocationFactory()
    ca = CustomerFactory(location=a, customer_number="CA-000001", variable_symbol="7100001")
    cb = CustomerFactory(location=b, customer_number="CB-000002", variable_symbol="7200001")
    inv_a = make_invoice(ca, "605.00", number="2025000101", variable_symbol="2025000101")
    inv_b = make_invoice(cb, "300.00", number="2025000201", variable_symbol="2025000201")
    unmatched = record_payment(db, amount=Decimal("605.00"), currency="CZK", received_on=date(2025, 3, 4),
                               actor=SYSTEM, variable_symbol="2025000110", message="typo")
    paid_b = record_payment(db, amount=Decimal("300.00"), currency="CZK", received_on=date(2025, 3, 5),
                            actor=SYSTEM, variable_symbol="2025000201")
    db.commit()
    return {"a": a, "b": b, "ca": ca, "cb": cb, "inv_a": inv_a, "inv_b": inv_b, "unmatched": unmatched,
            "paid_b": paid_b}


def test_payment_list_filters_and_csv(staff_client, world):
    html = staff_client.get("/staff/payments").get_data(as_text=True)
    assert f"#{world['unmatched'].id}<" in html and f"#{world['paid_b'].id}<" in html
    html = staff_client.get("/staff/payments?state=matched").get_data(as_text=True)
    assert f"#{world['paid_b'].id}<" in html and f"#{world['unmatched'].id}<" not in html
    html = staff_client.get("/staff/payments?q=CB-000002").get_data(as_text=True)
    assert f"#{world['paid_b'].id}<" in html and f"#{world['unmatched'].id}<" not in html
    html = staff_client.get("/staff/payments?received_from=2025-03-05").get_data(as_text=True)
    assert f"#{world['unmatched'].id}<" not in html
    frag = staff_client.htmx("GET", "/staff/payments?state=unmatched").get_data(as_text=True)
    assert "<html" not in frag and f"#{world['unmatched'].id}<" in frag
    csv = staff_client.get("/staff/payments?format=csv&state=unmatched")
    assert csv.mimetype == "text/csv" and "2025000110" in csv.get_data(as_text=True)
    assert "2025000201" not in csv.get_data(as_text=True)
    for qs in ("state=bogus", "received_from=notadate", "page=-3", "q=%00"):
        assert staff_client.get(f"/staff/payments?{qs}").status_code == 200


def test_unmatched_queue(staff_client, world):
    html = staff_client.get("/staff/payments/unmatched").get_data(as_text=True)
    assert f"#{world['unmatched'].id}<" in html and f"#{world['paid_b'].id}<" not in html
    csv = staff_client.get("/staff/payments/unmatched?format=csv").get_data(as_text=True)
    assert "2025000110" in csv


def test_location_scoping(operator_client, world, db):
    client = operator_client(rights=("payments.write",), locations=[world["a"]])
    html = client.get("/staff/payments").get_data(as_text=True)
    # The unidentified payment is nobody's yet: the queue shows it; B's payment stays hidden.
    assert f"#{world['unmatched'].id}<" in html and f"#{world['paid_b'].id}<" not in html
    assert "2025000201" not in client.get("/staff/payments?format=csv").get_data(as_text=True)
    theirs = world["paid_b"].id
    assert client.get(f"/staff/payments/{theirs}").status_code == 404
    assert client.post(f"/staff/payments/{theirs}/unpair", data={}).status_code == 404
    # Suggestions never offer B's invoice; pairing with it or assigning to B's customer is refused.
    detail = client.get(f"/staff/payments/{world['unmatched'].id}").get_data(as_text=True)
    assert "2025000201" not in detail
    resp = client.post(f"/staff/payments/{world['unmatched'].id}/allocate",
                       data={"invoice": "2025000201", "amount": "100"})
    assert resp.status_code == 422 and "No invoice has the number" in resp.get_data(as_text=True)
    resp = client.post(f"/staff/payments/{world['unmatched'].id}/assign", data={"customer": "CB-000002"})
    assert resp.status_code == 422
    assert client.get("/staff/payments/import").status_code == 403
    resp = client.post("/staff/payments/new", data={"amount": "10", "currency": "CZK", "received_on": "2025-03-01",
                                                    "source": "cash", "variable_symbol": "2025000201"})
    assert resp.status_code == 422 and "Name the customer" in resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Payment, world["unmatched"].id).state == PaymentState.UNMATCHED


def test_list_query_count_is_bounded(staff_client, db, count_queries):
    customer = CustomerFactory()
    for i in range(2):
        record_payment(db, amount=Decimal("10.00"), currency="CZK", received_on=date(2025, 1, 1), actor=SYSTEM,
                       customer=customer, variable_symbol=str(9100 + i))
    db.commit()
    staff_client.get("/staff/payments")
    with count_queries() as q2:
        staff_client.get("/staff/payments")
    for i in range(18):
        record_payment(db, amount=Decimal("10.00"), currency="CZK", received_on=date(2025, 1, 1), actor=SYSTEM,
                       customer=CustomerFactory(), variable_symbol=str(9200 + i))
    db.commit()
    with count_queries() as q20:
        staff_client.get("/staff/payments")
    assert q2.count == q20.count


def test_detail_suggests_and_pairs_manually(staff_client, world, db):
    pid = world["unmatched"].id
    html = staff_client.get(f"/staff/payments/{pid}").get_data(as_text=True)
    assert "2025000101" in html and "same amount" in html and "similar VS" in html
    resp = staff_client.post(f"/staff/payments/{pid}/allocate", data={"invoice": "2025000101", "amount": "605.00"})
    assert resp.status_code == 302
    db.expire_all()
    payment, invoice = db.get(Payment, pid), db.get(Invoice, world["inv_a"].id)
    assert payment.state == PaymentState.MATCHED and payment.customer_id == world["ca"].id
    assert invoice.paid_amount == Decimal("605.00")
    assert audits(db, "payment.allocated")
    # Unpair: the money goes back, the invoice is unpaid again.
    alloc = db.scalar(select(PaymentAllocation).where(PaymentAllocation.payment_id == pid))
    resp = staff_client.post(f"/staff/payments/{pid}/unpair", data={"allocation": str(alloc.id)})
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(Invoice, world["inv_a"].id).paid_amount == 0
    assert db.get(Payment, pid).unallocated == Decimal("605.00")
    assert audits(db, "payment.unpaired")


def test_pairing_bad_input_is_422_and_keeps_the_invariants(staff_client, world, db):
    pid = world["unmatched"].id
    for data, message in (({"invoice": "2025000101", "amount": "700"}, "unallocated"),
                          ({"invoice": "2025000101", "amount": "abc"}, "is not an amount"),
                          ({"invoice": "2025000101", "amount": "-5"}, "greater than zero"),
                          ({"invoice": "nope", "amount": "5"}, "No invoice has the number"),
                          ({"invoice": "", "amount": ""}, "This field is required")):
        resp = staff_client.post(f"/staff/payments/{pid}/allocate", data=data)
        assert resp.status_code == 422, data
        assert message in resp.get_data(as_text=True), data
    assert staff_client.post(f"/staff/payments/{pid}/unpair", data={}).status_code == 422
    assert staff_client.post(f"/staff/payments/{pid}/unpair", data={"allocation": "x"}).status_code == 422
    assert count(db, PaymentAllocation) == 1  # only B's automatic one
    db.expire_all()
    assert db.get(Invoice, world["inv_a"].id).paid_amount == 0


def test_assign_to_customer_pairs_their_open_invoices(staff_client, world, db):
    pid = world["unmatched"].id
    resp = staff_client.post(f"/staff/payments/{pid}/assign", data={"customer": "CA-000001"})
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(Invoice, world["inv_a"].id).paid_amount == Decimal("605.00")
    assert audits(db, "payment.customer_assigned")
    resp = staff_client.post(f"/staff/payments/{pid}/assign", data={"customer": "ZZZ"})
    assert resp.status_code == 422 and "No customer has the number" in resp.get_data(as_text=True)


def test_manual_entry(staff_client, world, db):
    assert staff_client.get("/staff/payments/new").status_code == 200
    resp = staff_client.post("/staff/payments/new", data={
        "amount": "605,00", "currency": "CZK", "received_on": "2025-03-10", "source": "cash",
        "customer": "CA-000001", "variable_symbol": "", "message": "At the counter"})
    assert resp.status_code == 302
    payment = db.scalar(select(Payment).where(Payment.message == "At the counter"))
    assert payment.customer_id == world["ca"].id and payment.state == PaymentState.MATCHED
    assert audits(db, "payment.recorded")


@pytest.mark.parametrize("data, message", [
    ({"amount": "0", "currency": "CZK", "received_on": "2025-03-10", "source": "cash"}, "greater than zero"),
    ({"amount": "1.234", "currency": "CZK", "received_on": "2025-03-10", "source": "cash"}, "two decimals"),
    ({"amount": "10", "currency": "USD", "received_on": "2025-03-10", "source": "cash"}, "Not a valid choice"),
    ({"amount": "10", "currency": "CZK", "received_on": "", "source": "cash"}, "This field is required"),
    ({"amount": "10", "currency": "CZK", "received_on": "2025-03-10", "source": "cash", "variable_symbol": "12ab"},
     "digits"),
    ({"amount": "10", "currency": "CZK", "received_on": "2025-03-10", "source": "cash", "customer": "nobody"},
     "No customer has the number"),
])
def test_manual_entry_bad_input(staff_client, world, db, data, message):
    before = count(db, Payment)
    resp = staff_client.post("/staff/payments/new", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert count(db, Payment) == before


def upload(client, name, data: bytes):
    return client.post("/staff/payments/import", data={"statement": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_statement_upload_summary_and_reimport(staff_client, world, db):
    assert staff_client.get("/staff/payments/import").status_code == 200
    resp = upload(staff_client, "payments.csv", read("payments.csv"))
    assert resp.status_code == 302 and "/staff/payments/import/jobs/" in resp.headers["Location"]
    imp = db.scalar(select(StatementImport))
    # The import ran as a job (inline here: the test queue is immediate); its page, once the
    # job is done, leads to the import's summary.
    job_page = staff_client.get(resp.headers["Location"])
    assert job_page.status_code == 302 and job_page.headers["Location"].endswith(f"/staff/payments/imports/{imp.id}")
    poll = staff_client.htmx("GET", resp.headers["Location"])
    assert poll.status_code == 204 and poll.headers["HX-Redirect"] == job_page.headers["Location"]
    html = staff_client.get(job_page.headers["Location"]).get_data(as_text=True)
    assert f'data-figure="imported">{imp.payments_count}<' in html
    assert f'data-figure="paired">{imp.matched_count}<' in html
    assert f'data-figure="unmatched">{imp.unmatched_count}<' in html
    assert imp.matched_count >= 1  # 2025000101 pays A's invoice
    assert audits(db, "statement.imported")
    again = upload(staff_client, "payments.csv", read("payments.csv"))
    assert again.status_code == 422 and "already imported" in again.get_data(as_text=True)


@pytest.mark.parametrize("name, data, message", [
    ("payments_bad_amount_line3.csv", read("payments_bad_amount_line3.csv"), "line 3"),
    ("statement.pdf", b"%PDF-1.4 not a statement", "not a bank statement the portal reads"),
    ("utf16.csv", "date;amount;currency\n04.03.2025;5,00;CZK\n".encode("utf-16"), "not a text statement"),
    ("empty.csv", b"   \n", "empty"),
    ("camt052.xml", read("camt052_not_a_statement.xml"), "CAMT.053"),
    ("other.gpc", read("abo_portal.gpc").replace(b"0740000192000145399", b"0740000190000000042"),
     "not one of the portal&#39;s accounts"),
    ("bad.gpc", read("abo_portal.gpc").replace(b"00000006050022025000101", b"00000006050032025000101"),
     "line 2 (accounting code)"),
])
def test_bad_statements_import_nothing(staff_client, world, db, name, data, message):
    before = count(db, Payment)
    resp = upload(staff_client, name, data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert count(db, Payment) == before and count(db, StatementImport) == 0


def _import_job(db, state, **fields):
    job = Job(kind="statement_import", state=state, params={"file_name": "march.csv", "upload": "x.csv"},
              created_by_type=ActorType.SYSTEM, **fields)
    db.add(job)
    db.commit()
    return job


def test_import_job_page_while_waiting_running_and_failed(staff_client, world, db):
    queued = _import_job(db, JobState.QUEUED)
    html = staff_client.get(f"/staff/payments/import/jobs/{queued.id}").get_data(as_text=True)
    assert "Importing march.csv" in html and "Waiting for the background worker" in html
    assert 'hx-trigger="every 1s"' in html  # polls until it is finished
    running = _import_job(db, JobState.RUNNING, progress_done=50, progress_total=200)
    html = staff_client.htmx("GET", f"/staff/payments/import/jobs/{running.id}").get_data(as_text=True)
    assert '<progress max="200" value="50">' in html and "<html" not in html
    failed = _import_job(db, JobState.FAILED, error="The file was imported concurrently by someone else.")
    html = staff_client.get(f"/staff/payments/import/jobs/{failed.id}").get_data(as_text=True)
    assert "imported concurrently" in html and "Nothing of this file was imported." in html
    assert 'hx-trigger="every 1s"' not in html
    other = Job(kind="dunning_run", state=JobState.DONE, params={}, created_by_type=ActorType.SYSTEM)
    db.add(other)
    db.commit()
    assert staff_client.get(f"/staff/payments/import/jobs/{other.id}").status_code == 404
    assert staff_client.get("/staff/payments/import/jobs/99999").status_code == 404


def test_import_jobs_are_not_for_operators_limited_to_locations(operator_client, world, db):
    job = _import_job(db, JobState.QUEUED)
    client = operator_client(rights=("payments.write",), locations=[world["a"]])
    assert client.get(f"/staff/payments/import/jobs/{job.id}").status_code == 403


def test_too_large_statement(staff_client, world, db, monkeypatch):
    import portal.staff.payments as views

    monkeypatch.setattr(views, "MAX_FILE_SIZE", 100)
    resp = upload(staff_client, "big.csv", read("payments.csv") * 5)
    assert resp.status_code == 422 and "larger than" in resp.get_data(as_text=True)
    assert count(db, StatementImport) == 0


def test_missing_file_is_422(staff_client, world):
    resp = staff_client.post("/staff/payments/import", data={}, content_type="multipart/form-data")
    assert resp.status_code == 422 and "Choose a file." in resp.get_data(as_text=True)


def test_payments_need_the_right(operator_client, world):
    client = operator_client(rights=("billing.run",))
    assert client.get("/staff/payments").status_code == 403
    assert client.post("/staff/payments/new", data={}).status_code == 403


def test_a_reversed_payment_shows_as_reversed(staff_client, world, db):
    """A Czech bank's credit, then its reversal the next day, uploaded by staff: the import's
    page lists the reversal and what became of it; the payment's page says it was reversed,
    when and by which statement, and offers no pairing; the list's state filter finds it."""
    upload(staff_client, "kb-0310.xml", read("camt053_kb_credit.xml"))
    payment = db.scalars(select(Payment).where(Payment.bank_reference == "KB250310C0001234")).one()
    assert payment.state == PaymentState.MATCHED
    upload(staff_client, "kb-0311.xml", read("camt053_kb_reversal.xml"))
    db.expire_all()
    imp = db.scalars(select(StatementImport).where(StatementImport.file_name == "kb-0311.xml")).one()
    assert payment.state == PaymentState.REVERSED and world["inv_a"].paid_amount == Decimal("0.00")

    html = staff_client.get(f"/staff/payments/imports/{imp.id}").get_data(as_text=True)
    assert 'id="reversals"' in html and 'data-outcome="reversed"' in html
    assert f'href="/staff/payments/{payment.id}"' in html and "KB250311R0000077" in html

    resp = staff_client.get(f"/staff/payments/{payment.id}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "badge-reversed" in html and ">Reversed<" in html
    assert 'id="reversal"' in html and "kb-0311.xml" in html and "KB250311R0000077" in html
    assert f'href="/staff/payments/imports/{imp.id}"' in html
    assert f"/staff/payments/{payment.id}/allocate" not in html

    html = staff_client.get("/staff/payments?state=reversed").get_data(as_text=True)
    assert f"#{payment.id}<" in html and f"#{world['paid_b'].id}<" not in html
    assert f"#{payment.id}<" not in staff_client.get("/staff/payments/unmatched").get_data(as_text=True)


@pytest.mark.parametrize("name, data, fmt", [
    ("Pohyby_2000145399.gpc", read("abo_portal.gpc"), "abo"),
    ("vypis.sta", read("mt940_portal.sta"), "mt940"),
    ("vypis.txt", read("fio_api.csv"), "fio_csv"),
])
def test_bank_formats_upload_whatever_their_name(staff_client, world, db, name, data, fmt):
    resp = upload(staff_client, name, data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    imp = db.scalar(select(StatementImport))
    assert imp.format.value == fmt and imp.payments_count >= 1
