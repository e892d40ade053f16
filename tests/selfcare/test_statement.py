"""The account statement: a period, the page per currency, the PDF, and the period rules."""
from __future__ import annotations

from datetime import date

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
