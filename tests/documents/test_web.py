"""send_document(): the stored bytes, ETag = sha256, 304 on a conditional GET, a readable
ASCII file name, private caching."""
from __future__ import annotations

from unittest import mock

from portal.documents import document_for, send_document, send_pdf
from portal.documents import web as docweb
from portal.models import DocumentKind
from tests.documents.doc_fixtures import make_invoice


def test_send_document(app, db):
    doc = document_for(db, DocumentKind.INVOICE, make_invoice())
    with app.test_request_context("/invoices/1.pdf"):
        resp = send_document(doc)
    assert resp.status_code == 200
    assert resp.mimetype == "application/pdf"
    assert resp.get_data().startswith(b"%PDF-")
    assert resp.get_etag() == (doc.sha256, False)
    assert resp.headers["Content-Disposition"] == 'attachment; filename="invoice-2026-000123.pdf"'
    assert "private" in resp.headers["Cache-Control"]


def test_conditional_get_is_304_without_reading_the_file(app, db):
    doc = document_for(db, DocumentKind.INVOICE, make_invoice())
    with app.test_request_context("/x.pdf", headers={"If-None-Match": f'"{doc.sha256}"'}):
        with mock.patch.object(docweb, "read_document", side_effect=AssertionError("read")):
            resp = send_document(doc)
    assert resp.status_code == 304
    assert resp.get_etag() == (doc.sha256, False)
    assert resp.get_data() == b""

    with app.test_request_context("/x.pdf", headers={"If-None-Match": '"something-else"'}):
        assert send_document(doc).status_code == 200


def test_file_name_is_ascii_safe_with_the_original_alongside(app, db):
    doc = document_for(db, DocumentKind.INVOICE, make_invoice())
    doc.file_name = 'faktura "Žluťoučký kůň" 2026/1.pdf'
    with app.test_request_context("/x.pdf"):
        disposition = send_document(doc, inline=True).headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="faktura-Zlutoucky-kun-2026-1.pdf"')
    assert "filename*=UTF-8''faktura%20%22%C5%BDlu" in disposition
    disposition.encode("latin-1")  # a header value must be encodable


def test_send_pdf_is_not_cached(app):
    with app.test_request_context("/statement.pdf"):
        resp = send_pdf(b"%PDF-1.7 x", "statement-C1-2026-01-01-2026-03-31.pdf")
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="statement-C1-2026-01-01-2026-03-31.pdf"'
