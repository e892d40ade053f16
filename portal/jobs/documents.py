"""Rendering a stored document as a job."""
from __future__ import annotations

from portal.jobs.handlers import _summary, domain_function
from portal.jobs.registry import JobContext, JobError, job_handler
from portal.models import DocumentKind


@job_handler("render_document", requires=("document_kind", "owner_id"))
def render_document(ctx: JobContext) -> dict:
    """Render (or re-render) the document of `document_kind` for `owner_id`."""
    render = domain_function("portal.documents", "render_document")
    try:
        kind = DocumentKind(ctx.params["document_kind"])
    except ValueError as exc:
        raise JobError(f"Unknown document kind {ctx.params['document_kind']!r}.") from exc
    document = render(ctx.session, kind, int(ctx.params["owner_id"]))
    ctx.session.flush()
    return _summary(document, "stored_document_id", ("file_name", "version", "sha256"))
