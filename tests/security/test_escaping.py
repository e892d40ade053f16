"""HTML and JavaScript typed into any text field a customer can edit comes back escaped:
on every selfcare page, on the staff pages that show customers (walked from app.url_map, so
pages added later are covered), on the form-error pages that echo what was typed, and in
PDFs (the text extracted from the PDF shows the literal characters, not rendered markup)."""
from __future__ import annotations

import io
import re

from pypdf import PdfReader
from sqlalchemy import update

from portal.models import Contact, CustomerRequest, Invoice, RequestComment
from tests.conftest import login_operator
from tests.factories import OperatorFactory
from tests.selfcare.conftest import make_invoice

SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOAD = f"{SCRIPT}{IMG}"
SHORT = "<b>x</b>'\"&"  # fits a postal code (20 characters)
RAW_MARKERS = ("<script>alert(", "<img src=x onerror", "<b>x</b>")
ESCAPED = "&lt;script&gt;alert("

# Which route argument is filled from which of the customer's rows.
ARGUMENTS = {"customer_id": "customer", "service_id": "service", "agreement_id": "agreement",
             "invoice_id": "invoice", "request_id": "request", "payment_id": "payment", "contact_id": "contact",
             "reminder_id": "reminder", "attachment_id": "attachment"}


def _ids(world) -> dict[str, int]:
    return {"customer": world.customer.id, "service": world.service.id, "agreement": world.agreement.id,
            "invoice": world.invoice.id, "request": world.request.id, "payment": world.payment.id,
            "contact": world.contact.id, "reminder": world.reminder.id,
            "attachment": world.attachment.id}


def get_urls(app, prefix: str, world) -> list[str]:
    """Every GET route of a blueprint, its arguments filled from the customer's rows (other
    integer arguments — a run, an import, an operator — with 1, the first of its kind)."""
    ids = _ids(world)
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(prefix) or "GET" not in (rule.methods or ()):
            continue
        values = {}
        for arg in rule.arguments:
            if arg in ARGUMENTS:
                values[arg] = ids[ARGUMENTS[arg]]
            elif type(rule._converters[arg]).__name__ == "IntegerConverter":
                values[arg] = 1
        if len(values) == len(rule.arguments):
            urls.append(adapter.build(rule.endpoint, values))
    return sorted(urls)


def assert_no_raw_markup(body: str, where: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in body, f"{where}: unescaped {marker!r}"


def _save_everything(client, world, db) -> None:
    """Type the payload into every text field the customer can change."""
    c = world.customer
    resp = client.post("/requests", data={"kind": "move", "service_id": str(world.service.id), "subject": PAYLOAD, "message": PAYLOAD,
                                          "new_street": PAYLOAD, "new_city": PAYLOAD, "new_postal_code": SHORT})
    assert resp.status_code in (302, 303), resp.status_code
    assert client.post(f"/requests/{world.request.id}/comments", data={"body": PAYLOAD}).status_code in (302, 303)
    assert client.post("/profile/address", data={"street": PAYLOAD, "city": PAYLOAD, "postal_code": "602 00",
                                                 "country": "CZ"}).status_code in (200, 302, 303)
    db.expire_all()
    assert db.get(type(c), c.id).street == PAYLOAD  # really saved: the pages below must show it
    assert db.query(CustomerRequest).filter_by(subject=PAYLOAD).count() == 1
    assert db.query(RequestComment).filter_by(body=PAYLOAD).count() == 2  # the new request's message, the reply


def test_selfcare_pages_escape_what_the_customer_typed(app, customer_client, mine, db):
    _save_everything(customer_client, mine, db)
    seen_escaped = set()
    for url in get_urls(app, "selfcare.", mine) + [f"/requests/{r.id}" for r in
                                                  db.query(CustomerRequest).filter_by(subject=PAYLOAD)]:
        resp = customer_client.get(url)
        assert resp.status_code < 500, url
        if resp.mimetype != "text/html":
            continue
        body = resp.get_data(as_text=True)
        assert_no_raw_markup(body, url)
        if ESCAPED in body:
            seen_escaped.add(url)
    # The payload is shown (escaped) where it belongs.
    assert "/profile" in seen_escaped
    assert f"/requests/{mine.request.id}" in seen_escaped
    assert any(u.startswith("/requests/") and u != f"/requests/{mine.request.id}" for u in seen_escaped)


def test_form_errors_echo_the_input_escaped(customer_client, mine):
    """A refused form shows the typed value again: escaped."""
    for url, data in (
        ("/profile/contacts", {"kind": "email", "value": PAYLOAD, "purpose": "general"}),
        ("/profile/contacts", {"kind": "phone", "value": PAYLOAD, "purpose": "general"}),
        ("/profile/address", {"street": PAYLOAD, "city": PAYLOAD, "postal_code": "x" * 50, "country": "CZ"}),
        ("/requests", {"kind": "question", "subject": PAYLOAD, "message": ""}),
        (f"/requests/{mine.request.id}/comments", {"body": PAYLOAD * 1000}),
    ):
        resp = customer_client.post(url, data=data)
        assert resp.status_code == 422, (url, resp.status_code)
        assert_no_raw_markup(resp.get_data(as_text=True), url)
        assert ESCAPED in resp.get_data(as_text=True), url


def test_cancellation_identify_form_echoes_escaped(client):
    resp = client.post("/cancel", data={"customer_number": SHORT, "email": PAYLOAD}, follow_redirects=True)
    assert resp.status_code in (200, 422)
    assert_no_raw_markup(resp.get_data(as_text=True), "/cancel")


def test_staff_pages_escape_what_the_customer_typed(app, client, customer_client, mine, db, make_client):
    _save_everything(customer_client, mine, db)
    db.add(Contact(customer_id=mine.customer.id, kind="phone", value=SHORT, value_key="", purpose="general"))
    db.commit()
    op = OperatorFactory(admin=True)
    db.commit()
    staff = make_client()
    assert login_operator(staff, op.email).status_code == 302
    urls = get_urls(app, "staff.", mine)
    assert "/staff/" in urls
    searches = [u for u in urls if u.rstrip("/").endswith("/customers")]
    urls += [f"{u}?q={mine.customer.last_name[:4]}" for u in searches]
    for url in urls:
        for resp in (staff.get(url), staff.get(url, headers={"HX-Request": "true"})):
            assert resp.status_code < 500, url
            if resp.mimetype == "text/html":
                assert_no_raw_markup(resp.get_data(as_text=True), url)


def _pdf_text(data: bytes) -> str:
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return re.sub(r"\s+", "", text)


def test_pdfs_print_markup_as_text(customer_client, mine, db):
    """WeasyPrint renders HTML: unescaped, "<b>x</b>" would print as a bold "x"."""
    street = "<b>x</b> <i>Main</i> 7"
    assert customer_client.post("/profile/address", data={"street": street, "city": "<u>Brno</u>",
                                                          "postal_code": "602 00", "country": "CZ"}
                                ).status_code in (200, 302, 303)
    # An invoice copies the address at issue; this one was issued after the change.
    invoice = make_invoice(mine.customer, service=mine.service)
    db.execute(update(Invoice).where(Invoice.id == invoice.id)
               .values(customer_address=f"{street}\n602 00 <u>Brno</u>\nCZ"))
    db.commit()
    expected = re.sub(r"\s+", "", street)
    for url in (f"/agreements/{mine.agreement.id}/pdf", f"/invoices/{invoice.id}/pdf",
                "/statement?start=2025-01-01&end=2026-12-31&format=pdf"):
        resp = customer_client.get(url)
        assert resp.status_code == 200, url
        assert resp.mimetype == "application/pdf", url
        text = _pdf_text(resp.data)
        assert expected in text, (url, text[:500])
        assert "<u>Brno</u>" in text, url
