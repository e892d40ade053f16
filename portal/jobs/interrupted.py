"""Interrupted jobs: a worker that stopped renewing its lease is reaped; staff resume the job."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from portal.domain import DomainError, audit
from portal.domain.actors import Actor
from portal.extensions import db
from portal.jobs.enqueueing import enqueue
from portal.jobs.rows import _fail_billing_run_of
from portal.jobs.worker import JobQueue, get_queue, lease_seconds
from portal.models import Job, JobState

log = logging.getLogger("portal.jobs")  # one logger for the package, as before it was split


# --- interrupted jobs -------------------------------------------------------------------------


class JobNotResumable(DomainError):
    """Only an interrupted job, not yet resumed, can be resumed."""


def reap_interrupted_jobs(*, queue: JobQueue | None = None, now: datetime | None = None) -> list[int]:
    """Mark every running job whose lease has expired (no heartbeat for JOB_LEASE_SECONDS:
    its worker was killed or its machine lost) as interrupted: failed, with interrupted_at,
    so pages stop waiting and staff can resume it. Its billing run is failed with it.
    Called by the consumer (at start and periodically) and by the pages that show or start
    jobs. Commits its own short transactions; returns the ids it marked."""
    queue = queue or get_queue()
    now = now or datetime.now(UTC)
    expired_before = now - timedelta(seconds=lease_seconds())
    rows = db.session.execute(
        select(Job.id, Job.heartbeat_at, Job.started_at, Job.created_at).where(Job.state == JobState.RUNNING)
    ).all()
    reaped = []
    for job_id, heartbeat_at, started_at, created_at in rows:
        seen = [t for t in (heartbeat_at, started_at, created_at, queue.last_heartbeat(job_id)) if t is not None]
        if seen and max(seen) >= expired_before:
            continue
        with db.engine.begin() as conn:
            # Only if nobody renewed the lease since it was read.
            marked = conn.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.RUNNING,
                       Job.heartbeat_at.is_(None) if heartbeat_at is None else Job.heartbeat_at == heartbeat_at)
                .values(state=JobState.FAILED, interrupted_at=now, finished_at=now,
                        error="Interrupted: the worker running this job stopped (its lease expired); resume it.")
            ).rowcount
            if marked:
                _fail_billing_run_of(job_id, now, "Interrupted: the worker running this run stopped.", conn)
        if marked:
            queue.forget_progress(job_id)
            queue.forget_heartbeat(job_id)
            log.warning("job %s: its worker is gone (no heartbeat since %s): interrupted", job_id,
                        max(seen) if seen else None)
            reaped.append(job_id)
    if reaped:
        db.session.expire_all()
    return reaped


def is_resumable(job: Job) -> bool:
    return job.state == JobState.FAILED and job.interrupted_at is not None and job.resumed_by_id is None


def resume_job(job: Job, *, actor: Actor) -> Job:
    """Carry an interrupted job on in a new job with the same parameters: what the lost
    worker committed stays (billing and dunning commit per batch, imports skip statements
    already imported), the new job does the rest — the outcome of an uninterrupted run.
    A job is resumed once (the old one points at the new one); audited. Commits."""
    session = db.session
    if not is_resumable(job):
        raise JobNotResumable(_l("Only an interrupted job can be resumed, and only once."))
    claimed = session.execute(
        update(Job).where(Job.id == job.id, Job.resumed_by_id.is_(None), Job.interrupted_at.is_not(None))
        .values(resumed_by_id=0)  # claimed; the new job's id follows
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise JobNotResumable(_l("Only an interrupted job can be resumed, and only once."))
    params = dict(job.params or {})
    params.pop("actor", None)
    old_id, kind = job.id, job.kind
    audit.record(session, actor, "job.resumed", "job", old_id, {"kind": kind})
    new = enqueue(kind, params, actor=actor)  # commits the claim and the audit entry with it
    session.execute(update(Job).where(Job.id == old_id).values(resumed_by_id=new.id))
    session.commit()
    return new
