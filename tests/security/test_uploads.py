"""Uploads with the wrong type, size or encoding are refused with a message and write nothing.

The portal's upload is the bank statement import (`portal.domain.statements.import_statement`,
behind the CLI and the staff payments page). The domain is tested directly; the web test
finds every staff page with a file upload form (walking app.url_map) and posts the same
files to it — skipped while no such page exists in this build."""
from __future__ import annotations

import re
import zlib
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from portal.domain.actors import Actor
from portal.domain.statements import MAX_FILE_SIZE, StatementRejected, import_statement
from portal.models import AuditEntry, Payment, StatementImport

SYSTEM = Actor.system("test")
CSV_HEADER = "date;amount;currency;variable_symbol;transaction_id\n"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&lol3;</Document>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&xxe;</BkToCstmrStmt></Document>"""

BAD_FILES: dict[str, tuple[str, bytes]] = {
    "empty": ("statement.csv", b""),
    "blank": ("statement.csv", b"  \n\t\n"),
    "too large": ("statement.csv", (CSV_HEADER + "2026-11-20;605,00;CZK;1;ref\n" * 400_000).encode()[:MAX_FILE_SIZE + 10]),
    "a PDF": ("statement.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
    "a PNG": ("statement.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
    "a ZIP": ("statement.zip", b"PK\x03\x04" + zlib.compress(b"x" * 1000)),
    "random binary": ("statement.csv", bytes((i * 7919) % 256 for i in range(4096))),
    "UTF-16": ("statement.csv", (CSV_HEADER + "2026-11-20;605,00;CZK;1;ref\n").encode("utf-16")),
    "bytes undefined in UTF-8 and Windows-1250": ("statement.csv",
                                                  CSV_HEADER.encode() + b"2026-11-20;605,00;CZK;1;\x81\x83\x88\x90\x98\n"),
    "NUL bytes": ("statement.csv", CSV_HEADER.encode() + b"2026-11-20;605\x00,00;CZK;1;ref\n"),
    "XML that is not a statement": ("statement.xml", b"<?xml version='1.0'?><html><body>hi</body></html>"),
    "XML entity expansion": ("statement.xml", BILLION_LAUGHS),
    "XML external entity": ("statement.xml", EXTERNAL_ENTITY),
    "truncated XML": ("statement.xml", b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'><BkToCstmrStmt>"),
    "HTML": ("statement.csv", b"<html><script>alert(1)</script></html>"),
    "a CSV without the required columns": ("statement.csv", b"name;note\nJana;hello\n"),
}


def _written(db) -> tuple[int, int, int]:
    return (db.scalar(select(func.count()).select_from(Payment)),
            db.scalar(select(func.count()).select_from(StatementImport)),
            db.scalar(select(func.count()).select_from(AuditEntry)))


@pytest.mark.parametrize("what", sorted(BAD_FILES))
def test_the_import_refuses_a_bad_file_with_a_message(db, what):
    name, data = BAD_FILES[what]
    before = _written(db)
    with pytest.raises(StatementRejected) as refused:
        import_statement(db, name, data, actor=SYSTEM)
    db.rollback()
    message = str(refused.value)
    assert message and len(message) < 1000, what
    assert refused.value.field == "file"
    assert "/etc/passwd" not in message and "root:" not in message
    assert _written(db) == before, what


# ------------------------------------------------------------------ the staff upload pages


class _UploadForms(HTMLParser):
    """Forms with a file input: (action, method, file field name, other fields)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "file": None, "fields": {}}
        elif self._form is not None and tag in ("input", "select", "textarea") and a.get("name"):
            if tag == "input" and (a.get("type") or "").lower() == "file":
                self._form["file"] = a["name"]
            elif a["name"] != "csrf_token":
                self._form["fields"][a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form" and self._form is not None:
            if self._form["file"]:
                self.forms.append(self._form)
            self._form = None


def upload_forms(app, client) -> list[tuple[str, dict]]:
    """(page, form) for every staff GET page without arguments that has a file upload form."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff.") or rule.arguments or "GET" not in (rule.methods or ()):
            continue
        resp = client.get(rule.rule)
        if resp.status_code != 200 or resp.mimetype != "text/html":
            continue
        parser = _UploadForms()
        parser.feed(resp.get_data(as_text=True))
        found += [(rule.rule, f) for f in parser.forms]
    return found


def test_staff_upload_pages_refuse_bad_files_with_a_message(app, staff_client, db):
    import io

    forms = upload_forms(app, staff_client)
    if not forms:
        pytest.skip("no staff page with a file upload in this build")
    for page, form in forms:
        action = form["action"] or page
        assert form["method"] == "post", page
        for what, (name, data) in BAD_FILES.items():
            before = _written(db)
            resp = staff_client.post(action, data={**form["fields"], form["file"]: (io.BytesIO(data), name)},
                                     content_type="multipart/form-data")
            assert resp.status_code in (400, 413, 422), (page, what, resp.status_code)
            body = resp.get_data(as_text=True)
            assert re.search(r"field-error|flash|alert|error", body), (page, what)
            db.expire_all()
            assert _written(db)[:2] == before[:2], (page, what)
        # No file at all: a message too, never a 500.
        resp = staff_client.post(action, data=dict(form["fields"]), content_type="multipart/form-data")
        assert resp.status_code in (400, 422), page
