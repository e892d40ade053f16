"""Files on request replies, both ways: allowed types by their bytes, the size and count
limits, nothing half-saved, downloads only (attachment, nosniff, never HTML), and who may
fetch them (the customer their own and never a staff note's; staff with requests.handle in
their locations)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from portal.domain.request_attachments import AttachmentRefused, check_uploads, sniff
from portal.models import AuditEntry, RequestAttachment, RequestComment
from tests.conftest import login_operator
from tests.factories import LocationFactory, OperatorFactory
from tests.selfcare.conftest import field_error, text

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 32


def _count(db, model=RequestAttachment):
    return db.scalar(select(func.count()).select_from(model))


def _reply(client, request_id, files, body="See the file"):
    data = {"body": body, "attachments": [(io.BytesIO(d), n) for n, d in files]}
    return client.post(f"/requests/{request_id}/comments", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(("data", "expected"), [
    (PDF, "application/pdf"), (PNG, "image/png"), (JPEG, "image/jpeg"), (b"Router: TP-Link\n", "text/plain"),
    (b"<html><script>alert(1)</script>", None), (b"  <!DOCTYPE html>", None), (b"MZ\x90\x00\x03", None),
    (b"\x00\x01binary", None), (b"<svg onload=x>", None),
])
def test_sniff(data, expected):
    assert sniff(data) == expected


def test_the_name_must_match_the_bytes_and_limits_hold():
    with pytest.raises(AttachmentRefused):
        check_uploads([("invoice.pdf", b"<html>hi</html>")], max_bytes=1000, max_count=5)
    with pytest.raises(AttachmentRefused):
        check_uploads([("photo.png", PDF)], max_bytes=1000, max_count=5)
    with pytest.raises(AttachmentRefused):
        check_uploads([("a.pdf", PDF)] * 3, max_bytes=1000, max_count=2)
    with pytest.raises(AttachmentRefused):
        check_uploads([("a.pdf", PDF + b"x" * 1000)], max_bytes=1000, max_count=2)
    [upload] = check_uploads([("C:\\Users\\jana\\scan.PDF", PDF)], max_bytes=1000, max_count=2)
    assert upload.file_name == "scan.PDF" and upload.content_type == "application/pdf"


def test_customer_attaches_and_downloads(customer_client, mine, db):
    resp = _reply(customer_client, mine.request.id, [("router.png", PNG), ("notes.txt", b"It drops at 8 pm.\n")])
    assert resp.status_code == 302, text(resp)[:500]
    rows = db.scalars(select(RequestAttachment).where(RequestAttachment.id > mine.attachment.id)
                      .order_by(RequestAttachment.id)).all()
    assert [(r.file_name, r.content_type, r.customer_id) for r in rows] == [
        ("router.png", "image/png", mine.customer.id), ("notes.txt", "text/plain", mine.customer.id)]
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "request.attached")).changes["files"]
    html = text(customer_client.get(f"/requests/{mine.request.id}"))
    url = f"/requests/{mine.request.id}/attachments/{rows[1].id}"
    assert url in html and "notes.txt" in html
    got = customer_client.get(url)
    assert got.status_code == 200 and got.data == b"It drops at 8 pm.\n"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.mimetype == "text/plain" and "html" not in got.headers["Content-Type"]
    # The wrong request in the URL is a 404 too.
    assert customer_client.get(f"/requests/{mine.request.id + 999}/attachments/{rows[1].id}").status_code == 404


@pytest.mark.parametrize(("files", "message"), [
    ([("page.html", b"<html><body>hi</body></html>")], "is not a PDF, PNG, JPEG or plain text file"),
    ([("fake.pdf", b"MZ\x90\x00 not a pdf \x00")], "is not a PDF, PNG, JPEG or plain text file"),
    ([("x.pdf", PDF)] * 6, "Attach at most 5 files."),
    ([("empty.txt", b"")], "is empty"),
])
def test_bad_files_are_refused_next_to_the_field_and_nothing_is_saved(customer_client, mine, db, files, message):
    comments, files_before = _count(db, RequestComment), _count(db)
    resp = _reply(customer_client, mine.request.id, files)
    assert resp.status_code == 422
    assert message in field_error(text(resp), "attachments")
    assert _count(db) == files_before and _count(db, RequestComment) == comments


def test_too_big_is_refused(customer_client, mine, db, app, monkeypatch):
    monkeypatch.setitem(app.config, "REQUEST_ATTACHMENT_MAX_BYTES", 100)
    before = _count(db)
    resp = _reply(customer_client, mine.request.id, [("big.pdf", PDF + b"x" * 200)])
    assert resp.status_code == 422 and "larger than" in field_error(text(resp), "attachments")
    assert _count(db) == before


def test_another_customers_attachment_is_404(customer_client, mine, theirs, db, make_client):
    other = make_client()
    from portal.models import CustomerLogin
    from tests.conftest import login_customer
    from tests.factories import CustomerLoginFactory

    login = CustomerLoginFactory(customer=theirs.customer)
    db.commit()
    assert login_customer(other, login.email).status_code == 302
    assert _reply(other, theirs.request.id, [("theirs.pdf", PDF)]).status_code == 302
    row = db.scalar(select(RequestAttachment).where(RequestAttachment.file_name == "theirs.pdf"))
    for foreign in (row, theirs.attachment):
        assert customer_client.get(f"/requests/{theirs.request.id}/attachments/{foreign.id}").status_code == 404
    assert customer_client.get(f"/requests/{mine.request.id}/attachments/{row.id}").status_code == 404
    assert db.get(CustomerLogin, login.id) is not None


def _staff(make_client, db, rights=("requests.handle",), locations=()):
    op = OperatorFactory(rights=tuple(rights))
    op.locations = list(locations)
    db.commit()
    client = make_client()
    assert login_operator(client, op.email).status_code == 302
    return client


def _staff_reply(client, request_id, files, visibility="customer"):
    data = {"body": "Here is the guide", "visibility": visibility,
            "attachments": [(io.BytesIO(d), n) for n, d in files]}
    return client.post(f"/staff/requests/{request_id}/comments", data=data, content_type="multipart/form-data")


def test_staff_attach_and_customer_downloads_but_never_a_notes_file(make_client, customer_client, mine, db):
    staff = _staff(make_client, db)
    assert _staff_reply(staff, mine.request.id, [("guide.pdf", PDF)]).status_code == 302
    assert _staff_reply(staff, mine.request.id, [("internal.pdf", PDF)], visibility="internal").status_code == 302
    public, note = db.scalars(select(RequestAttachment).where(RequestAttachment.id > mine.attachment.id)
                              .order_by(RequestAttachment.id)).all()
    got = customer_client.get(f"/requests/{mine.request.id}/attachments/{public.id}")
    assert got.status_code == 200 and got.data == PDF and got.mimetype == "application/pdf"
    assert customer_client.get(f"/requests/{mine.request.id}/attachments/{note.id}").status_code == 404
    assert "internal.pdf" not in text(customer_client.get(f"/requests/{mine.request.id}"))
    staff_got = staff.get(f"/staff/requests/{mine.request.id}/attachments/{note.id}")
    assert staff_got.status_code == 200 and staff_got.headers["Content-Disposition"].startswith("attachment;")
    assert "internal.pdf" in text(staff.get(f"/staff/requests/{mine.request.id}"))


def test_staff_bad_file_is_refused(make_client, mine, db):
    staff = _staff(make_client, db)
    comments, files_before = _count(db, RequestComment), _count(db)
    resp = _staff_reply(staff, mine.request.id, [("x.html", b"<html></html>")])
    assert resp.status_code == 422 and "is not a PDF" in field_error(text(resp), "attachments")
    assert _count(db) == files_before and _count(db, RequestComment) == comments


def test_staff_right_and_location(make_client, customer_client, mine, db):
    row = mine.attachment
    url = f"/staff/requests/{mine.request.id}/attachments/{row.id}"
    assert _staff(make_client, db, rights=("customers.read",)).get(url).status_code == 403
    elsewhere = _staff(make_client, db, locations=[LocationFactory()])
    assert elsewhere.get(url).status_code == 404
    assert _staff_reply(elsewhere, mine.request.id, [("b.pdf", PDF)]).status_code == 404
    assert _count(db) == 1
    assert _staff(make_client, db).get(url).status_code == 200
