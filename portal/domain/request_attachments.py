"""Files on request replies, both ways: an allow-list of types decided by the bytes (a PDF
must start like a PDF, whatever its name says), a size and a count limit, and storage like
documents' (the documents folder, named by the hash, the hash checked on reading)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePath

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.orm import Session

from portal.documents import storage
from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import RequestAttachment, RequestComment

FIELD = "attachments"
# Content type → the extensions a file of it may carry.
ALLOWED = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "text/plain": (".txt",),
}
# Plain text that a browser would take for markup (if anyone ever served it inline) is refused.
_MARKUP_STARTS = ("<!doctype", "<html", "<head", "<body", "<script", "<svg", "<?xml", "<iframe")


class AttachmentRefused(DomainError):
    """A file of a type not allowed, too big, or too many files."""

    field = FIELD

    def __init__(self, message: str):
        super().__init__(message, FIELD)


@dataclass(frozen=True)
class Upload:
    file_name: str
    data: bytes
    content_type: str


def sniff(data: bytes) -> str | None:
    """The allowed type these bytes are, by their first bytes (plain text: UTF-8 without
    control characters and not markup), else None."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in text):
        return None
    if text.lstrip().lower().startswith(_MARKUP_STARTS):
        return None
    return "text/plain"


def _clean_name(name: str) -> str:
    """The name without any folder a browser sent, at most 200 characters (extension kept)."""
    base = PurePath((name or "").replace("\\", "/")).name.strip() or "file"
    if len(base) > 200:
        suffix = PurePath(base).suffix[:20]
        base = base[: 200 - len(suffix)] + suffix
    return base


def check_uploads(files: list[tuple[str, bytes]], *, max_bytes: int, max_count: int) -> list[Upload]:
    """Every file allowed, or AttachmentRefused naming the first that is not (nothing is kept
    then). Empty file inputs (no name, no bytes) are skipped."""
    files = [(name, data) for name, data in files if name or data]
    if len(files) > max_count:
        raise AttachmentRefused(ngettext("Attach at most %(num)d file.", "Attach at most %(num)d files.", max_count))
    uploads = []
    for name, data in files:
        clean = _clean_name(name)
        if not data:
            raise AttachmentRefused(_("%(name)s is empty.", name=clean))
        if len(data) > max_bytes:
            raise AttachmentRefused(_("%(name)s is larger than %(size)s MB.", name=clean,
                                      size=f"{max_bytes / 1_000_000:g}"))
        content_type = sniff(data)
        if content_type is None or PurePath(clean).suffix.lower() not in ALLOWED[content_type]:
            raise AttachmentRefused(_("%(name)s is not a PDF, PNG, JPEG or plain text file.", name=clean))
        uploads.append(Upload(clean, data, content_type))
    return uploads


def attach(session: Session, comment: RequestComment, uploads: list[Upload], actor: Actor) -> list[RequestAttachment]:
    """Store the checked files and record them on `comment`, audited (in the caller's
    transaction: a refusal later rolls the rows back; a stored file without a row is never
    served)."""
    rows: list[RequestAttachment] = []
    if not uploads:
        return rows
    request = comment.request
    for upload in uploads:
        digest = storage.sha256(upload.data)
        # The hash names the bytes; the random part keeps two uploads of one file apart.
        key = f"attachment/{request.created_at:%Y}/{request.id}-{comment.id}-{secrets.token_hex(4)}-{digest[:16]}"
        storage.write(key, upload.data)
        row = RequestAttachment(comment_id=comment.id, request_id=request.id, customer_id=request.customer_id,
                                file_name=upload.file_name, content_type=upload.content_type,
                                size=len(upload.data), sha256=digest, storage_key=key)
        session.add(row)
        rows.append(row)
    session.flush()
    record(session, actor, "request.attached", "customer_request", request.id,
           {"comment_id": comment.id, "files": [f"{r.file_name} ({r.content_type}, {r.size} B)" for r in rows]},
           customer_id=request.customer_id)
    return rows


def read_attachment(attachment: RequestAttachment) -> bytes:
    """The stored bytes, their hash checked (DocumentMissing / DocumentTampered otherwise)."""
    return storage.read(attachment.storage_key, attachment.sha256)
