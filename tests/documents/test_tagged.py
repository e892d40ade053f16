"""Customer documents are tagged PDFs (a structure tree and MarkInfo /Marked true), so screen
readers get headings, tables and reading order — and stay PDF/A-3 (tests/documents/test_facturx.py)."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from portal.documents import document_for, kind_for, read_document, render_statement
from tests.documents.doc_fixtures import make_agreement, make_customer, make_invoice, make_reminder
from tests.documents.test_documents import Entry, Statement


def assert_tagged(pdf: bytes) -> None:
    root = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    assert "/StructTreeRoot" in root, "no structure tree"
    assert root["/MarkInfo"]["/Marked"] is True or root["/MarkInfo"]["/Marked"] == True  # noqa: E712
    assert root["/StructTreeRoot"].get_object().get("/K") is not None, "an empty structure tree"


@pytest.mark.parametrize("make", [make_invoice, make_agreement, make_reminder], ids=["invoice", "agreement", "reminder"])
def test_stored_documents_are_tagged(db, make):
    owner = make()
    assert_tagged(read_document(document_for(db, kind_for(owner), owner)))


def test_statement_is_tagged(db):
    statement = Statement(start=date(2026, 1, 1), end=date(2026, 1, 31), opening={"CZK": Decimal("0.00")},
                          entries=[Entry(date(2026, 1, 1), "invoice", "2026-000101", "Invoice", Decimal("10.00"), None,
                                         Decimal("10.00"))],
                          closing={"CZK": Decimal("10.00")})
    assert_tagged(render_statement(make_customer(), statement))
