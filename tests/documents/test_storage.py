"""Storing documents: rendered once, hashed, versioned where allowed, verified on read."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from portal.documents import (
    DocumentError,
    DocumentMissing,
    DocumentTampered,
    document_for,
    kind_for,
    pending,
    read_document,
    render,
    render_document,
    verify,
)
from portal.documents.storage import path_for
from portal.models import AgreementState, DocumentKind, Invoice, StoredDocument
from tests.documents.doc_fixtures import (
    make_agreement,
    make_cancelled_service,
    make_credit_note,
    make_invoice,
    make_reminder,
)


def test_stored_file_hashes_to_its_sha256(db, app):
    invoice = make_invoice()
    doc = document_for(db, DocumentKind.INVOICE, invoice)
    path = Path(app.config["DOCUMENTS_DIR"]) / doc.storage_key
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == doc.sha256
    assert doc.size == len(raw)
    assert doc.storage_key == f"invoice/2026/{invoice.id}-v1-{doc.sha256[:12]}.pdf"
    assert doc.customer_id == invoice.customer_id
    assert doc.template_version == "invoice-3"
    assert len(doc.source_hash) == 64
    assert read_document(doc) == raw
    assert read_document(doc) == raw  # stable on every read


def test_second_request_serves_the_stored_file_without_rendering(db):
    invoice = make_invoice()
    first = document_for(db, DocumentKind.INVOICE, invoice)
    db.commit()
    before = render.render_count
    again = document_for(db, DocumentKind.INVOICE, invoice)
    assert again.id == first.id and again.sha256 == first.sha256
    assert render.render_count == before


def test_issued_invoice_is_never_re_rendered(db):
    invoice = make_invoice()
    first = document_for(db, DocumentKind.INVOICE, invoice)
    # Even if a row were changed behind our back (the ORM guard refuses this; raw SQL can).
    db.execute(update(Invoice).where(Invoice.id == invoice.id).values(customer_name="Someone Else"))
    invoice.paid_amount = Decimal("10.00")
    db.expire(invoice, ["customer_name"])
    before = render.render_count
    assert document_for(db, DocumentKind.INVOICE, invoice).id == first.id
    assert render.render_count == before
    assert db.scalar(select(StoredDocument.version).where(StoredDocument.owner_id == invoice.id)) == 1


def test_agreement_change_stores_a_new_version_and_keeps_the_old(db):
    agreement = make_agreement()
    v1 = document_for(db, DocumentKind.AGREEMENT, agreement)
    v1_bytes = read_document(v1)

    before = render.render_count
    assert document_for(db, DocumentKind.AGREEMENT, agreement).id == v1.id  # nothing changed
    assert render.render_count == before

    agreement.customer.street = "Nová 12"  # the customer moved
    v2 = document_for(db, DocumentKind.AGREEMENT, agreement)
    assert v2.id != v1.id and v2.version == 2
    assert v2.source_hash != v1.source_hash
    assert agreement.current_document_id == v2.id
    assert read_document(v1) == v1_bytes  # the old file stays, intact
    assert path_for(v1.storage_key).exists() and path_for(v2.storage_key).exists()
    assert v1.storage_key != v2.storage_key


def test_accepted_agreement_is_frozen(db):
    agreement = make_agreement()
    v1 = document_for(db, DocumentKind.AGREEMENT, agreement)
    agreement.state = AgreementState.ACCEPTED
    agreement.customer.street = "Nová 12"
    assert document_for(db, DocumentKind.AGREEMENT, agreement).id == v1.id


def test_cancellation_confirmation_is_versioned_by_its_data(db):
    service = make_cancelled_service()
    v1 = document_for(db, DocumentKind.CANCELLATION_CONFIRMATION, service)
    assert document_for(db, DocumentKind.CANCELLATION_CONFIRMATION, service).id == v1.id
    service.events[-1].scheduled_for = service.events[-1].scheduled_for.replace(day=15)
    assert document_for(db, DocumentKind.CANCELLATION_CONFIRMATION, service).version == 2


def test_render_document_by_kind_and_id(db):
    invoice = make_invoice()
    note = make_credit_note(invoice)
    reminder = make_reminder(invoice.customer)
    agreement = make_agreement(invoice.customer)
    db.commit()
    assert render_document(db, "invoice", invoice.id).owner_id == invoice.id
    assert render_document(db, DocumentKind.CREDIT_NOTE, note.id).kind == DocumentKind.CREDIT_NOTE
    assert render_document(db, "reminder", reminder.id).owner_type == "reminder"
    assert render_document(db, "agreement", agreement.id).owner_type == "agreement"
    assert reminder.document_id is not None and note.document_id is not None


def test_render_document_refuses_the_wrong_kind_and_unknown_ids(db):
    invoice = make_invoice()
    with pytest.raises(DocumentError, match="prints as invoice"):
        render_document(db, "credit_note", invoice.id)
    with pytest.raises(DocumentError, match="not found"):
        render_document(db, "invoice", 999999)
    with pytest.raises(DocumentError, match="not stored"):
        render_document(db, "statement", 1)


def test_read_document_detects_tampering_and_missing_files(db):
    doc = document_for(db, DocumentKind.INVOICE, make_invoice())
    path = path_for(doc.storage_key)
    path.write_bytes(path.read_bytes().replace(b"2026-000123", b"2026-000999", 1) + b"%")
    with pytest.raises(DocumentTampered):
        read_document(doc)
    path.unlink()
    with pytest.raises(DocumentMissing):
        read_document(doc)


def test_verify_reports_changed_and_missing(db):
    ok = document_for(db, DocumentKind.INVOICE, make_invoice())
    changed = document_for(db, DocumentKind.INVOICE, make_invoice(number="2026-000124"))
    missing = document_for(db, DocumentKind.INVOICE, make_invoice(number="2026-000125"))
    with path_for(changed.storage_key).open("ab") as fh:
        fh.write(b"\n% appended")
    path_for(missing.storage_key).unlink()
    results = {doc.id: problem for doc, problem in verify(db)}
    assert results == {ok.id: None, changed.id: "changed", missing.id: "missing"}


def test_pending_lists_what_has_no_document(db):
    invoice = make_invoice()
    note = make_credit_note(invoice)
    agreement = make_agreement(invoice.customer)
    draft = make_agreement(invoice.customer, number=None)
    draft.state = AgreementState.DRAFT
    reminder = make_reminder(invoice.customer)
    db.flush()
    todo = pending(db)
    assert (DocumentKind.INVOICE, invoice.id) in todo
    assert (DocumentKind.CREDIT_NOTE, note.id) in todo
    assert (DocumentKind.AGREEMENT, agreement.id) in todo
    assert (DocumentKind.REMINDER, reminder.id) in todo
    assert all(oid != draft.id for kind, oid in todo if kind == DocumentKind.AGREEMENT)
    document_for(db, kind_for(invoice), invoice)
    assert (DocumentKind.INVOICE, invoice.id) not in pending(db)


def test_cli_render_pending_and_verify(app, db):
    invoice = make_invoice()
    make_credit_note(invoice)
    make_agreement(invoice.customer)
    make_reminder(invoice.customer)  # two more invoices
    db.commit()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["documents", "render", "--pending"])
    assert result.exit_code == 0, result.output
    assert "Rendered 6 documents" in result.output
    db.expire_all()
    assert pending(db) == []
    assert db.scalar(select(StoredDocument.id).limit(1)) is not None

    result = runner.invoke(args=["documents", "verify"])
    assert result.exit_code == 0, result.output
    assert "Checked 6 stored documents: 0 problem(s)" in result.output

    doc = db.scalars(select(StoredDocument).where(StoredDocument.kind == DocumentKind.AGREEMENT)).one()
    with path_for(doc.storage_key).open("ab") as fh:
        fh.write(b"x")
    result = runner.invoke(args=["documents", "verify"])
    assert result.exit_code == 1
    assert f"CHANGED: document {doc.id}" in result.output

    result = runner.invoke(args=["documents", "render", "invoice", str(invoice.id)])
    assert result.exit_code == 0, result.output
    assert f"invoice/2026/{invoice.id}-v1-" in result.output
