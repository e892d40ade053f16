"""The public pay page /pay/<token> (portal/selfcare/pay.py), the link in selfcare, in the
e-mails and on the PDFs."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from portal.documents import document_for, kind_for, read_document
from portal.domain.billing import send_invoice
from portal.domain.cancellation import make_link_token
from portal.domain.dunning import run_dunning
from portal.extensions import db as _db
from portal.extensions import limiter
from portal.links import pay_token, pay_url
from portal.models import CaseState, DebtRecoveryCase, Reminder
from portal.security.pay_links import LinkKind, make_token, secret_keys
from tests.documents.doc_fixtures import make_reminder, pdf_text
from tests.domain.billing_fixtures import ACTOR
from tests.domain.lifecycle_fixtures import customer_with_email, default_ladder, invoice
from tests.factories import ContactFactory, CustomerFactory
from tests.selfcare.conftest import make_invoice, text

TODAY = date.today()


@pytest.fixture
def unpaid(db):
    """An invoice due in a week, for 605.00, nothing paid."""
    inv = make_invoice(CustomerFactory(first_name="Jana", last_name="Tajna"), gross=Decimal("605.00"),
                       issue_date=TODAY - timedelta(days=7), due_days=14)
    db.commit()
    return inv


def page_of(client, owner, **kw):
    return client.get(f"/pay/{pay_token(owner)}", **kw)


def test_the_page_shows_what_is_owed_without_login(client, unpaid):
    resp = page_of(client, unpaid)
    html = text(resp)
    assert resp.status_code == 200, html[:500]
    assert unpaid.number in html and unpaid.variable_symbol in html
    assert "605.00" in html
    assert "CZ6508000000192000145399" in html and "19-2000145399/0800" in html  # IBAN and account
    assert '<img src="data:image/svg+xml' in html
    assert 'href="/login"' in html
    # Nothing about the customer, no fake payment button, nothing to submit.
    assert "Tajna" not in html and unpaid.customer.customer_number not in html
    assert "<form" not in html.split('id="content"')[1] and "<button" not in html.split('id="content"')[1]
    assert "btn-primary" not in html


def test_the_page_is_private_and_not_indexed(client, unpaid):
    for resp in (page_of(client, unpaid), client.get("/pay/nonsense")):
        assert resp.headers["Cache-Control"] == "private, no-store"
        assert resp.headers["X-Robots-Tag"] == "noindex, nofollow"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert '<meta name="robots" content="noindex, nofollow">' in text(resp)


def test_a_partly_paid_invoice_shows_what_is_left(client, unpaid, db):
    unpaid.paid_amount = Decimal("205.00")
    db.commit()
    html = text(page_of(client, unpaid))
    assert "400.00" in html
    assert "AM:400.00" not in html  # the payload is inside the QR image, not printed
    assert '<img src="data:image/svg+xml' in html


def test_a_paid_invoice_says_so_and_asks_for_nothing(client, unpaid, db):
    unpaid.paid_amount = unpaid.gross_total
    db.commit()
    resp = page_of(client, unpaid)
    html = text(resp)
    assert resp.status_code == 200
    assert "Nothing to pay" in html and "Everything here has been paid" in html
    assert "data:image/svg+xml" not in html and 'id="pay-heading"' not in html


def test_a_reminder_link_shows_its_invoices_and_the_total(client, db):
    reminder = make_reminder()
    reminder.pay_by = TODAY + timedelta(days=7)
    first, second = sorted(reminder.invoices, key=lambda i: i.due_date)
    first.paid_amount = Decimal("100.00")
    db.commit()
    html = text(page_of(client, reminder))
    assert first.number in html and second.number in html
    total = first.gross_total + second.gross_total - Decimal("100.00")
    assert "Total still due" in html and f"{total:,.2f}" in html
    assert reminder.case.customer.variable_symbol in html


def _bad_pages(client, unpaid, app):
    keys = secret_keys(app.config)
    return {
        "tampered": client.get(f"/pay/{pay_token(unpaid)[:-2]}x"),
        "garbage": client.get("/pay/" + "A" * 40),
        "unknown": client.get("/pay/" + make_token(keys, LinkKind.INVOICE, 999999, TODAY)),
        "reminder kind": client.get("/pay/" + make_token(keys, LinkKind.REMINDER, unpaid.id, TODAY)),
        "cancellation link": client.get("/pay/" + make_link_token(app.config["SECRET_KEY"], unpaid.customer,
                                                                  "a@example.com")),
        "expired": client.get("/pay/" + make_token(keys, LinkKind.INVOICE, unpaid.id, TODAY - timedelta(days=1))),
    }


def test_bad_links_open_nothing_and_say_the_same(client, unpaid, app):
    pages = _bad_pages(client, unpaid, app)
    assert {k: r.status_code for k, r in pages.items()} == {
        "tampered": 404, "garbage": 404, "unknown": 404, "reminder kind": 404, "cancellation link": 404,
        "expired": 410}
    bodies = {re.sub(r'content="[^"]*" name="csrf-token"|name="csrf-token" content="[^"]*"', "", text(r))
              for r in pages.values()}
    assert len(bodies) == 1  # not a word more for an invoice that exists
    [body] = bodies
    assert "The payment link does not work" in body and 'href="/login"' in body
    assert unpaid.number not in body and "605" not in body


def test_the_page_is_rate_limited_per_address(client, unpaid, app, monkeypatch):
    monkeypatch.setitem(app.config, "PAY_LINK_LIMIT_PER_IP", "3 per minute")
    limiter.reset()
    statuses = [page_of(client, unpaid, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Guessing tokens counts the same.
    assert client.get("/pay/guess", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 429
    assert page_of(client, unpaid, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 200
    limiter.reset()


def test_the_page_speaks_czech(client, unpaid):
    html = text(page_of(client, unpaid, headers={"Accept-Language": "cs"}))
    assert '<html lang="cs"' in html
    assert "605,00" in html


# -- where the link is shown ------------------------------------------------------------------


def test_selfcare_shows_pay_only_while_something_is_due(customer_client, mine, db):
    html = text(customer_client.get(f"/invoices/{mine.invoice.id}"))
    m = re.search(r'<a class="btn btn-primary" href="(/pay/[^"]+)" id="pay-link">Pay</a>', html)
    assert m, html
    # The invoice is long past due: selfcare hands out a fresh, working link.
    assert customer_client.get(m.group(1)).status_code == 200
    assert 'id="pay-link"' not in text(customer_client.get(f"/invoices/{mine.paid_invoice.id}"))


def test_the_invoice_email_carries_the_link(db, unpaid, outbox):
    ContactFactory(customer=unpaid.customer, value="pay@example.com")
    send_invoice(db, unpaid, actor=ACTOR)
    [mail] = outbox()
    assert pay_url(unpaid) in mail.text
    assert pay_url(unpaid).startswith("http://localhost/pay/")


def test_the_reminder_email_carries_the_link(db, outbox):
    default_ladder()
    customer, _email = customer_with_email()
    due = TODAY - timedelta(days=8)
    invoice(customer, issue_date=due - timedelta(days=14), due_date=due)
    run_dunning(db, on=TODAY, actor=ACTOR)
    [reminder] = db.query(Reminder).all()
    [mail] = outbox()
    assert pay_url(reminder) in mail.text


def test_the_pdfs_print_the_same_link(app, db, unpaid):
    doc = document_for(db, kind_for(unpaid), unpaid)
    assert pay_url(unpaid) in pdf_text(read_document(doc))
    reminder = make_reminder()
    doc = document_for(db, kind_for(reminder), reminder)
    assert pay_url(reminder) in pdf_text(read_document(doc))


def _reminder_of(count: int) -> Reminder:
    customer = CustomerFactory()
    invoices = [make_invoice(customer, issue_date=TODAY - timedelta(days=40)) for _ in range(count)]
    case = DebtRecoveryCase(customer=customer, state=CaseState.REMINDED, level=1, opened_on=TODAY)
    reminder = Reminder(case=case, customer_id=customer.id, level=1, issued_on=TODAY, pay_by=TODAY + timedelta(days=7),
                        amount_due=sum((i.gross_total for i in invoices), Decimal("0")), invoices=invoices)
    _db.session.add_all([case, reminder])
    _db.session.commit()
    return reminder


def test_a_reminder_page_costs_the_same_queries_for_many_invoices(client, db, count_queries):
    counts = []
    for n in (1, 9):
        reminder = _reminder_of(n)
        with count_queries() as q:
            html = text(page_of(client, reminder))
        assert html.count("<th scope=\"row\">FV") == n
        counts.append(q.count)
    assert counts[0] == counts[1], counts
