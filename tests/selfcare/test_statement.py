"""The account statement: a period, the page per currency, the PDF, and the period rules."""
from __future__ import annotations

from datetime import date

from portal.models import Language
from tests.selfcare.conftest import field_error, text


def test_default_period_is_this_year(customer_client, mine):
    resp = customer_client.get("/statement")
    assert resp.status_code == 200
    html = text(resp)
    assert f'value="{date.today().year}-01-01"' in html
    assert f'value="{date.today().isoformat()}"' in html


def test_statement_shows_opening_entries_and_closing(customer_client, mine):
    # paid invoice 2025-04-01 (605), payment 2026-03-10 (700), open invoice 2026-04-01 (605)
    html = text(customer_client.get("/statement?start=2026-01-01&end=2026-12-31"))
    assert "Opening balance" in html and "Closing balance" in html
    assert mine.invoice.number in html
    assert mine.paid_invoice.number not in html  # before the period: only in the opening balance
    assert "Balance in CZK" in html
    # opening 605 (2025 invoice unpaid then), −700 payment, +605 invoice → closing 510
    assert "510.00" in html or "510,00" in html


def test_statement_pdf(customer_client, mine):
    resp = customer_client.get("/statement?start=2025-01-01&end=2026-12-31&format=pdf")
    assert resp.status_code == 200
    assert resp.mimetype == "application/pdf" and resp.data.startswith(b"%PDF")
    assert "statement-" in resp.headers["Content-Disposition"]


def test_start_after_end_is_refused_next_to_the_field(customer_client, mine):
    resp = customer_client.get("/statement?start=2026-05-01&end=2026-01-01")
    assert resp.status_code == 422
    assert "must not be after" in field_error(text(resp), "start")
    assert customer_client.get("/statement?start=2026-05-01&end=2026-01-01&format=pdf").status_code == 422


def test_more_than_five_years_is_refused(customer_client, mine):
    resp = customer_client.get("/statement?start=2010-01-01&end=2026-01-01")
    assert resp.status_code == 422
    assert "five years" in field_error(text(resp), "end")


def test_missing_or_bad_date_is_refused(customer_client, mine):
    resp = customer_client.get("/statement?start=nonsense&end=")
    assert resp.status_code == 422
    assert field_error(text(resp), "start") and field_error(text(resp), "end")


def test_statement_is_only_mine(customer_client, mine, theirs):
    html = text(customer_client.get("/statement?start=2020-01-01&end=2026-12-31"))
    assert theirs.invoice.number not in html and theirs.paid_invoice.number not in html


def test_statement_needs_login(client):
    resp = client.get("/statement")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_statement_pdf_lists_each_entry_with_its_date(customer_client, mine):
    from tests.documents.doc_fixtures import pdf_text

    pdf = pdf_text(customer_client.get("/statement?start=2026-01-01&end=2026-12-31&format=pdf").data)
    # The open invoice of 1 April 2026 and the payment of 10 March 2026, each on a dated line.
    # (date, kind, reference, description)
    assert f"1. 4. 2026 Invoice {mine.invoice.number} Invoice {mine.invoice.number} 605.00" in pdf
    assert "10. 3. 2026 Payment" in pdf and "Bank transfer 0.00" in pdf


def test_statement_lines_are_in_the_customers_language(customer_client, mine, customer_login, db):
    from tests.documents.doc_fixtures import pdf_text

    customer_login.language = Language.CS
    customer_login.customer.language = Language.CS
    db.commit()
    html = text(customer_client.get("/statement?start=2026-01-01&end=2026-12-31"))
    assert f'<a href="/invoices/{mine.invoice.id}">Faktura {mine.invoice.number}</a>' in html
    assert "Bankovní převod" in html and "Bank transfer" not in html
    pdf = pdf_text(customer_client.get("/statement?start=2026-01-01&end=2026-12-31&format=pdf").data)
    assert f"Faktura {mine.invoice.number} Faktura {mine.invoice.number}" in pdf
    assert "Bankovní převod" in pdf and "Bank transfer" not in pdf
