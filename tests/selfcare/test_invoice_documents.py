"""Invoice PDFs and the payment QR on the invoice page."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from portal.models import StoredDocument
from tests.selfcare.conftest import make_invoice, text


def test_invoice_pdf_downloads_and_is_stored_once(customer_client, mine, db):
    resp = customer_client.get(f"/invoices/{mine.invoice.id}/pdf")
    assert resp.status_code == 200, text(resp)[:500]
    assert resp.mimetype == "application/pdf"
    assert resp.data.startswith(b"%PDF")
    assert "attachment" in resp.headers["Content-Disposition"]
    etag = resp.headers["ETag"]
    again = customer_client.get(f"/invoices/{mine.invoice.id}/pdf", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert db.scalar(select(func.count()).select_from(StoredDocument)) == 1


def test_invoice_pdf_of_another_customer_is_404(customer_client, mine, theirs, db):
    for inv in (theirs.invoice, theirs.paid_invoice):
        assert customer_client.get(f"/invoices/{inv.id}/pdf").status_code == 404
    assert customer_client.get("/invoices/999999/pdf").status_code == 404
    assert db.scalar(select(func.count()).select_from(StoredDocument)) == 0


def test_invoice_pdf_needs_login(client, theirs):
    resp = client.get(f"/invoices/{theirs.invoice.id}/pdf")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_lists_link_the_pdf(customer_client, mine):
    assert f"/invoices/{mine.invoice.id}/pdf" in text(customer_client.get("/invoices"))
    assert f"/invoices/{mine.invoice.id}/pdf" in text(customer_client.get(f"/invoices/{mine.invoice.id}"))


def test_invoice_page_shows_payment_qr_for_the_amount_due(customer_client, mine, db):
    inv = make_invoice(mine.customer, gross=Decimal("1000.00"), paid=Decimal("300.00"))
    inv.credited_amount = Decimal("100.00")
    db.commit()
    html = text(customer_client.get(f"/invoices/{inv.id}"))
    assert '<img src="data:image/svg+xml' in html
    assert "600.00" in html or "600,00" in html  # 1000 − 300 paid − 100 credited
    assert "CZ6508000000192000145399" in html
    assert inv.variable_symbol in html
    assert "style=" not in html.split('id="pay-heading"')[1]
    assert "<script" not in html.split('id="pay-heading"')[1]


def test_paid_invoice_has_no_qr(customer_client, mine):
    html = text(customer_client.get(f"/invoices/{mine.paid_invoice.id}"))
    assert "data:image/svg+xml" not in html
