"""Asking for a job: `enqueue` (through the queue) and `run_here` (in this process)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from portal.domain.actors import Actor
from portal.extensions import db
from portal.jobs.params import actor_to_params, to_json_safe
from portal.jobs.registry import _HANDLERS, UnknownJobKind
from portal.jobs.rows import _write_row
from portal.jobs.worker import execute_job, get_queue
from portal.models import Job, JobState

log = logging.getLogger("portal.jobs")  # one logger for the package, as before it was split


# --- enqueueing -------------------------------------------------------------------------------


def enqueue(kind: str, params: dict[str, Any] | None = None, *, actor: Actor) -> Job:
    """Queue `kind` with `params` (JSON: dates and decimals become strings) for `actor`.
    Commits the session — the caller's pending changes with it — so the consumer finds the
    row. Returns the Job (with the memory:// queue of tests it has already run)."""
    registration = _HANDLERS.get(kind)
    if registration is None:
        raise UnknownJobKind(f"no handler for job kind {kind!r}")
    params = dict(params or {})
    if "actor" in params:
        raise ValueError("the 'actor' parameter is reserved: pass actor=")
    missing = [key for key in registration.requires if params.get(key) in (None, "")]
    if missing:
        raise ValueError(f"job {kind!r} needs {', '.join(missing)}")
    stored = to_json_safe({**params, "actor": actor_to_params(actor)}, strict=True)

    queue = get_queue()
    session = db.session
    job = _new_job(kind, stored, actor)
    task = queue.run_job.s(job.id)
    job.task_id = task.id
    session.commit()
    job_id = job.id
    try:
        queue.huey.enqueue(task)
    except Exception as exc:
        # The queue is unreachable: the row must not wait forever as "queued".
        log.exception("job %s (%s): could not be queued", job_id, kind)
        _write_row(job_id, state=JobState.FAILED, error=f"Could not be queued: {exc}",
                   finished_at=datetime.now(UTC))
        session.expire_all()
        raise
    session.expire(job)  # an immediate queue has already changed the row
    return job


def _new_job(kind: str, stored: dict, actor: Actor) -> Job:
    job = Job(kind=kind, state=JobState.QUEUED, params=stored, result={}, error="",
              created_by_type=actor.type, created_by_id=actor.id)
    db.session.add(job)
    db.session.flush()
    return job


def run_here(kind: str, params: dict[str, Any] | None = None, *, actor: Actor,
             progress: Callable[[int, int], None] | None = None) -> Job:
    """Run `kind` now, in this process (the CLI without --queue), as a job all the same: it
    holds a lease like a consumer's job, so a run killed here is detected and resumed like
    any other. Returns the finished Job (done or failed)."""
    if kind not in _HANDLERS:
        raise UnknownJobKind(f"no handler for job kind {kind!r}")
    params = dict(params or {})
    stored = to_json_safe({**params, "actor": actor_to_params(actor)}, strict=True)
    job = _new_job(kind, stored, actor)
    db.session.commit()
    job_id = job.id
    execute_job(job_id, also_progress=progress)
    db.session.expire_all()
    return db.session.get(Job, job_id)
