"""Uploaded files a job reads (a bank statement), kept under UPLOADS_DIR."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app

from portal.jobs.registry import JobError

# --- uploads ----------------------------------------------------------------------------------


def uploads_dir(app: Flask | None = None) -> Path:
    app = app or current_app
    return Path(app.config.get("UPLOADS_DIR") or Path(app.instance_path) / "uploads")


def save_upload(data: bytes, file_name: str) -> str:
    """Keep an uploaded file for a job; returns its name inside UPLOADS_DIR. Files are kept
    after the job: the original of what was imported."""
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = re.sub(r"[^a-z0-9.]", "", Path(file_name).suffix.lower())[:10]
    name = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex}{suffix}"
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.replace(folder / name)
    return name


def read_upload(name: str) -> bytes:
    folder = uploads_dir().resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        raise JobError(f"Upload {name!r} is outside the uploads folder.")
    if not path.is_file():
        raise JobError(f"Upload {name!r} is missing from {folder} (is it shared with this consumer?).")
    return path.read_bytes()
