"""One supplier identity: an e-mail, a PDF and a page of the same customer name the same
supplier — the partner of the customer's location when set, else the SUPPLIER_* settings."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

from pypdf import PdfReader

from portal.documents import (
    customer_supplier,
    document_for,
    invoice_supplier,
    kind_for,
    read_document,
)
from portal.mail import send_email
from tests.documents.doc_fixtures import make_invoice
from tests.factories import CustomerFactory, LocationFactory, PartnerFactory


def pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


def _vltava_customer():
    partner = PartnerFactory(name="Vltava Net s.r.o.", email="fakturace@vltava.example")
    return CustomerFactory(location=LocationFactory(partner=partner))


def test_an_email_and_a_pdf_of_one_customer_name_the_same_supplier(app, db, outbox):
    assert app.config["SUPPLIER_NAME"] == "Example Net s.r.o."
    customer = _vltava_customer()
    invoice = make_invoice(customer)
    db.flush()
    pdf = pdf_text(read_document(document_for(db, kind_for(invoice), invoice)))
    # An e-mail that has no invoice of its own (it used to sign with SUPPLIER_NAME).
    send_email("c@example.com", "Code", "agreement_code", customer_id=customer.id,
               code="123456", agreement=SimpleNamespace(number="S-1"), minutes=10)
    send_email("c@example.com", "Invoice", "invoice", customer_id=customer.id, invoice=invoice, customer=customer)
    code_mail, invoice_mail = (m.text for m in outbox()[-2:])
    assert "Vltava Net s.r.o." in pdf
    assert "Vltava Net s.r.o." in code_mail and "Example Net" not in code_mail
    assert "Vltava Net s.r.o." in invoice_mail and "Example Net" not in invoice_mail


def test_what_the_partner_lacks_comes_from_the_settings(app, db):
    customer = _vltava_customer()
    customer.location.partner.phone = None
    db.flush()
    supplier = customer_supplier(customer)
    assert supplier["name"] == "Vltava Net s.r.o."
    assert supplier["phone"] == app.config["SUPPLIER_PHONE"]
    invoice = make_invoice(customer)
    assert invoice_supplier(invoice)["name"] == "Vltava Net s.r.o."
    assert customer_supplier(None)["name"] == "Example Net s.r.o."
