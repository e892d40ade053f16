"""Payment QR payloads: SPAYD for CZK, EPC for EUR — and that the invoice carries the right one."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.documents import data, qr
from portal.documents.service import _invoice_qr
from portal.models import Currency, InvoiceType
from tests.documents.doc_fixtures import make_customer, make_invoice


def test_spayd_payload():
    payload = qr.spayd(
        "CZ65 0800 0000 1920 0014 5399", Decimal("1005"), variable_symbol="2026000123",
        due_date=date(2026, 2, 15), message="Faktura 2026-000123 *Nováková*",
    )
    assert payload == (
        "SPD*1.0*ACC:CZ6508000000192000145399*AM:1005.00*CC:CZK*X-VS:2026000123*DT:20260215"
        "*MSG:Faktura 2026-000123 Novakova"
    )


def test_epc_payload():
    payload = qr.epc("SK31 1200 0000 1987 4263 7541", Decimal("24"), name="Example Net Slovakia s.r.o.",
                     bic="tatrskbx", remittance="VS 2026000900 Invoice 2026-000900")
    assert payload.split("\n") == [
        "BCD", "002", "1", "SCT", "TATRSKBX", "Example Net Slovakia s.r.o.", "SK3112000000198742637541",
        "EUR24.00", "", "", "VS 2026000900 Invoice 2026-000900",
    ]


def test_svg_data_uri_decodes_to_an_svg():
    uri = qr.svg_data_uri("SPD*1.0*ACC:CZ6508000000192000145399*AM:1.00*CC:CZK")
    assert uri.startswith("data:image/svg+xml")


def test_czk_invoice_carries_spayd_for_the_amount_due(db):
    invoice = make_invoice(paid=Decimal("5.00"))
    code = _invoice_qr(data.invoice_data(invoice))
    assert code["payload"] == (
        "SPD*1.0*ACC:CZ6508000000192000145399*AM:1000.00*CC:CZK*X-VS:2026000123*X-KS:0308*DT:20260215"
        "*MSG:Invoice 2026-000123"
    )


def test_eur_invoice_carries_epc(db):
    invoice = make_invoice(make_customer(Currency.EUR), lines=[("Internet", "1", "20.00", "20")], number="2026-000900")
    code = _invoice_qr(data.invoice_data(invoice))
    assert code["payload"] == "\n".join([
        "BCD", "002", "1", "SCT", "TATRSKBX", "Example Net Slovakia s.r.o.", "SK3112000000198742637541",
        "EUR24.00", "", "", "VS 2026000900 Invoice 2026-000900",
    ])


def test_no_qr_when_nothing_is_due(db):
    invoice = make_invoice()
    assert _invoice_qr(data.invoice_data(make_invoice(invoice.customer, number="2026-000124", paid=invoice.gross_total))) is None
    note = make_invoice(invoice.customer, number="2026-000009", type=InvoiceType.CREDIT_NOTE, corrects=invoice)
    assert _invoice_qr(data.invoice_data(note)) is None
