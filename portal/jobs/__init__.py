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

The package: `registry` (kinds, handlers, JobContext, errors), `worker` (the huey, running a job,
its lease and progress), `enqueueing` (`enqueue`, `run_here`), `interrupted` (reaping, resuming),
`progress` (what pages show), `rows` (the job row's own short transactions), `params` (JSON),
`uploads`, and the portal's handlers: `handlers` (shared helpers, ping), `billing`, `dunning`,
`statements`, `documents`; and `webhooks`, the periodic delivery pass (registered with
`@periodic`, run by the consumer's scheduler). Importing the package registers every handler;
import names from it.
"""
from __future__ import annotations

from portal.jobs.billing import billing_run, enqueue_billing_run
from portal.jobs.documents import render_document
from portal.jobs.dunning import agreement_acceptance, dunning_run, enqueue_dunning_run
from portal.jobs.enqueueing import enqueue, run_here
from portal.jobs.handlers import domain_function, ping
from portal.jobs.interrupted import JobNotResumable, is_resumable, reap_interrupted_jobs, resume_job
from portal.jobs.params import actor_from_params, actor_to_params, to_json_safe
from portal.jobs.progress import JobProgress, is_finished, progress_of
from portal.jobs.provisioning import sync_network
from portal.jobs.registry import (
    Handler,
    JobContext,
    JobError,
    UnknownJobKind,
    job_handler,
    periodic,
    registered_kinds,
    unregister_handler,
)
from portal.jobs.rows import _write_progress_row
from portal.jobs.statements import enqueue_statement_import, statement_import
from portal.jobs.uploads import read_upload, save_upload, uploads_dir
from portal.jobs.webhooks import deliver_webhooks
from portal.jobs.worker import (
    DEFAULT_QUEUE_NAME,
    ERROR_MAX_LENGTH,
    PROGRESS_INTERVAL,
    WORKER_ID,
    JobQueue,
    Lease,
    ProgressReporter,
    describe_error,
    execute_job,
    get_huey,
    get_queue,
    lease_seconds,
)

__all__ = [
    "DEFAULT_QUEUE_NAME",
    "ERROR_MAX_LENGTH",
    "PROGRESS_INTERVAL",
    "WORKER_ID",
    "Handler",
    "JobContext",
    "JobError",
    "JobNotResumable",
    "JobProgress",
    "JobQueue",
    "Lease",
    "ProgressReporter",
    "UnknownJobKind",
    "_write_progress_row",  # tests wrap it (patched where it is called: portal.jobs.worker)
    "actor_from_params",
    "actor_to_params",
    "agreement_acceptance",
    "billing_run",
    "deliver_webhooks",
    "describe_error",
    "domain_function",
    "dunning_run",
    "enqueue",
    "enqueue_billing_run",
    "enqueue_dunning_run",
    "enqueue_statement_import",
    "execute_job",
    "get_huey",
    "get_queue",
    "is_finished",
    "is_resumable",
    "job_handler",
    "lease_seconds",
    "periodic",
    "ping",
    "progress_of",
    "read_upload",
    "reap_interrupted_jobs",
    "registered_kinds",
    "render_document",
    "resume_job",
    "run_here",
    "save_upload",
    "statement_import",
    "sync_network",
    "to_json_safe",
    "unregister_handler",
    "uploads_dir",
]
