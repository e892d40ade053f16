"""The pages of a background job (billing runs, dunning runs, statement imports): its status
block while it runs, and resuming one whose worker died."""
from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db
from portal.jobs import is_finished, progress_of, reap_interrupted_jobs, resume_job
from portal.models import Job, JobState


def job_or_404(job_id: int, kind: str, *, reap: bool = True) -> Job:
    """The job with this id and kind, else 404. For its page (`reap`), jobs whose lease
    expired are marked interrupted first, so the page stops waiting for a worker that is gone."""
    if reap:
        reap_interrupted_jobs()
    job = db.session.get(Job, job_id)
    if job is None or job.kind != kind:
        abort(404)
    return job


def job_status(job: Job | None) -> dict:
    """What a status block shows: the job, its progress, whether it finished and failed."""
    return {"job": job, "progress": progress_of(job) if job is not None else None,
            "finished": job is not None and is_finished(job),
            "failed": job is not None and job.state == JobState.FAILED}


def resume_step(job: Job, *, actor: Actor, page: Callable[[Job], str], resumed: str):
    """POST …/resume: carry the interrupted job on in a new one and show its page (`page(job)`
    is the address of a job's page); a refusal (already resumed, not interrupted) is shown on
    the old job's page."""
    try:
        new = resume_job(job, actor=actor)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(page(job))
    flash(resumed, "success")
    return redirect(page(new))
