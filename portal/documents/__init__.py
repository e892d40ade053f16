"""Documents: Jinja → HTML → PDF (WeasyPrint), stored once and hashed, served to both faces.

What a view or a job calls:

    document_for(session, kind, owner) -> StoredDocument   render on first need, then serve
    kind_for(owner) -> DocumentKind                          the kind an Invoice/Agreement/… prints as
    render_document(session, kind, owner_id)                 the same by id (background jobs)
    read_document(doc) -> bytes                              stored bytes, hash verified
    send_document(doc) -> Response                           ETag/304, attachment, private cache
    render_statement(customer, statement) -> bytes           an account statement (not stored)
    send_pdf(data, file_name) -> Response                    for on-demand PDFs like statements
    embedded_xml(pdf) -> bytes | None                        the Factur-X XML a stored invoice PDF carries
    send_xml(data, file_name) -> Response                    that XML as a download
    supplier_snapshot(partner) -> dict                       what billing copies into Invoice.supplier
    supplier_identity(partner, snapshot) -> dict             the supplier e-mails, PDFs and pages show
    customer_supplier(customer, snapshot) -> dict            the same, for a customer's location
    invoice_supplier(invoice) -> dict                        the same, for an invoice (its snapshot first)
"""
from .cii import embedded_xml
from .data import customer_supplier, invoice_supplier, supplier_identity, supplier_snapshot
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
from .web import attachment_disposition, send_document, send_pdf, send_xml

__all__ = [
    "KINDS",
    "TEMPLATE_VERSIONS",
    "attachment_disposition",
    "DocumentError",
    "DocumentMissing",
    "DocumentTampered",
    "ResourceRefused",
    "customer_supplier",
    "document_for",
    "embedded_xml",
    "invoice_supplier",
    "kind_for",
    "latest_document",
    "pending",
    "read_document",
    "render_document",
    "render_statement",
    "send_document",
    "send_pdf",
    "send_xml",
    "statement_file_name",
    "supplier_identity",
    "supplier_snapshot",
    "verify",
]
