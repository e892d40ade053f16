"""Every document type renders, and the PDF says what it must: number, customer, totals."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest

from portal.documents import DocumentError, document_for, kind_for, read_document, render_statement
from portal.models import Currency, CustomerKind, DocumentKind, InvoiceType
from tests.documents.doc_fixtures import (
    make_agreement,
    make_agreement_type,
    make_cancelled_service,
    make_credit_note,
    make_customer,
    make_invoice,
    make_reminder,
    pdf_pages,
    pdf_text,
)
from tests.factories import CustomerServiceFactory


def rendered_text(db, owner) -> tuple[str, object]:
    doc = document_for(db, kind_for(owner), owner)
    pdf = read_document(doc)
    assert pdf.startswith(b"%PDF-")
    return pdf_text(pdf), doc


def test_invoice(db):
    invoice = make_invoice()
    text, doc = rendered_text(db, invoice)
    assert doc.kind == DocumentKind.INVOICE
    assert "Invoice – tax document" in text
    assert "2026-000123" in text
    assert invoice.customer.display_name in text
    assert "Example Net s.r.o." in text  # supplier from the snapshot
    assert "Total 1 005.00 CZK" in text
    assert "Total without VAT 849.17 CZK" in text
    assert "VAT 155.83 CZK" in text
    assert "21 % 599.17 125.83 725.00" in text  # VAT recapitulation
    assert "12 % 250.00 30.00 280.00" in text
    assert "99.1736" in text  # unit price keeps its 4 decimals
    assert "Variable symbol 2026000123" in text
    assert "15. 2. 2026" in text  # due date
    assert "CZ6508000000192000145399" in text
    assert "19-2000145399/0800" in text
    assert "QR Platba" in text
    assert doc.file_name == "invoice-2026-000123.pdf"
    assert invoice.document_id == doc.id


def test_invoice_shows_what_was_already_paid(db):
    invoice = make_invoice(paid=Decimal("200.00"))
    text, _ = rendered_text(db, invoice)
    assert "Already paid 200.00 CZK" in text
    assert "To pay 805.00 CZK" in text


def test_company_customer_shows_ids(db):
    customer = make_customer(kind=CustomerKind.COMPANY, first_name=None, last_name=None,
                             company_name="Pekárna Novák s.r.o.", company_id="27074358", vat_id="CZ27074358")
    text, _ = rendered_text(db, make_invoice(customer))
    assert "Pekárna Novák s.r.o." in text
    assert "27074358" in text and "CZ27074358" in text


def test_advance_invoice_is_not_a_tax_document(db):
    invoice = make_invoice(type=InvoiceType.ADVANCE, number="2026-000500")
    text, doc = rendered_text(db, invoice)
    assert "Advance invoice" in text
    assert "not a tax document" in text
    assert "Taxable supply date" not in text
    assert doc.file_name == "advance-invoice-2026-000500.pdf"


def test_credit_note_refers_to_the_invoice_it_corrects(db):
    invoice = make_invoice()
    note = make_credit_note(invoice)
    text, doc = rendered_text(db, note)
    assert doc.kind == DocumentKind.CREDIT_NOTE
    assert "Credit note" in text
    assert "2026-000007" in text
    assert "corrects invoice No. 2026-000123 of 1. 2. 2026" in text
    assert "Service outage in February" in text
    assert "Total −121.00 CZK" in text
    assert "QR" not in text  # nothing to pay
    assert doc.file_name == "credit-note-2026-000007.pdf"


def test_eur_invoice(db):
    invoice = make_invoice(make_customer(Currency.EUR), lines=[("Internet 100 Mbit", "1", "20.00", "20")], number="2026-000900")
    text, _ = rendered_text(db, invoice)
    assert "Total 24.00 EUR" in text
    assert "SK3112000000198742637541" in text
    assert "Example Net Slovakia s.r.o." in text
    assert "EPC QR" in text


def test_many_lines_flow_onto_more_pages_with_page_x_of_y(db):
    lines = [(f"Usage item {i}: data transfer", "3", "12.50", "21") for i in range(90)]
    invoice = make_invoice(lines=lines)
    doc = document_for(db, kind_for(invoice), invoice)
    pdf = read_document(doc)
    pages = pdf_pages(pdf)
    assert pages >= 3
    text = pdf_text(pdf)
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "Usage item 89" in text
    assert text.count("Description") == pages  # the table header repeats on each page


def test_agreement(db):
    agreement = make_agreement()
    text, doc = rendered_text(db, agreement)
    assert doc.kind == DocumentKind.AGREEMENT
    assert "Service agreement" in text
    assert "No. 2026/00042" in text
    assert agreement.customer.display_name in text
    assert "15. 1. 2026" in text  # conclusion date
    for cs in agreement.customer_services:
        assert cs.definition.customer_name in text
    assert "605.00 CZK" in text and "per month" in text
    assert "until 31. 1. 2028" in text  # commitment
    assert "30 days" in text  # notice
    assert "The provider delivers the services listed above." in text  # terms
    assert doc.file_name == "agreement-2026-00042.pdf"
    assert agreement.current_document_id == doc.id


def test_annex_refers_to_its_agreement(db):
    parent = make_agreement()
    annex = make_agreement(parent.customer, number="2026/00043", parent=parent, services=1,
                           atype=make_agreement_type("annex.html", code="ANX", is_annex=True))
    text, doc = rendered_text(db, annex)
    assert doc.kind == DocumentKind.ANNEX
    assert "Annex to agreement No. 2026/00042" in text
    assert "No. 2026/00043" in text
    assert "500 Mbit" in text  # the summary of what changes


def test_agreement_with_a_missing_template_is_an_error(db):
    agreement = make_agreement(atype=make_agreement_type("nonexistent.html", code="X"))
    with pytest.raises(DocumentError, match="nonexistent.html"):
        document_for(db, DocumentKind.AGREEMENT, agreement)


def test_reminder_letter(db):
    reminder = make_reminder(level=2, block_on=date(2026, 3, 20))
    text, doc = rendered_text(db, reminder)
    assert doc.kind == DocumentKind.REMINDER
    assert "Payment reminder" in text and "Reminder level 2" in text
    assert reminder.case.customer.display_name in text
    assert "2026-000101" in text and "2026-000102" in text
    assert "Overdue amount 2 010.00 CZK" in text
    assert "Reminder fee 100.00 CZK" in text
    assert "To pay 2 110.00 CZK" in text
    assert "8. 3. 2026" in text  # pay by
    assert "blocked on 20. 3. 2026" in text


def test_reminder_without_blocking_says_what_comes_next(db):
    reminder = make_reminder(level=1, fee=Decimal("0.00"))
    text, _ = rendered_text(db, reminder)
    assert "another reminder once the oldest invoice is 30 days overdue" in text
    assert "services will be blocked until the debt is paid" in text
    assert "Reminder fee" not in text


def test_cancellation_confirmation(db):
    service = make_cancelled_service(end=date(2026, 4, 30))
    text, doc = rendered_text(db, service)
    assert doc.kind == DocumentKind.CANCELLATION_CONFIRMATION
    assert "Cancellation confirmation" in text
    assert service.definition.customer_name in text
    assert "Service ends on 30. 4. 2026" in text
    assert "30 days" in text
    assert "Moving abroad" in text


def test_cancellation_confirmation_needs_a_cancellation(db):
    service = CustomerServiceFactory()
    with pytest.raises(DocumentError, match="no cancellation"):
        document_for(db, DocumentKind.CANCELLATION_CONFIRMATION, service)


@dataclass
class Entry:
    date: date
    kind: str
    reference: str
    description: str
    debit: Decimal | None
    credit: Decimal | None
    balance: Decimal


@dataclass
class Statement:
    start: date
    end: date
    opening: dict
    entries: list = field(default_factory=list)
    closing: dict = field(default_factory=dict)


def test_statement_from_any_object_with_the_interface(db):
    customer = make_customer()
    statement = Statement(
        start=date(2026, 1, 1), end=date(2026, 3, 31), opening={"CZK": Decimal("0.00")},
        entries=[
            Entry(date(2026, 1, 1), "invoice", "2026-000101", "Invoice", Decimal("1005.00"), None, Decimal("1005.00")),
            Entry(date(2026, 1, 10), "payment", "VS 2026000101", "Bank transfer", None, Decimal("1005.00"), Decimal("0.00")),
            Entry(date(2026, 2, 1), "invoice", "2026-000102", "Invoice", Decimal("1005.00"), None, Decimal("1005.00")),
        ],
        closing={"CZK": Decimal("1005.00")},
    )
    text = pdf_text(render_statement(customer, statement))
    assert "Account statement" in text
    assert "1. 1. 2026 – 31. 3. 2026" in text
    assert customer.display_name in text
    assert "Opening balance CZK 0.00 CZK" in text
    assert "2026-000102" in text and "Bank transfer" in text
    assert "Closing balance CZK 1 005.00 CZK" in text

    # A plain dict works as well.
    as_dict = {"start": date(2026, 1, 1), "end": date(2026, 1, 31), "opening": {"CZK": 0}, "entries": [], "closing": {"CZK": 0}}
    assert "No entries in this period" in pdf_text(render_statement(customer, as_dict))
