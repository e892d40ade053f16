"""Factur-X: the CII XML validates against the official schema and is embedded in a PDF/A-3b."""
from __future__ import annotations

import io

import facturx
import pypdf
import pytest
from lxml import etree

from portal.documents import cii, data, document_for, kind_for, read_document
from portal.models import Currency, InvoiceType
from tests.documents.doc_fixtures import make_credit_note, make_customer, make_invoice

NS = {"rsm": cii.RSM, "ram": cii.RAM, "udt": cii.UDT}


def xml_of(invoice):
    return cii.invoice_xml(data.invoice_data(invoice))


@pytest.mark.parametrize("level", ["en16931", "basic"])
def test_invoice_xml_validates_against_the_schema(db, level):
    xml, _ = cii.invoice_xml(data.invoice_data(make_invoice()), level)
    facturx.xml_check_xsd(xml, flavor="factur-x", level=level)  # raises when invalid


def test_invoice_xml_content(db):
    invoice = make_invoice()
    xml, level = xml_of(invoice)
    assert level == "en16931"
    root = etree.fromstring(xml)
    assert root.findtext("rsm:ExchangedDocument/ram:ID", namespaces=NS) == "2026-000123"
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "380"
    settlement = root.find("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement", NS)
    assert settlement.findtext("ram:PaymentReference", namespaces=NS) == "2026000123"
    assert settlement.findtext("ram:InvoiceCurrencyCode", namespaces=NS) == "CZK"
    assert settlement.findtext(".//ram:IBANID", namespaces=NS) == "CZ6508000000192000145399"
    summary = settlement.find("ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert summary.findtext("ram:TaxBasisTotalAmount", namespaces=NS) == "849.17"
    assert summary.findtext("ram:TaxTotalAmount", namespaces=NS) == "155.83"
    assert summary.findtext("ram:GrandTotalAmount", namespaces=NS) == "1005.00"
    assert summary.findtext("ram:DuePayableAmount", namespaces=NS) == "1005.00"
    rates = [t.findtext("ram:RateApplicablePercent", namespaces=NS) for t in settlement.findall("ram:ApplicableTradeTax", NS)]
    assert rates == ["12", "21"]
    assert len(root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)) == 3
    seller = root.find(".//ram:SellerTradeParty", NS)
    assert seller.findtext("ram:SpecifiedTaxRegistration/ram:ID", namespaces=NS) == "CZ12345679"


def test_credit_note_xml_is_381_with_positive_amounts_and_a_reference(db):
    note = make_credit_note(make_invoice())
    xml, level = xml_of(note)
    cii.validate(xml, level)
    root = etree.fromstring(xml)
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    assert root.findtext(".//ram:GrandTotalAmount", namespaces=NS) == "121.00"
    assert root.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS) == "2026-000123"


def test_advance_invoice_is_386(db):
    xml, level = xml_of(make_invoice(type=InvoiceType.ADVANCE, number="2026-000500"))
    cii.validate(xml, level)
    assert etree.fromstring(xml).findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "386"


def test_missing_seller_vat_id_falls_back_to_basic(db):
    invoice = make_invoice()
    d = data.invoice_data(invoice)
    d["supplier"]["vat_id"] = None
    xml, level = cii.invoice_xml(d)
    assert level == "basic"
    cii.validate(xml, level)


def test_invalid_xml_is_refused():
    with pytest.raises(cii.InvalidFacturX):
        cii.validate(b"<rsm:CrossIndustryInvoice xmlns:rsm='" + cii.RSM.encode() + b"'/>", "en16931")


@pytest.mark.parametrize("currency", [Currency.CZK, Currency.EUR])
def test_pdf_is_pdf_a_3b_with_the_xml_embedded(db, currency):
    invoice = make_invoice(make_customer(currency))
    pdf = read_document(document_for(db, kind_for(invoice), invoice))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert list(reader.attachments) == ["factur-x.xml"]
    embedded = reader.attachments["factur-x.xml"][0]
    assert embedded == xml_of(invoice)[0]
    facturx.xml_check_xsd(embedded, flavor="factur-x", level="en16931")
    # The factur-x library finds and validates it as a reader would.
    name, xml = facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml" and xml == embedded

    root = reader.trailer["/Root"]
    assert "/OutputIntents" in root  # PDF/A output intent
    assert len(root["/AF"]) == 1  # associated file, listed once
    filespec = root["/AF"][0].get_object()
    assert filespec["/AFRelationship"] == "/Data"
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert "<pdfaid:part>3</pdfaid:part>" in xmp or 'pdfaid:part="3"' in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in xmp
    assert xmp.count("<rdf:RDF") == 1
