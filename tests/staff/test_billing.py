"""Staff billing: preview → confirm → background run (immediate and queued), run history,
invoices (filters, CSV, scoping, query counts) and the invoice actions (credit note, cancel,
send, PDF), all audited."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import jobs
from portal.models import (
    AuditEntry,
    BillingRun,
    BillingRunState,
    Customer,
    Invoice,
    InvoiceState,
    InvoiceType,
    Job,
    JobState,
)
from tests.domain.billing_fixtures import World
from tests.domain.payments_fixtures import make_invoice
from tests.factories import ContactFactory, CustomerFactory, LocationFactory

PERIOD = "2026-10"


def audits(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


@pytest.fixture
def world(db):
    w = World()
    for _ in range(3):
        w.service()
    db.commit()
    return w


def test_billing_page_and_preview(staff_client, world, db):
    resp = staff_client.get("/staff/billing")
    assert resp.status_code == 200
    assert "Choose the period" in resp.get_data(as_text=True)
    resp = staff_client.get(f"/staff/billing?period={PERIOD}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-figure="invoices">3<' in html
    assert "Start the billing run for 2026-10" in html
    assert db.scalar(select(func.count()).select_from(Invoice)) == 0  # the preview writes nothing
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 0


def test_preview_pagination_htmx_renders_only_the_customer_table(staff_client, db):
    w = World()
    for _ in range(30):
        w.service()
    db.commit()
    resp = staff_client.htmx("GET", f"/staff/billing?period={PERIOD}&page=2")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "<html" not in html and "Page 2 of 2" in html


@pytest.mark.parametrize("period", ["2026-13", "nonsense", "2026/10", "\x00"])
def test_preview_bad_period_is_422(staff_client, world, period):
    resp = staff_client.get("/staff/billing", query_string={"period": period})
    assert resp.status_code == 422
    assert "month" in resp.get_data(as_text=True)


def test_run_from_preview_to_done_immediate_queue(staff_client, world, db):
    preview = staff_client.get(f"/staff/billing?period={PERIOD}").get_data(as_text=True)
    resp = staff_client.post("/staff/billing/runs", data={"period": PERIOD, "issue_date": "2026-11-01"})
    assert resp.status_code == 302
    run = db.scalar(select(BillingRun))
    assert resp.headers["Location"].endswith(f"/staff/billing/runs/{run.id}")
    assert run.state == BillingRunState.DONE and run.job_id is not None
    assert run.issue_date == date(2026, 11, 1)
    assert db.get(Job, run.job_id).state == JobState.DONE
    page = staff_client.get(f"/staff/billing/runs/{run.id}").get_data(as_text=True)
    assert 'data-state="done"' in page and "every 1s" not in page
    # Preview figures == run figures.
    for figure in ('data-figure="invoices">3<', 'data-figure="customers">3<'):
        assert figure in preview and figure in page
    gross = preview.split('data-figure="gross">')[1].split("<")[0]
    assert gross in page
    assert run.invoices_count == 3 and db.scalar(select(func.count()).select_from(Invoice)) == 3
    assert audits(db, "billing.run_requested") and audits(db, "billing.run")
    # The history lists it; CSV too.
    assert f"/staff/billing/runs/{run.id}" in staff_client.get("/staff/billing/runs").get_data(as_text=True)
    csv = staff_client.get("/staff/billing/runs?format=csv")
    assert csv.mimetype == "text/csv" and "2026-10" in csv.get_data(as_text=True)


def test_run_queued_page_polls_until_the_worker_is_done(staff_client, world, db, app, monkeypatch):
    queue = jobs.JobQueue(app, "memory://")
    queue.huey.immediate = False
    monkeypatch.setitem(app.extensions, "jobs", queue)
    resp = staff_client.post("/staff/billing/runs", data={"period": PERIOD})
    run = db.scalar(select(BillingRun))
    assert resp.status_code == 302 and run.state == BillingRunState.PREVIEWED
    html = staff_client.get(f"/staff/billing/runs/{run.id}").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in html and 'data-state="queued"' in html and "Refresh" in html
    fragment = staff_client.htmx("GET", f"/staff/billing/runs/{run.id}").get_data(as_text=True)
    assert "<html" not in fragment and 'hx-trigger="every 1s"' in fragment
    # A second request for the same month waits for the first.
    again = staff_client.post("/staff/billing/runs", data={"period": PERIOD})
    assert again.status_code == 422 and "already waiting" in again.get_data(as_text=True)
    task = queue.huey.dequeue()
    queue.huey.execute(task)
    db.expire_all()
    fragment = staff_client.htmx("GET", f"/staff/billing/runs/{run.id}").get_data(as_text=True)
    assert 'data-state="done"' in fragment and "every 1s" not in fragment
    assert db.get(BillingRun, run.id).invoices_count == 3


def test_start_run_bad_input_is_422_and_saves_nothing(staff_client, world, db):
    for data in ({"period": "2026-99"}, {"period": ""}, {"period": PERIOD, "issue_date": "yesterday"}):
        resp = staff_client.post("/staff/billing/runs", data=data)
        assert resp.status_code == 422, data
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 0
    assert db.scalar(select(func.count()).select_from(Job)) == 0


def test_location_limited_operator_cannot_preview_or_run(operator_client, world, db):
    client = operator_client(rights=("billing.run",), locations=[world.location])
    page = client.get(f"/staff/billing?period={PERIOD}")
    assert page.status_code == 200 and "without location limits" in page.get_data(as_text=True)
    assert "data-figure" not in page.get_data(as_text=True)
    assert client.post("/staff/billing/runs", data={"period": PERIOD}).status_code == 403
    assert client.get("/staff/billing/runs").status_code == 403
    customer = db.scalar(select(Customer).order_by(Customer.id))
    assert client.get(f"/staff/billing/preview/{customer.id}?period={PERIOD}").status_code == 403
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 0


def test_billing_needs_the_right(operator_client, world):
    client = operator_client(rights=("payments.write",))
    assert client.get("/staff/billing").status_code == 403
    assert client.post("/staff/billing/runs", data={"period": PERIOD}).status_code == 403


# ---------------------------------------------------------------- invoices


@pytest.fixture
def invoices(db):
    a, b = LocationFactory(), LocationFactory()
    ca = CustomerFactory(location=a, customer_number="CA-000001")
    cb = CustomerFactory(location=b, customer_number="CB-000002")
    ContactFactory(customer=ca, value="billing-a@example.com")
    paid = make_invoice(ca, "121.00", due_date=date(2025, 1, 15), number="2025000001")
    paid.paid_amount = Decimal("121.00")
    open_ = make_invoice(ca, "242.00", due_date=date(2099, 1, 15), number="2025000002")
    overdue = make_invoice(ca, "363.00", due_date=date(2025, 2, 15), number="2025000003")
    theirs = make_invoice(cb, "484.00", due_date=date(2025, 2, 15), number="2025000004")
    db.commit()
    return {"a": a, "b": b, "paid": paid, "open": open_, "overdue": overdue, "theirs": theirs, "ca": ca}


def test_invoice_list_filters_and_csv(staff_client, invoices):
    html = staff_client.get("/staff/billing/invoices").get_data(as_text=True)
    assert all(n in html for n in ("2025000001", "2025000002", "2025000003", "2025000004"))
    html = staff_client.get("/staff/billing/invoices?state=overdue").get_data(as_text=True)
    assert "2025000003" in html and "2025000002" not in html and "2025000001" not in html
    html = staff_client.get("/staff/billing/invoices?state=unpaid").get_data(as_text=True)
    assert "2025000002" in html and "2025000001" not in html
    html = staff_client.get("/staff/billing/invoices?state=paid").get_data(as_text=True)
    assert "2025000001" in html and "2025000002" not in html
    html = staff_client.get("/staff/billing/invoices?customer=CB-000002").get_data(as_text=True)
    assert "2025000004" in html and "2025000003" not in html
    html = staff_client.get("/staff/billing/invoices?number=000002").get_data(as_text=True)
    assert "2025000002" in html and "2025000003" not in html
    frag = staff_client.htmx("GET", "/staff/billing/invoices?state=overdue").get_data(as_text=True)
    assert "<html" not in frag and "2025000003" in frag
    csv = staff_client.get("/staff/billing/invoices?format=csv&state=overdue")
    body = csv.get_data(as_text=True)
    assert csv.mimetype == "text/csv" and "2025000003" in body and "2025000002" not in body


def test_invoice_list_bad_filters_never_500(staff_client, invoices):
    for qs in ("state=nope", "period=2026-99", "type=x", "page=abc", "number=%00"):
        assert staff_client.get(f"/staff/billing/invoices?{qs}").status_code == 200, qs


def test_location_scoping_of_invoices(operator_client, invoices):
    client = operator_client(rights=("billing.run",), locations=[invoices["a"]])
    html = client.get("/staff/billing/invoices").get_data(as_text=True)
    assert "2025000003" in html and "2025000004" not in html
    csv = client.get("/staff/billing/invoices?format=csv").get_data(as_text=True)
    assert "2025000004" not in csv
    theirs = invoices["theirs"].id
    assert client.get(f"/staff/billing/invoices/{theirs}").status_code == 404
    assert client.get(f"/staff/billing/invoices/{theirs}/pdf").status_code == 404
    assert client.post(f"/staff/billing/invoices/{theirs}/cancel", data={"cancel_reason": "x"}).status_code == 404
    assert client.post(f"/staff/billing/invoices/{theirs}/credit-note", data={"reason": "x"}).status_code == 404
    assert client.post(f"/staff/billing/invoices/{theirs}/send", data={}).status_code == 404


def test_invoice_list_query_count_is_bounded(staff_client, db, count_queries):
    customer = CustomerFactory()
    make_invoice(customer, "10.00")
    make_invoice(customer, "20.00")
    db.commit()
    staff_client.get("/staff/billing/invoices")
    with count_queries() as q2:
        assert staff_client.get("/staff/billing/invoices").status_code == 200
    for i in range(18):
        make_invoice(customer, f"{i + 1}.00")
    db.commit()
    with count_queries() as q20:
        assert staff_client.get("/staff/billing/invoices").status_code == 200
    assert q2.count == q20.count


def test_invoice_detail_and_pdf(staff_client, invoices):
    inv = invoices["overdue"]
    html = staff_client.get(f"/staff/billing/invoices/{inv.id}").get_data(as_text=True)
    assert inv.number in html and "VAT recapitulation" in html and "Issue a credit note" in html
    resp = staff_client.get(f"/staff/billing/invoices/{inv.id}/pdf")
    assert resp.status_code == 200 and resp.data[:5] == b"%PDF-"
    assert staff_client.get("/staff/billing/invoices/999999").status_code == 404


def test_credit_note_for_selected_lines_is_audited(staff_client, invoices, db):
    inv = invoices["overdue"]
    line = inv.lines[0]
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/credit-note",
                             data={"reason": "Outage", "lines": [str(line.id)]})
    assert resp.status_code == 302
    note = db.scalar(select(Invoice).where(Invoice.corrects_id == inv.id))
    assert note.type == InvoiceType.CREDIT_NOTE and note.gross_total == Decimal("-363.00")
    assert audits(db, "invoice.credit_note_issued")
    html = staff_client.get(f"/staff/billing/invoices/{inv.id}").get_data(as_text=True)
    assert note.number in html


def test_credit_note_bad_input_is_422_nothing_saved(staff_client, invoices, db):
    inv = invoices["overdue"]
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/credit-note", data={"reason": ""})
    assert resp.status_code == 422 and "Give a reason." in resp.get_data(as_text=True)
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/credit-note", data={"reason": "x", "lines": ["999999"]})
    assert resp.status_code == 422 and "are not on invoice" in resp.get_data(as_text=True)
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/credit-note", data={"reason": "x", "lines": ["abc"]})
    assert resp.status_code == 422
    assert db.scalar(select(func.count()).select_from(Invoice).where(Invoice.corrects_id == inv.id)) == 0


def test_cancel_unpaid_invoice_and_refuse_paid(staff_client, invoices, db):
    inv = invoices["open"]
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/cancel", data={"cancel_reason": "Wrong customer"})
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(Invoice, inv.id).state == InvoiceState.CANCELLED
    assert audits(db, "invoice.cancelled")
    paid = invoices["paid"]
    resp = staff_client.post(f"/staff/billing/invoices/{paid.id}/cancel", data={"cancel_reason": "x"})
    assert resp.status_code == 422 and "cannot be cancelled" in resp.get_data(as_text=True)
    resp = staff_client.post(f"/staff/billing/invoices/{invoices['overdue'].id}/cancel", data={"cancel_reason": " "})
    assert resp.status_code == 422
    db.expire_all()
    assert db.get(Invoice, paid.id).state == InvoiceState.ISSUED


def test_resend_invoice_by_email(staff_client, invoices, db, outbox):
    inv = invoices["overdue"]
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/send", data={"to": ""})
    assert resp.status_code == 302
    mails = outbox()
    assert len(mails) == 1 and mails[0]["To"] == "billing-a@example.com" and inv.number in mails[0]["Subject"]
    assert any(p.get_filename().endswith(".pdf") for p in mails[0].iter_attachments())
    assert audits(db, "invoice.sent")
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/send", data={"to": "not an address"})
    assert resp.status_code == 422 and "is not an e-mail address" in resp.get_data(as_text=True)
    assert len(outbox()) == 1


def test_resend_without_address_is_422(staff_client, db):
    customer = CustomerFactory()
    inv = make_invoice(customer, "50.00")
    db.commit()
    resp = staff_client.post(f"/staff/billing/invoices/{inv.id}/send", data={})
    assert resp.status_code == 422 and "no e-mail address" in resp.get_data(as_text=True)
    assert not audits(db, "invoice.sent")


def test_preview_drilldown_per_customer(staff_client, world, db):
    customer = db.scalar(select(Customer).order_by(Customer.id))
    url = f"/staff/billing/preview/{customer.id}?period={PERIOD}"
    html = staff_client.get(url).get_data(as_text=True)
    assert customer.customer_number in html and "2026-10-01 – 2026-10-31" in html
    assert 'data-figure="customer-gross">' in html
    frag = staff_client.htmx("GET", url).get_data(as_text=True)
    assert "<html" not in frag and 'id="drilldown-card"' in frag
    assert f"/staff/billing/preview/{customer.id}" in staff_client.get(f"/staff/billing?period={PERIOD}").get_data(
        as_text=True)
    assert staff_client.get(f"/staff/billing/preview/{customer.id}?period=bad").status_code == 422
    assert staff_client.get(f"/staff/billing/preview/999999?period={PERIOD}").status_code == 404
    assert db.scalar(select(func.count()).select_from(Invoice)) == 0


def test_a_failed_run_shows_its_error_and_does_not_block_the_next(staff_client, world, db, monkeypatch):
    import portal.domain.billing as billing

    def broken(session, period_start, *, actor, issue_date=None, progress=None, run_id=None, job_id=None):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(billing, "run_billing", broken)
    resp = staff_client.post("/staff/billing/runs", data={"period": PERIOD})
    assert resp.status_code == 302
    run = db.scalar(select(BillingRun))
    html = staff_client.get(f"/staff/billing/runs/{run.id}").get_data(as_text=True)
    assert 'data-state="failed"' in html and "the database went away" in html and "every 1s" not in html
    monkeypatch.undo()
    assert staff_client.post("/staff/billing/runs", data={"period": PERIOD}).status_code == 302
    assert db.scalar(select(func.count()).select_from(Invoice)) == 3
