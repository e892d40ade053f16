"""Documents: Jinja → HTML → PDF (WeasyPrint), stored once and hashed, served to both faces.

What a view or a job calls:

    document_for(session, kind, owner) -> StoredDocument   render on first need, then serve
    kind_for(owner) -> DocumentKind                          the kind an Invoice/Agreement/… prints as
    render_document(session, kind, owner_id)                 the same by id (background jobs)
    read_document(doc) -> bytes                              stored bytes, hash verified
    send_document(doc) -> Response                           ETag/304, attachment, private cache
    render_statement(customer, statement) -> bytes           an account statement (not stored)
    send_pdf(data, file_name) -> Response                    for on-demand PDFs like statements
    supplier_snapshot(partner) -> dict                       what billing copies into Invoice.supplier
"""
from .data import supplier_snapshot
from .render import DocumentError, ResourceRefused
from .service import (
    KINDS,
    TEMPLATE_VERSIONS,
    document_for,
    kind_for,
    latest_document,
    pending,
    read_document,
    render_document,
    render_statement,
    statement_file_name,
    verify,
)
from .storage import DocumentMissing, DocumentTampered
from .web import send_document, send_pdf

__all__ = [
    "KINDS",
    "TEMPLATE_VERSIONS",
    "DocumentError",
    "DocumentMissing",
    "DocumentTampered",
    "ResourceRefused",
    "document_for",
    "kind_for",
    "latest_document",
    "pending",
    "read_document",
    "render_document",
    "render_statement",
    "send_document",
    "send_pdf",
    "statement_file_name",
    "supplier_snapshot",
    "verify",
]
