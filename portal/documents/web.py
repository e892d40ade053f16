"""Serving documents from views: the stored bytes with an ETag (the sha256), 304 on a
conditional GET, a readable ASCII file name, private caching."""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Response, request

from portal.models import StoredDocument

from .service import read_document


def _ascii_file_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip("-") or "document.pdf"
    return ascii_name


def _disposition(file_name: str, inline: bool) -> str:
    ascii_name = _ascii_file_name(file_name)
    value = f'{"inline" if inline else "attachment"}; filename="{ascii_name}"'
    if ascii_name != file_name:
        value += f"; filename*=UTF-8''{quote(file_name)}"
    return value


def send_document(doc: StoredDocument, *, inline: bool = False) -> Response:
    """A response with the stored document. A request whose If-None-Match carries the
    document's sha256 gets a 304 without the file being read."""
    if request.if_none_match.contains(doc.sha256):
        resp = Response(status=304)
    else:
        resp = Response(read_document(doc), mimetype=doc.content_type or "application/pdf")
        resp.headers["Content-Disposition"] = _disposition(doc.file_name, inline)
    resp.set_etag(doc.sha256)
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def attachment_disposition(file_name: str) -> str:
    """Content-Disposition for a download (never inline), with an ASCII and a UTF-8 name."""
    return _disposition(file_name, False)


def send_pdf(data: bytes, file_name: str, *, inline: bool = False) -> Response:
    """A response for a PDF rendered on demand (e.g. a statement): never cached."""
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = _disposition(file_name, inline)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def send_xml(data: bytes, file_name: str) -> Response:
    """A response for XML taken from a stored document (its PDF's hash is the ETag)."""
    resp = Response(data, mimetype="application/xml")
    resp.headers["Content-Disposition"] = _disposition(file_name, False)
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
