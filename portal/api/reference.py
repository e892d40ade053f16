"""The browsable API reference: Swagger UI from vendored files (static/vendor/swagger-ui) over
the served document; without JavaScript the page lists every operation itself."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

bp = Blueprint("api_reference", __name__)

_METHODS = ("get", "post", "put", "patch", "delete")
# Swagger UI sets style="" on its elements: this page alone allows inline styles.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'self'; object-src 'none'")


def _operations(spec: dict) -> list[dict]:
    rows = []
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                op = item[method]
                rows.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                             "tag": (op.get("tags") or [""])[0]})
    return sorted(rows, key=lambda r: (r["tag"], r["path"], _METHODS.index(r["method"].lower())))


@bp.get("/reference")
def reference():
    api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    spec = api.spec.to_dict()
    html = render_template("api/reference.html", operations=_operations(spec), info=spec.get("info", {}),
                           spec_url=url_for("api-docs.openapi_json"))
    return html, 200, {"Content-Security-Policy": _CSP}
