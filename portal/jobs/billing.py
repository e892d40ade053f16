"""The billing run as a job: `enqueue_billing_run` and its handler."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import update

from portal.domain.actors import Actor
from portal.extensions import db
from portal.jobs.enqueueing import enqueue
from portal.jobs.handlers import _accepts, _date, _summary, domain_function
from portal.jobs.registry import JobContext, JobError, job_handler
from portal.models import BillingRun, Job


def enqueue_billing_run(run, *, actor: Actor) -> Job:
    """Queue the billing run staff requested (a BillingRun in state previewed) as a job."""
    return enqueue("billing_run", {"period_start": run.period_start, "issue_date": run.issue_date,
                                   "billing_run_id": run.id}, actor=actor)


def _link_billing_run(run_id: int, job_id: int) -> None:
    """Point the requested run at its job in a transaction of its own, before the work starts:
    a run that fails early (even before run_billing touches it) still shows its job's error."""
    with db.engine.begin() as conn:
        conn.execute(update(BillingRun).where(BillingRun.id == run_id).values(job_id=job_id))


@job_handler("billing_run", requires=("period_start",))
def billing_run(ctx: JobContext) -> dict:
    """Bill the period that starts on `period_start` (issue_date optional), or carry out the
    run staff requested (`billing_run_id`, see enqueue_billing_run); the run is linked
    to its job. run_billing commits per batch of customers (a failed run keeps what was
    done and can be run again), so only the link and the job's end are committed here."""
    run_billing = domain_function("portal.domain.billing", "run_billing")
    extra = {"job_id": ctx.job_id} if _accepts(run_billing, "job_id") else {}
    if ctx.params.get("billing_run_id") not in (None, ""):
        # A run staff requested from the browser (billing.request_billing_run): carry it out.
        if not _accepts(run_billing, "run_id"):
            raise JobError("run_billing() in this installation cannot carry out a requested run.")
        extra["run_id"] = int(ctx.params["billing_run_id"])
        _link_billing_run(extra["run_id"], ctx.job_id)
    batch_size = ctx.params.get("batch_size") or current_app.config.get("BILLING_BATCH_SIZE")
    if batch_size and _accepts(run_billing, "batch_size"):
        extra["batch_size"] = int(batch_size)
    run = run_billing(
        ctx.session,
        _date(ctx.params["period_start"]),
        actor=ctx.actor,
        issue_date=_date(ctx.params.get("issue_date")),
        progress=ctx.progress,
        **extra,
    )
    if getattr(run, "job_id", ctx.job_id) is None:
        run.job_id = ctx.job_id
    ctx.session.flush()
    return _summary(run, "billing_run_id", (
        "state", "period_start", "period_end", "customers_count", "invoices_count",
        "charges_count", "net_total", "vat_total", "gross_total", "totals_by_currency",
    ))
