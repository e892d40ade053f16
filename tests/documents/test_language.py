"""Documents print in the customer's language: Czech customers get Czech documents (texts,
labels and the "Page X of Y" footer), English customers English ones."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from portal.documents import data, document_for, kind_for, read_document, render, render_statement
from portal.documents.service import _invoice_qr
from portal.models import InvoiceType, Language
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


def czech(**kwargs):
    return make_customer(language=Language.CS, **kwargs)


def english(**kwargs):
    return make_customer(language=Language.EN, **kwargs)


def stored_text(db, owner) -> str:
    return pdf_text(read_document(document_for(db, kind_for(owner), owner)))


@dataclass
class Statement:
    start: date
    end: date
    opening: dict
    entries: list
    closing: dict


def statement() -> Statement:
    return Statement(
        start=date(2026, 1, 1), end=date(2026, 3, 31), opening={"CZK": Decimal("0.00")},
        entries=[{"date": date(2026, 1, 1), "kind": "invoice", "reference": "2026-000101", "description": "Invoice 2026-000101",
                  "debit": Decimal("1005.00"), "credit": None, "balance": Decimal("1005.00")}],
        closing={"CZK": Decimal("1005.00")},
    )


# --- invoices ---------------------------------------------------------------------------

def test_czech_customer_gets_a_czech_invoice(db):
    invoice = make_invoice(czech(), paid=Decimal("200.00"))
    assert data.invoice_data(invoice)["language"] == "cs"
    text = stored_text(db, invoice)
    assert "Faktura – daňový doklad" in text
    assert "č. 2026-000123" in text
    for label in ("Datum vystavení", "Datum uskutečnění zdanitelného plnění", "Datum splatnosti 15. 2. 2026",
                  "Variabilní symbol 2026000123", "Konstantní symbol 0308", "Zúčtovací období",
                  "DODAVATEL", "ODBĚRATEL", "IČO", "Sazba DPH", "Základ daně", "Celkem bez DPH 849.17 CZK",
                  "Celkem 1 005.00 CZK", "Již uhrazeno 200.00 CZK", "K úhradě 805.00 CZK", "QR Platba"):
        assert label in text, label
    assert "Strana 1 z 1" in text
    for english_text in ("Due date", "Invoice", "Page 1 of 1", "Variable symbol", "Total"):
        assert english_text not in text, english_text


def test_english_customer_gets_an_english_invoice(db):
    invoice = make_invoice(english())
    assert data.invoice_data(invoice)["language"] == "en"
    text = stored_text(db, invoice)
    assert "Invoice – tax document" in text and "Due date 15. 2. 2026" in text
    assert "Page 1 of 1" in text
    assert "Faktura" not in text and "Strana" not in text


def test_czech_page_footer_counts_every_page(db):
    lines = [(f"Položka {i}: přenos dat", "3", "12.50", "21") for i in range(90)]
    pdf = read_document(document_for(db, kind_for(invoice := make_invoice(czech(), lines=lines)), invoice))
    pages = pdf_pages(pdf)
    text = pdf_text(pdf)
    assert pages >= 3
    assert f"Strana 1 z {pages}" in text and f"Strana {pages} z {pages}" in text
    assert text.count("Popis") == pages  # the translated table header repeats on each page


def test_czech_advance_invoice_and_credit_note(db):
    customer = czech()
    advance = make_invoice(customer, type=InvoiceType.ADVANCE, number="2026-000500")
    text = stored_text(db, advance)
    assert "Zálohová faktura – výzva k platbě" in text
    assert "nikoli daňový doklad" in text
    assert "Datum uskutečnění zdanitelného plnění" not in text

    note = make_credit_note(make_invoice(customer))
    text = stored_text(db, note)
    assert "Opravný daňový doklad (dobropis)" in text
    assert "opravuje fakturu č. 2026-000123 ze dne 1. 2. 2026" in text
    assert "Důvod opravy: Service outage in February" in text


def test_czech_invoice_keeps_the_machine_data_and_an_ascii_file_name(db):
    invoice = make_invoice(czech())
    doc = document_for(db, kind_for(invoice), invoice)
    assert doc.file_name == "invoice-2026-000123.pdf"
    d = data.invoice_data(invoice)
    assert _invoice_qr(d)["payload"].endswith("*MSG:Faktura 2026-000123")
    assert _invoice_qr(d)["label"] == "QR Platba"
    english_d = dict(d, language="en")
    from portal.documents import cii

    assert cii.invoice_xml(d) == cii.invoice_xml(english_d)  # the Factur-X XML does not depend on the language


def test_translated_text_keeps_customer_data_escaped(db):
    customer = czech(first_name="<b>x</b>", last_name="& <i>y</i>")
    invoice = make_invoice(customer, number="2026-000777")
    text = stored_text(db, invoice)
    assert "<b>x</b> & <i>y</i>" in text
    note = make_credit_note(invoice, reason="<script>alert(1)</script> & co")
    text = stored_text(db, note)
    # The reason is a variable of a translated sentence: it prints literally.
    assert "Důvod opravy: <script>alert(1)</script> & co" in text


def test_gettext_escapes_variables_but_not_the_translation():
    callables = render.gettext_callables("cs")
    env = render.jinja_env()
    html = env.from_string(
        '{{ _("This credit note corrects invoice <strong>No. %(number)s</strong> of %(date)s.", number=n, date="1. 2. 2026") }}'
        '|{{ ngettext("%(num)d day", "%(num)d days", 3) }}|{{ ngettext("%(num)d day", "%(num)d days", 5) }}'
        '|{{ ngettext("%(num)d day", "%(num)d days", 1) }}|{{ _("VAT %%") }}'
    ).render(n="<b>1</b>", **callables)
    assert html == (
        "Tento opravný daňový doklad opravuje fakturu <strong>č. &lt;b&gt;1&lt;/b&gt;</strong> ze dne 1. 2. 2026."
        "|3 dny|5 dní|1 den|DPH %"
    )


def test_page_footer_css_per_language():
    assert render.page_footer_css_text("cs") == '@page { @bottom-right { content: "Strana " counter(page) " z " counter(pages); } }'
    assert render.page_footer_css_text("en") == '@page { @bottom-right { content: "Page " counter(page) " of " counter(pages); } }'
    assert render.page_footer_stylesheet("cs") is render.page_footer_stylesheet("cs")  # parsed once
    assert render.translations("xx") is render.translations("en")  # unknown languages print in English


# --- reminders, statements, cancellations, agreements -------------------------------------

def test_czech_reminder(db):
    reminder = make_reminder(czech(), level=2, block_on=date(2026, 3, 20))
    text = stored_text(db, reminder)
    assert "2. upomínka k úhradě" in text and "Stupeň upomínky 2" in text
    assert "Vážená zákaznice, vážený zákazníku" in text
    assert "jsou následující faktury po splatnosti" in text  # two invoices: plural
    assert "Dlužná částka 2 010.00 CZK" in text
    assert "Poplatek za upomínku 100.00 CZK" in text
    assert "K úhradě 2 110.00 CZK" in text
    assert "nejpozději do 8. 3. 2026" in text
    assert "dne 20. 3. 2026 zablokovány" in text
    assert "Strana 1 z 1" in text
    assert "Payment reminder" not in text and "Page 1" not in text


def test_czech_reminder_counts_days_in_czech(db):
    reminder = make_reminder(czech(), level=1, fee=Decimal("0.00"))
    text = stored_text(db, reminder)
    assert "Upomínka k úhradě" in text
    assert "jakmile bude nejstarší faktura 30 dní po splatnosti" in text
    assert "zablokovány až do uhrazení dluhu" in text


def test_english_reminder(db):
    text = stored_text(db, make_reminder(english(), level=2))
    assert "Payment reminder no. 2" in text and "Page 1 of 1" in text
    assert "Upomínka" not in text


def test_czech_statement(db):
    text = pdf_text(render_statement(czech(), statement()))
    assert "Výpis z účtu" in text
    assert "Počáteční zůstatek CZK 0.00 CZK" in text
    assert "Konečný zůstatek CZK 1 005.00 CZK" in text
    assert "Faktura" in text  # the entry's kind
    assert "Strana 1 z 1" in text
    assert "Account statement" not in text and "Page 1" not in text
    empty = {"start": date(2026, 1, 1), "end": date(2026, 1, 31), "opening": {"CZK": 0}, "entries": [], "closing": {"CZK": 0}}
    assert "V tomto období nejsou žádné pohyby." in pdf_text(render_statement(czech(), empty))


def test_english_statement(db):
    text = pdf_text(render_statement(english(), statement()))
    assert "Account statement" in text and "Page 1 of 1" in text
    assert "Výpis" not in text


def test_czech_cancellation_confirmation(db):
    service = make_cancelled_service(czech(), end=date(2026, 4, 30))
    text = stored_text(db, service)
    assert "Potvrzení výpovědi" in text
    assert "Služba končí dne 30. 4. 2026" in text
    assert "Výpovědní lhůta 30 dní" in text
    assert "POSKYTOVATEL" in text and "ZÁKAZNÍK" in text
    assert "Uvedený důvod: Moving abroad" in text
    assert "zohledňuje výpovědní lhůtu 30 dní" in text
    assert "Strana 1 z 1" in text
    assert "Cancellation confirmation" not in text and "Page 1" not in text


def test_english_cancellation_confirmation(db):
    text = stored_text(db, make_cancelled_service(english()))
    assert "Cancellation confirmation" in text and "Page 1 of 1" in text


def test_czech_agreement_and_annex(db):
    customer = czech()
    agreement = make_agreement(customer)
    assert data.agreement_data(agreement)["customer"]["language"] == "cs"
    text = stored_text(db, agreement)
    assert "č. 2026/00042" in text
    assert "Datum uzavření 15. 1. 2026" in text
    assert "POSKYTOVATEL" in text and "ZÁKAZNÍK" in text
    assert "Služby" in text and "měsíčně" in text
    assert "do 31. 1. 2028" in text  # commitment
    assert "30 dní" in text  # notice
    assert "Závazek a výpověď" in text
    assert "Strana 1 z 1" in text
    assert "Concluded on" not in text and "Page 1" not in text

    annex = make_agreement(customer, number="2026/00043", parent=agreement, services=1,
                           atype=make_agreement_type("annex.html", code="ANX", is_annex=True))
    text = stored_text(db, annex)
    assert "Dodatek ke smlouvě č. 2026/00042 uzavřené dne 15. 1. 2026" in text


def test_english_agreement(db):
    text = stored_text(db, make_agreement(english()))
    assert "Concluded on 15. 1. 2026" in text and "Page 1 of 1" in text
    assert "Strana" not in text


def test_agreement_in_a_new_language_is_a_new_version(db):
    """Agreements are versioned by their data's hash, and the language is part of the data:
    a customer who switches language gets the next render in the new language."""
    customer = english()
    agreement = make_agreement(customer)
    first = document_for(db, kind_for(agreement), agreement)
    customer.language = Language.CS
    db.flush()
    second = document_for(db, kind_for(agreement), agreement)
    assert second.version == first.version + 1
    assert "Datum uzavření" in pdf_text(read_document(second))


def test_stored_invoice_is_not_re_rendered_in_a_new_language(db):
    customer = english()
    invoice = make_invoice(customer)
    first = document_for(db, kind_for(invoice), invoice)
    customer.language = Language.CS
    db.flush()
    assert document_for(db, kind_for(invoice), invoice).id == first.id
    assert "Invoice – tax document" in pdf_text(read_document(first))


@pytest.mark.parametrize("language", ["cs", "en"])
def test_every_catalogue_entry_of_the_documents_is_translated(language):
    from babel.messages.pofile import read_po

    with open(render.TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f)
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    if language == "cs":
        untranslated = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
        assert untranslated == []
