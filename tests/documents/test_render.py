"""The rendering pipeline: shared font configuration, the local-only URL fetcher, escaping."""
from __future__ import annotations

import pytest

from portal.documents import ResourceRefused, render
from tests.documents.doc_fixtures import make_invoice, pdf_text

PAGE = """<!doctype html><html><body><p>Hello</p>{extra}</body></html>"""


def test_renders_a_pdf_with_the_print_stylesheet():
    pdf = render.render_pdf(PAGE.format(extra=""))
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "Hello" in text
    assert "Page 1 of 1" in text  # @page footer: counter(page) / counter(pages)


def test_one_font_configuration_per_process():
    render.render_pdf(PAGE.format(extra=""))
    first = render.font_config()
    render.render_pdf(PAGE.format(extra=""))
    assert render.font_config() is first


def test_external_url_is_refused():
    with pytest.raises(ResourceRefused, match="example.com"):
        render.render_pdf(PAGE.format(extra='<img src="http://example.com/x.png">'))


def test_external_stylesheet_is_refused():
    with pytest.raises(ResourceRefused):
        render.render_pdf(PAGE.format(extra='<link rel="stylesheet" href="https://example.com/evil.css">'))


def test_local_file_outside_the_document_folders_is_refused():
    with pytest.raises(ResourceRefused, match="outside"):
        render.render_pdf(PAGE.format(extra='<img src="file:///etc/hostname">'))
    with pytest.raises(ResourceRefused):
        render.render_pdf(PAGE.format(extra='<img src="../../portal/config.py">'))


def test_data_urls_and_document_folder_files_are_allowed():
    svg = "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>"
    assert render.render_pdf(PAGE.format(extra=f'<img src="{svg}"><link rel="stylesheet" href="print.css">')).startswith(b"%PDF")


def test_html_in_customer_data_prints_literally(db):
    from portal.documents import document_for, kind_for, read_document

    invoice = make_invoice(customer_name="<script>x</script> & <b>Bold</b>")
    text = pdf_text(read_document(document_for(db, kind_for(invoice), invoice)))
    assert "<script>x</script> & <b>Bold</b>" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1234.5", "1 234.50"), ("-100", "−100.00"), ("0", "0.00"), ("1234567.891", "1 234 567.89")],
)
def test_money_filter(value, expected):
    assert render._money(value).replace("\u00a0", " ") == expected


@pytest.mark.parametrize(("value", "expected"), [("99.1736", "99.1736"), ("500.0000", "500.00"), ("99.9999", "99.9999")])
def test_price_filter_keeps_four_decimals(value, expected):
    assert render._price(value) == expected


def _font_names(pdf: bytes) -> set[str]:
    import io

    import pypdf

    names = set()
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            names.add(str(font.get_object()["/BaseFont"]).split("+", 1)[-1])
    return names


def test_documents_use_the_shipped_fonts_even_when_the_system_has_none(tmp_path):
    """PDFs look the same on every machine: the print stylesheet's fonts come from static/fonts,
    not from whatever fontconfig finds — here fontconfig is given no font folder at all."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    conf = tmp_path / "fonts.conf"
    conf.write_text(f"<?xml version='1.0'?><fontconfig><cachedir>{tmp_path}/cache</cachedir></fontconfig>")
    script = (
        "import sys; from portal.documents import render; "
        "sys.stdout.buffer.write(render.render_pdf('<p>Příliš žluťoučký <b>kůň</b> <i>úpěl</i></p>'))"
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    pdf = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    # WeasyPrint names an @font-face font by its family: these are the shipped files.
    assert _font_names(pdf) == {"Portal-Sans", "Portal-Sans-Bold", "Portal-Sans-Italic"}
    assert "Příliš žluťoučký kůň úpěl" in pdf_text(pdf)
