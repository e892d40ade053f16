"""One template per page; an HTMX request gets only the named block of it."""
from __future__ import annotations

from flask import render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(template: str, block: str | None = None, status: int = 200, **context):
    """Render the whole page, or only `block` when HTMX asked (same URL, same data)."""
    if block and is_htmx():
        return render_block(template, block, **context), status
    return render_template(template, **context), status
