"""Request attachments in views (both faces): the files of a form's file field, the limits
from the settings, and the download — always an attachment, never inline, never HTML."""
from __future__ import annotations

from flask import Response, current_app

from portal.documents import attachment_disposition
from portal.domain.request_attachments import Upload, check_uploads, read_attachment
from portal.models import RequestAttachment


def uploads_of(field) -> list[Upload]:
    """The files of a MultipleFileField, checked (AttachmentRefused names the bad one)."""
    files = [(f.filename or "", f.read()) for f in (field.data or []) if f is not None and hasattr(f, "read")]
    return check_uploads(files, max_bytes=int(current_app.config["REQUEST_ATTACHMENT_MAX_BYTES"]),
                         max_count=int(current_app.config["REQUEST_ATTACHMENT_MAX_COUNT"]))


def send_attachment(attachment: RequestAttachment) -> Response:
    # The stored type is one of the allow-list's (sniffed on upload); nosniff keeps a browser
    # from guessing another, and the disposition keeps it from rendering the file in the page.
    mimetype = "text/plain; charset=utf-8" if attachment.content_type == "text/plain" else attachment.content_type
    resp = Response(read_attachment(attachment), content_type=mimetype)
    resp.headers["Content-Disposition"] = attachment_disposition(attachment.file_name)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
