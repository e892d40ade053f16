"""Bank statement imports as jobs: the bytes go to an upload, the queue carries its name."""
from __future__ import annotations

from portal.domain.actors import Actor
from portal.jobs.enqueueing import enqueue
from portal.jobs.handlers import _summary, domain_function
from portal.jobs.registry import JobContext, job_handler
from portal.jobs.uploads import read_upload, save_upload
from portal.models import Job


def enqueue_statement_import(file_name: str, data: bytes, *, actor: Actor) -> Job:
    """Queue a bank statement import: the bytes go to a file, the queue carries its name."""
    upload = save_upload(data, file_name)
    return enqueue("statement_import", {"file_name": file_name, "upload": upload}, actor=actor)


@job_handler("statement_import", requires=("file_name", "upload"))
def statement_import(ctx: JobContext) -> dict:
    """Import the bank statement saved as `upload` (see enqueue_statement_import)."""
    import_statement = domain_function(("portal.domain.statements", "portal.domain.payments"), "import_statement")
    data = read_upload(ctx.params["upload"])
    imported = import_statement(ctx.session, ctx.params["file_name"], data, actor=ctx.actor, progress=ctx.progress)
    ctx.session.flush()
    return _summary(imported, "statement_import_id", (
        "file_name", "format", "payments_count", "duplicates_count", "matched_count",
        "unmatched_count", "total",
    ))
