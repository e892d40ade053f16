"""The queue and the worker: an app's huey (JobQueue, built on first use from HUEY_URL) and
running one job to its end (execute_job) with its lease and throttled progress."""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app
from flask_babel import force_locale
from huey import MemoryHuey, RedisHuey, SqliteHuey, signals
from huey.exceptions import TaskLockedException
from sqlalchemy import update

from portal.domain import DomainError
from portal.extensions import db
from portal.jobs.params import actor_from_params, to_json_safe
from portal.jobs.registry import _HANDLERS, _PERIODIC, JobContext, JobError
from portal.jobs.rows import _fail_billing_run_of, _write_progress_row, _write_row
from portal.models import Job, JobState

log = logging.getLogger("portal.jobs")  # one logger for the package, as before it was split


PROGRESS_INTERVAL = 0.5  # seconds between progress writes: about two a second at most
ERROR_MAX_LENGTH = 4000
DEFAULT_QUEUE_NAME = "portal"
_clock = time.monotonic  # replaced by tests to step through the throttle


# --- the queue --------------------------------------------------------------------------------


def _build_huey(url: str, name: str, instance_path: str):
    # The job row keeps results; huey's result store would only fill up.
    if url.startswith("memory://"):
        return MemoryHuey(name, immediate=True, results=False)
    if url.startswith("sqlite://"):
        path = url[len("sqlite:///"):]
        if not path:
            raise ValueError(f"HUEY_URL {url!r} names no file")
        file = Path(path) if Path(path).is_absolute() else Path(instance_path) / path
        file.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(file), results=False)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    raise ValueError(f"HUEY_URL {url!r}: expected sqlite:///path, redis://… or memory://")


class JobQueue:
    """An app's huey and the task that runs jobs on it."""

    def __init__(self, app: Flask, url: str | None = None, name: str | None = None):
        self.app = app
        self.url = url or app.config["HUEY_URL"]
        self.name = name or app.config.get("HUEY_NAME") or DEFAULT_QUEUE_NAME
        self.huey = _build_huey(self.url, self.name, app.instance_path)

        def run_job(job_id: int) -> None:
            # No request, so no user language: the default, until a handler chooses
            # (e.g. the customer's language for their document).
            with app.app_context(), force_locale(app.config.get("BABEL_DEFAULT_LOCALE") or "en"):
                execute_job(job_id, self)

        self.run_job = self.huey.task(name="run_job")(run_job)
        self._periodic = {}
        for item in _PERIODIC.values():
            self._schedule(item)

        interrupted = getattr(signals, "SIGNAL_INTERRUPTED", None)
        if interrupted:  # huey ≥ 3: a consumer stopped with jobs in flight
            self.huey.signal(interrupted)(self._interrupted)

    def _schedule(self, item) -> None:
        app, name = self.app, item.name

        def run_periodic() -> None:
            # One at a time across consumers: each consumer's scheduler enqueues it.
            try:
                with self.huey.lock_task(f"periodic:{name}"), app.app_context():
                    item.fn(app)
            except TaskLockedException:
                log.info("periodic %s: still running elsewhere, skipped", name)

        self._periodic[name] = self.huey.periodic_task(item.schedule, name=name)(run_periodic)

    def run_periodic_soon(self, name: str) -> bool:
        """Queue a periodic task's work now rather than at its next turn (a consumer picks it
        up within a second). Not on an immediate queue: it would run inside the request."""
        if self.immediate or name not in self._periodic:
            return False
        try:
            self._periodic[name]()
        except Exception:  # the periodic run comes anyway; never fail the caller for this
            log.warning("periodic %s: could not be queued now", name, exc_info=True)
            return False
        return True

    @property
    def immediate(self) -> bool:
        return bool(self.huey.immediate)

    def describe(self) -> str:
        """The URL without a password, for logs and the CLI."""
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", self.url)

    def _interrupted(self, _signal, task, *args, **kwargs) -> None:
        job_id = task.args[0] if task.args else None
        if job_id is None:
            return
        with self.app.app_context():
            now = datetime.now(UTC)
            if _write_row(job_id, only_running=True, state=JobState.FAILED, interrupted_at=now, finished_at=now,
                          error="Interrupted: the job consumer stopped while the job ran; resume it."):
                _fail_billing_run_of(job_id, now, "Interrupted: the job consumer stopped while the run ran.")

    # The lease's heartbeat, also in huey's key-value store: on SQLite the row cannot be
    # written while the job's own transaction holds the write lock.
    def _heartbeat_key(self, job_id: int) -> str:
        return f"job-heartbeat:{job_id}"

    def publish_heartbeat(self, job_id: int, at: datetime) -> None:
        try:
            self.huey.put(self._heartbeat_key(job_id), at.timestamp())
        except Exception:
            log.warning("job %s: could not publish its heartbeat", job_id, exc_info=True)

    def last_heartbeat(self, job_id: int) -> datetime | None:
        try:
            value = self.huey.get(self._heartbeat_key(job_id), peek=True)
        except Exception:
            log.warning("job %s: could not read its heartbeat", job_id, exc_info=True)
            return None
        return datetime.fromtimestamp(float(value), UTC) if value else None

    def forget_heartbeat(self, job_id: int) -> None:
        try:
            self.huey.delete(self._heartbeat_key(job_id))
        except Exception:
            log.warning("job %s: could not clear its heartbeat", job_id, exc_info=True)

    # Live progress, in huey's key-value store (never blocked by the job's transaction).
    def _progress_key(self, job_id: int) -> str:
        return f"job-progress:{job_id}"

    def publish_progress(self, job_id: int, done: int, total: int) -> None:
        try:
            self.huey.put(self._progress_key(job_id), (done, total))
        except Exception:  # progress is a courtesy; never fail the job for it
            log.warning("job %s: could not publish progress", job_id, exc_info=True)

    def live_progress(self, job_id: int) -> tuple[int, int] | None:
        try:
            return self.huey.get(self._progress_key(job_id), peek=True)
        except Exception:
            log.warning("job %s: could not read live progress", job_id, exc_info=True)
            return None

    def forget_progress(self, job_id: int) -> None:
        try:
            self.huey.delete(self._progress_key(job_id))
        except Exception:
            log.warning("job %s: could not clear live progress", job_id, exc_info=True)


_queue_lock = threading.Lock()


def get_queue(app: Flask | None = None) -> JobQueue:
    """The app's job queue, built on first use from HUEY_URL."""
    app = app or current_app._get_current_object()
    queue = app.extensions.get("jobs")
    if queue is None:
        with _queue_lock:
            queue = app.extensions.get("jobs")
            if queue is None:
                queue = app.extensions["jobs"] = JobQueue(app)
    return queue


def get_huey(app: Flask | None = None):
    return get_queue(app).huey


# --- running ----------------------------------------------------------------------------------


class ProgressReporter:
    """`progress(done, total=None)`: remembers the latest figure and writes it at most every
    PROGRESS_INTERVAL seconds — the first call always, the last one when the job ends."""

    def __init__(self, job_id: int, queue: JobQueue, interval: float = PROGRESS_INTERVAL,
                 lease: Lease | None = None, delay: float = 0, also: Callable[[int, int], None] | None = None):
        self.job_id = job_id
        self.queue = queue
        self.interval = interval
        self.lease = lease
        self.delay = delay
        self.also = also
        self.done = 0
        self.total = 0
        self.reported = False
        self._last: float | None = None

    def __call__(self, done: int, total: int | None = None) -> None:
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        self.reported = True
        if self.also is not None:
            self.also(self.done, self.total)
        if self.lease is not None:
            self.lease.renew()  # per batch, besides the lease's own timer
        if self.delay:
            time.sleep(self.delay)
        now = _clock()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        self.queue.publish_progress(self.job_id, self.done, self.total)
        _write_progress_row(self.job_id, self.done, self.total)


WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds(app: Flask | None = None) -> float:
    return float((app or current_app).config.get("JOB_LEASE_SECONDS") or 120)


class Lease:
    """The running job's lease: renewed on start, every lease/4 seconds by a timer thread and
    on each progress report, until `stop()`. A killed worker renews nothing, so its job's
    lease expires and `reap_interrupted_jobs` marks the job interrupted."""

    def __init__(self, job_id: int, queue: JobQueue, app: Flask, seconds: float):
        self.job_id, self.queue, self.app = job_id, queue, app
        self.interval = max(0.05, seconds / 4)
        self._stop = threading.Event()
        self._last = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"job-{job_id}-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def renew(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval / 2:
                return
            self._last = now
        at = datetime.now(UTC)
        self.queue.publish_heartbeat(self.job_id, at)
        with self.app.app_context():
            _write_row(self.job_id, only_running=True, heartbeat_at=at)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew(force=True)
            except Exception:  # the lease must never take the job down
                log.warning("job %s: lease not renewed", self.job_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.queue.forget_heartbeat(self.job_id)


def execute_job(job_id: int, queue: JobQueue | None = None,
                also_progress: Callable[[int, int], None] | None = None) -> None:
    """Run one queued job to its end, `done` or `failed`; inside an app context. A job that is
    no longer queued (delivered twice, or cancelled) is left alone."""
    queue = queue or get_queue()
    session = db.session
    started = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED)
        .values(state=JobState.RUNNING, started_at=datetime.now(UTC), heartbeat_at=datetime.now(UTC),
                worker_id=WORKER_ID[:100])
    )
    session.commit()
    if started.rowcount != 1:
        log.warning("job %s is missing or no longer queued: not run", job_id)
        return

    job = session.get(Job, job_id)
    kind = job.kind
    app = current_app._get_current_object()
    lease = Lease(job_id, queue, app, lease_seconds(app))
    lease.start()
    delay = float(app.config.get("JOB_TEST_BATCH_DELAY") or 0) if app.config.get("TESTING") else 0.0
    reporter = ProgressReporter(job_id, queue, lease=lease, delay=delay, also=also_progress)
    log.info("job %s (%s) started", job_id, kind)
    try:
        registration = _HANDLERS.get(kind)
        if registration is None:
            raise JobError(f"No handler for job kind {kind!r} in this consumer.")
        params = dict(job.params or {})
        actor = actor_from_params(params.pop("actor", None))
        result = registration.fn(JobContext(job_id, session, params, actor, reporter))
        if result is not None and not isinstance(result, dict):
            result = {"value": result}
        result = to_json_safe(result or {}, strict=False)
        job = session.get(Job, job_id)
        job.state = JobState.DONE
        job.result = result
        job.finished_at = datetime.now(UTC)
        if reporter.reported:
            job.progress_done, job.progress_total = reporter.done, reporter.total
        session.commit()  # the handler's work and "done", together
        log.info("job %s (%s) done", job_id, kind)
    except Exception as exc:
        session.rollback()
        log.exception("job %s (%s) failed", job_id, kind)
        job = session.get(Job, job_id)
        job.state = JobState.FAILED
        job.error = describe_error(exc)
        job.finished_at = datetime.now(UTC)
        if reporter.reported:
            job.progress_done, job.progress_total = reporter.done, reporter.total
        session.commit()
    finally:
        lease.stop()
        queue.forget_progress(job_id)


def describe_error(exc: BaseException) -> str:
    """A domain refusal or a JobError reads as its message; anything else names its type."""
    if isinstance(exc, DomainError | JobError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_MAX_LENGTH]
