"""Absolute addresses of the portal's pages for e-mails and documents.

E-mails are also written outside a web request (jobs, the CLI), so the address is built from the
`BASE_URL` setting and the app's URL map, never from the current request. The domain asks for a
page by its endpoint; it does not know how the faces lay out their URLs.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app


def external_url(endpoint: str, **values) -> str:
    """The absolute address of `endpoint` with `values`, under BASE_URL."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)
