"""Background jobs: long work (billing and dunning runs, statement imports, document rendering)
runs on huey; the `job` table mirrors each job's state, progress and result for pages.

How it fits together

- **One huey per app, built from config.** `HUEY_URL` picks the storage: `sqlite:///path` →
  SqliteHuey (the default, embedded: `make run` starts a consumer beside the web server),
  `redis://…` → RedisHuey (production: consumers on as many machines as needed), `memory://` →
  MemoryHuey in immediate mode (tests: the job runs inline, inside `enqueue()`).
  Huey's usual style — a module-level `huey` and `@huey.task` at import — would fix the queue's
  address at import time, before any app or config exists. Instead the huey is built lazily,
  the first time an app needs it, and kept in `app.extensions["jobs"]`; building it registers the
  one task there is, `run_job(job_id)`, which captures its app and runs the job inside
  `app.app_context()`. The web process and the consumer (`flask jobs consumer`, one app per
  process, created once by the CLI) build the same huey from the same config.
- **Kinds, not tasks.** What a job does is chosen by its `kind` through a registry of handlers
  (`@job_handler("billing_run")`), so adding a kind never touches huey, and the queue carries
  only a job id. Parameters live in the job row (JSON, with the actor who asked); big inputs (a
  bank statement) in a file under UPLOADS_DIR (default instance/uploads — shared storage when
  consumers run on other machines), named in the parameters.
- **One transaction per job.** The handler works in the job's session and does not commit; its
  work and the job's `done` are committed together, or rolled back together and the job marked
  `failed` with the error. (A domain function may commit by design — run_billing commits per
  batch of customers so that a failed run keeps its finished batches; then only what follows
  its last commit is rolled back.)
- **Progress** goes through `ctx.progress(done, total)`, at most about twice a second, in its
  own short transaction so polling pages see it. On SQLite that write cannot happen while the
  job's own transaction holds the database's single write lock, so it is not waited for: the
  figure is also published in huey's key-value store, and `progress_of(job)` — what pages show —
  prefers that live figure while the job runs.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db
from portal.models import ActorType, Job, JobState

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between progress writes: about two a second at most
ERROR_MAX_LENGTH = 4000
DEFAULT_QUEUE_NAME = "portal"
_clock = time.monotonic  # replaced by tests to step through the throttle


class UnknownJobKind(ValueError):
    """No handler is registered for this kind of job."""


class JobError(Exception):
    """The job cannot run (a missing module, a missing upload); the message becomes its error."""


# --- handlers ---------------------------------------------------------------------------------


@dataclass
class JobContext:
    """What a handler gets: the job's session (do not commit it), its parameters (without the
    actor), the actor who asked for it, and the progress callback."""

    job_id: int
    session: Session
    params: dict[str, Any]
    actor: Actor
    progress: Callable[..., None]


Handler = Callable[[JobContext], "dict | None"]


@dataclass(frozen=True)
class _Registration:
    kind: str
    fn: Handler
    requires: tuple[str, ...]


_HANDLERS: dict[str, _Registration] = {}


def job_handler(kind: str, *, requires: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """Register `fn(ctx: JobContext) -> dict | None` as the handler of `kind`. `requires`
    names parameters `enqueue()` refuses to go without. The returned dict (JSON-safe after
    conversion: dates, decimals, dataclasses, model objects as their id) becomes the result."""
    if not kind or len(kind) > 40:
        raise ValueError("a job kind is 1 to 40 characters")

    def register(fn: Handler) -> Handler:
        existing = _HANDLERS.get(kind)
        if existing is not None and _qualified(existing.fn) != _qualified(fn):
            raise ValueError(f"job kind {kind!r} already has a handler: {_qualified(existing.fn)}")
        _HANDLERS[kind] = _Registration(kind, fn, tuple(requires))
        return fn

    return register


def unregister_handler(kind: str) -> None:
    _HANDLERS.pop(kind, None)


def registered_kinds() -> list[str]:
    return sorted(_HANDLERS)


def _qualified(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


# --- the queue --------------------------------------------------------------------------------


def _build_huey(url: str, name: str, instance_path: str):
    from huey import MemoryHuey, RedisHuey, SqliteHuey

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
            from flask_babel import force_locale

            # No request, so no user language: the default, until a handler chooses
            # (e.g. the customer's language for their document).
            with app.app_context(), force_locale(app.config.get("BABEL_DEFAULT_LOCALE") or "en"):
                execute_job(job_id, self)

        self.run_job = self.huey.task(name="run_job")(run_job)

        from huey import signals

        interrupted = getattr(signals, "SIGNAL_INTERRUPTED", None)
        if interrupted:  # huey ≥ 3: a consumer stopped with jobs in flight
            self.huey.signal(interrupted)(self._interrupted)

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


# --- enqueueing -------------------------------------------------------------------------------


def actor_to_params(actor: Actor) -> dict[str, Any]:
    return {
        "type": str(actor.type),
        "id": actor.id,
        "name": actor.name,
        "ip": actor.ip,
        "request_id": actor.request_id,
    }


def actor_from_params(data: dict[str, Any] | None) -> Actor:
    if not data:
        return Actor.system("jobs")
    return Actor(
        ActorType(data["type"]), data.get("id"), data.get("name") or "", data.get("ip"), data.get("request_id")
    )


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


# --- interrupted jobs -------------------------------------------------------------------------


class JobNotResumable(DomainError):
    """Only an interrupted job, not yet resumed, can be resumed."""


def _fail_billing_run_of(job_id: int, now: datetime, error: str, conn=None) -> None:
    """The billing run a lost job was carrying out is failed too (in the job's transaction
    when `conn` is given): its finished batches stay, and resuming (run_billing with its
    run_id) bills the rest."""
    from portal.models import BillingRun, BillingRunState

    stmt = (update(BillingRun)
            .where(BillingRun.job_id == job_id,
                   BillingRun.state.in_([BillingRunState.PREVIEWED, BillingRunState.RUNNING]))
            .values(state=BillingRunState.FAILED, error=error, finished_at=now))
    if conn is not None:
        conn.execute(stmt)
        return
    with db.engine.begin() as own:
        own.execute(stmt)


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
    from flask_babel import lazy_gettext as _l

    from portal.domain import audit

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


def describe_error(exc: BaseException) -> str:
    """A domain refusal or a JobError reads as its message; anything else names its type."""
    if isinstance(exc, DomainError | JobError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_MAX_LENGTH]


def _write_progress_row(job_id: int, done: int, total: int) -> bool:
    return _write_row(job_id, only_running=True, progress_done=done, progress_total=total)


def _write_row(job_id: int, *, only_running: bool = False, **values: Any) -> bool:
    """Update the job row in its own short transaction, on its own connection, without
    waiting long for locks: on SQLite the job's own transaction may hold the write lock until
    it ends. Returns whether the row was written."""
    engine = db.engine
    stmt = update(Job).where(Job.id == job_id).values(**values)
    if only_running:
        stmt = stmt.where(Job.state == JobState.RUNNING)
    try:
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                previous = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 30000)
                conn.exec_driver_sql("PRAGMA busy_timeout=100")
                conn.commit()
            try:
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
                    conn.execute(stmt)
            finally:
                if sqlite:  # the connection goes back to the pool as it came
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={previous}")
                    conn.commit()
        return True
    except DBAPIError as exc:
        log.info("job %s: row not written now (%s)", job_id, exc.orig)
        return False


# --- what pages show --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int

    @property
    def percent(self) -> int | None:
        """0–100, or None while the total is unknown."""
        if not self.total:
            return None
        return max(0, min(100, self.done * 100 // self.total))


def progress_of(job: Job) -> JobProgress:
    """The figure for a progress bar: while the job runs, the live one the worker published
    (fresher than the row whenever the job's transaction kept the row from being written)."""
    if job.state == JobState.RUNNING:
        live = get_queue().live_progress(job.id)
        if live:
            return JobProgress(int(live[0]), int(live[1]))
    return JobProgress(job.progress_done or 0, job.progress_total or 0)


def is_finished(job: Job) -> bool:
    return job.state in (JobState.DONE, JobState.FAILED)


# --- JSON -------------------------------------------------------------------------------------


def to_json_safe(value: Any, *, strict: bool) -> Any:
    """Dates → ISO strings, decimals → strings, enums → values, dataclasses → dicts, model
    objects → their id. `strict` refuses anything else (parameters); otherwise it becomes its
    string (results: never lose a finished job over a stray object)."""

    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, Enum):
            return o.value
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        if isinstance(o, Path):
            return str(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        if hasattr(o, "__mapper__") and hasattr(o, "id"):
            return o.id
        if strict:
            raise TypeError(f"job parameters must be JSON: {type(o).__name__} is not")
        return str(o)

    return json.loads(json.dumps(value, default=default))


# --- uploads ----------------------------------------------------------------------------------


def uploads_dir(app: Flask | None = None) -> Path:
    app = app or current_app
    return Path(app.config.get("UPLOADS_DIR") or Path(app.instance_path) / "uploads")


def save_upload(data: bytes, file_name: str) -> str:
    """Keep an uploaded file for a job; returns its name inside UPLOADS_DIR. Files are kept
    after the job: the original of what was imported."""
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = re.sub(r"[^a-z0-9.]", "", Path(file_name).suffix.lower())[:10]
    name = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex}{suffix}"
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    tmp.replace(folder / name)
    return name


def read_upload(name: str) -> bytes:
    folder = uploads_dir().resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        raise JobError(f"Upload {name!r} is outside the uploads folder.")
    if not path.is_file():
        raise JobError(f"Upload {name!r} is missing from {folder} (is it shared with this consumer?).")
    return path.read_bytes()


def enqueue_billing_run(run, *, actor: Actor) -> Job:
    """Queue the billing run staff requested (a BillingRun in state previewed) as a job."""
    return enqueue("billing_run", {"period_start": run.period_start, "issue_date": run.issue_date,
                                   "billing_run_id": run.id}, actor=actor)


def enqueue_dunning_run(on: date, *, actor: Actor) -> Job:
    """Queue a (real) dunning run on `on`."""
    return enqueue("dunning_run", {"on": on}, actor=actor)


def enqueue_statement_import(file_name: str, data: bytes, *, actor: Actor) -> Job:
    """Queue a bank statement import: the bytes go to a file, the queue carries its name."""
    upload = save_upload(data, file_name)
    return enqueue("statement_import", {"file_name": file_name, "upload": upload}, actor=actor)


# --- the portal's handlers --------------------------------------------------------------------


def domain_function(modules: str | tuple[str, ...], name: str) -> Callable:
    """Import `name` from the first of `modules` that has it, when the job runs: a kind whose
    module is not installed fails its jobs with a clear error instead of breaking every
    import of this module."""
    for module in (modules,) if isinstance(modules, str) else modules:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        fn = getattr(mod, name, None)
        if fn is not None:
            return fn
    where = modules if isinstance(modules, str) else " or ".join(modules)
    raise JobError(f"{name}() from {where} is not available in this installation.")


def _accepts(fn: Callable, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise JobError(f"{value!r} is not a date (YYYY-MM-DD).") from exc


def _summary(obj: Any, id_key: str, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {id_key: getattr(obj, "id", None)}
    for field in fields:
        if hasattr(obj, field):
            out[field] = getattr(obj, field)
    return out


def _link_billing_run(run_id: int, job_id: int) -> None:
    """Point the requested run at its job in a transaction of its own, before the work starts:
    a run that fails early (even before run_billing touches it) still shows its job's error."""
    from portal.models import BillingRun

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


@job_handler("dunning_run")
def dunning_run(ctx: JobContext) -> dict:
    """Remind and block as of `on` (default today); `dry_run` only reports what would happen."""
    run_dunning = domain_function("portal.domain.dunning", "run_dunning")
    result = run_dunning(
        ctx.session,
        on=_date(ctx.params.get("on")) or date.today(),
        actor=ctx.actor,
        progress=ctx.progress,
        dry_run=bool(ctx.params.get("dry_run")),
    )
    if hasattr(result, "as_dict"):
        return result.as_dict()
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return result


@job_handler("agreement_acceptance")
def agreement_acceptance(ctx: JobContext) -> dict:
    """Remind and block for agreements left unaccepted, as of `on` (default today)."""
    enforce_acceptance = domain_function("portal.domain.agreements", "enforce_acceptance")
    result = enforce_acceptance(ctx.session, today=_date(ctx.params.get("on")) or date.today(), actor=ctx.actor)
    return result.as_dict()


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


@job_handler("render_document", requires=("document_kind", "owner_id"))
def render_document(ctx: JobContext) -> dict:
    """Render (or re-render) the document of `document_kind` for `owner_id`."""
    from portal.models import DocumentKind

    render = domain_function("portal.documents", "render_document")
    try:
        kind = DocumentKind(ctx.params["document_kind"])
    except ValueError as exc:
        raise JobError(f"Unknown document kind {ctx.params['document_kind']!r}.") from exc
    document = render(ctx.session, kind, int(ctx.params["owner_id"]))
    ctx.session.flush()
    return _summary(document, "stored_document_id", ("file_name", "version", "sha256"))


@job_handler("ping")
def ping(ctx: JobContext) -> dict:
    """Does nothing: `flask jobs ping` uses it to prove a consumer is listening."""
    return {"pong": True, "at": datetime.now(UTC)}
