"""Where rendered files live: plain files under DOCUMENTS_DIR, named by a storage key like
"invoice/2026/123-v1-0123456789ab.pdf", written atomically, read back with their hash checked."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flask import current_app

from .render import DocumentError


class DocumentMissing(DocumentError):
    """The stored file is gone."""


class DocumentTampered(DocumentError):
    """The stored file's bytes no longer hash to the recorded sha256."""


def documents_dir() -> Path:
    return Path(current_app.config["DOCUMENTS_DIR"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def storage_key(kind: str, year: int, owner_id: int, version: int, digest: str) -> str:
    return f"{kind}/{year}/{owner_id}-v{version}-{digest[:12]}.pdf"


def path_for(key: str, root: Path | None = None) -> Path:
    base = (root or documents_dir()).resolve()
    path = (base / key).resolve()
    if not path.is_relative_to(base):
        raise DocumentError(f"storage key escapes the documents folder: {key!r}")
    return path


def write(key: str, data: bytes, root: Path | None = None) -> Path:
    """Write atomically (temporary file + rename): a reader never sees half a PDF."""
    path = path_for(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(key: str, expected_sha256: str | None = None, root: Path | None = None) -> bytes:
    path = path_for(key, root)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DocumentMissing(f"stored document missing: {key}") from exc
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise DocumentTampered(f"stored document changed on disk: {key}")
    return data
