"""Background jobs (portal/jobs/): the test app's memory:// queue runs jobs inline; the
SQLite and Redis queues are driven by hand, the way a consumer does; one test runs the real
`flask jobs consumer` in a subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import portal.jobs as jobs
from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.models import ActorType, Job, JobState, OutboundEmail

ROOT = Path(__file__).resolve().parent.parent
ACTOR = Actor(ActorType.OPERATOR, 7, "Olga Operator", "192.0.2.1", "req-1")


@pytest.fixture
def handler():
    """Register handlers for the test only: `handler("kind")(fn)`."""
    kinds = []

    def register(kind, **kw):
        kinds.append(kind)
        return jobs.job_handler(kind, **kw)

    yield register
    for kind in kinds:
        jobs.unregister_handler(kind)


def fresh(db, job_id):
    db.expire_all()
    return db.get(Job, job_id)


def row_progress(db, job_id):
    """The row as another connection sees it (what a polling page reads)."""
    with db.get_bind().connect() as conn:
        return tuple(conn.execute(
            text("SELECT progress_done, progress_total FROM job WHERE id = :id"), {"id": job_id}
        ).one())


def email(subject="side effect"):
    return OutboundEmail(to="x@example.com", subject=subject, template="t")


# --- immediate (memory://) --------------------------------------------------------------------


def test_job_runs_to_done_with_its_result_and_actor(db, handler):
    seen = {}

    @handler("test_ok", requires=("period",))
    def ok(ctx):
        seen["actor"], seen["params"] = ctx.actor, ctx.params
        ctx.session.add(email())
        return {"count": 3, "amount": Decimal("1.50"), "on": date(2026, 11, 1)}

    job = jobs.enqueue("test_ok", {"period": date(2026, 11, 1)}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE
    assert job.result == {"count": 3, "amount": "1.50", "on": "2026-11-01"}
    assert job.error == ""
    assert job.task_id and job.started_at and job.finished_at >= job.started_at
    assert (job.created_by_type, job.created_by_id) == (ActorType.OPERATOR, 7)
    assert job.params["period"] == "2026-11-01"
    assert job.params["actor"]["name"] == "Olga Operator"
    assert seen["actor"] == ACTOR  # rebuilt in the worker, ip and request id included
    assert seen["params"] == {"period": "2026-11-01"}
    assert db.scalar(select(func.count(OutboundEmail.id))) == 1  # committed with "done"


def test_progress_is_written_in_its_own_transaction_and_throttled(db, handler, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(jobs.worker, "_clock", lambda: now[0])
    writes = []
    real_write = jobs._write_progress_row
    monkeypatch.setattr(jobs.worker, "_write_progress_row", lambda *a: writes.append(a[1:]) or real_write(*a))
    seen = {}

    @handler("test_progress")
    def counting(ctx):
        ctx.progress(0, 100)
        seen["first"] = row_progress(db, ctx.job_id)
        for i in range(1, 51):
            ctx.progress(i)  # the total is remembered
        seen["burst"] = list(writes)
        now[0] += jobs.PROGRESS_INTERVAL
        ctx.progress(60)
        seen["later"] = row_progress(db, ctx.job_id)
        seen["live"] = jobs.progress_of(ctx.session.get(Job, ctx.job_id))
        ctx.progress(99)  # throttled away: written with the final state
        return {}

    job = jobs.enqueue("test_progress", {}, actor=ACTOR)

    assert seen["first"] == (0, 100)  # visible to other connections while the job runs
    assert seen["burst"] == [(0, 100)]  # 51 calls inside half a second → one write
    assert seen["later"] == (60, 100)
    assert seen["live"] == jobs.JobProgress(60, 100) and seen["live"].percent == 60
    assert writes == [(0, 100), (60, 100)]
    job = fresh(db, job.id)
    assert (job.state, job.progress_done, job.progress_total) == (JobState.DONE, 99, 100)
    assert jobs.progress_of(job).percent == 99
    assert jobs.get_queue().live_progress(job.id) is None  # the live copy is cleared


def test_progress_stays_live_while_the_jobs_transaction_holds_the_lock(db, handler):
    """On SQLite the job's own writes hold the database's write lock until it commits: the
    row cannot take progress then, and must not make the job wait for it."""
    seen = {}

    @handler("test_busy")
    def busy(ctx):
        ctx.session.add(email())
        ctx.session.flush()  # now this transaction writes
        started = time.monotonic()
        ctx.progress(5, 10)
        seen["took"] = time.monotonic() - started
        seen["shown"] = jobs.progress_of(ctx.session.get(Job, ctx.job_id))
        return {}

    job = jobs.enqueue("test_busy", {}, actor=ACTOR)

    assert seen["took"] < 2
    assert seen["shown"] == jobs.JobProgress(5, 10)
    assert fresh(db, job.id).state == JobState.DONE


def test_failing_job_is_marked_failed_and_its_writes_rolled_back(db, handler):
    @handler("test_boom")
    def boom(ctx):
        ctx.session.add(email())
        ctx.session.flush()
        ctx.progress(2, 4)
        raise RuntimeError("the printer is on fire")

    job = jobs.enqueue("test_boom", {}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.FAILED
    assert job.error == "RuntimeError: the printer is on fire"
    assert job.finished_at is not None and job.result == {}
    assert (job.progress_done, job.progress_total) == (2, 4)  # how far it got
    assert db.scalar(select(func.count(OutboundEmail.id))) == 0


def test_a_domain_refusal_reads_as_its_message(db, handler):
    @handler("test_refused")
    def refused(ctx):
        raise DomainError("November is already billed.")

    job = jobs.enqueue("test_refused", {}, actor=ACTOR)
    assert fresh(db, job.id).error == "November is already billed."


def test_unknown_kind_and_bad_parameters_are_refused_at_enqueue(db, handler):
    handler("test_needs", requires=("period_start",))(lambda ctx: {})

    with pytest.raises(jobs.UnknownJobKind):
        jobs.enqueue("no_such_kind", {}, actor=ACTOR)
    with pytest.raises(ValueError, match="period_start"):
        jobs.enqueue("test_needs", {}, actor=ACTOR)
    with pytest.raises(ValueError, match="reserved"):
        jobs.enqueue("test_needs", {"period_start": "2026-11-01", "actor": 1}, actor=ACTOR)
    with pytest.raises(TypeError, match="JSON"):
        jobs.enqueue("test_needs", {"period_start": object()}, actor=ACTOR)
    assert db.scalar(select(func.count(Job.id))) == 0


def test_a_kind_has_one_handler(handler):
    @handler("test_once")
    def first(ctx):
        return {}

    def second(ctx):
        return {}

    with pytest.raises(ValueError, match="already has a handler"):
        jobs.job_handler("test_once")(second)


def test_a_missing_domain_module_fails_the_job_clearly(db, handler):
    @handler("test_missing")
    def missing(ctx):
        jobs.domain_function("portal.domain.not_written_yet", "run")()

    job = jobs.enqueue("test_missing", {}, actor=ACTOR)
    job = fresh(db, job.id)
    assert job.state == JobState.FAILED
    assert job.error == "run() from portal.domain.not_written_yet is not available in this installation."


def test_a_job_is_run_once(db, handler):
    runs = []
    handler("test_once_only")(lambda ctx: runs.append(ctx.job_id) or {})
    job = jobs.enqueue("test_once_only", {}, actor=ACTOR)
    jobs.execute_job(job.id)  # delivered again
    assert runs == [job.id]


# --- the portal's handlers, over stand-in domain modules ---------------------------------------


def fake_module(monkeypatch, name, **functions):
    module = types.ModuleType(name)
    for fn_name, fn in functions.items():
        setattr(module, fn_name, fn)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@dataclass
class FakeRun:
    id: int
    job_id: int | None = None
    state: str = "done"
    invoices_count: int = 2
    gross_total: Decimal = Decimal("242.00")


def test_billing_run_handler(db, monkeypatch):
    calls = {}
    run = FakeRun(id=5)

    def run_billing(session, period_start, *, actor, issue_date=None, progress=None):
        calls.update(period_start=period_start, issue_date=issue_date, actor=actor)
        progress(1, 1)
        return run

    fake_module(monkeypatch, "portal.domain.billing", run_billing=run_billing)
    job = jobs.enqueue("billing_run", {"period_start": date(2026, 11, 1)}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert calls == {"period_start": date(2026, 11, 1), "issue_date": None, "actor": ACTOR}
    assert run.job_id == job.id
    assert job.result == {"billing_run_id": 5, "state": "done", "invoices_count": 2, "gross_total": "242.00"}
    assert (job.progress_done, job.progress_total) == (1, 1)


def test_dunning_run_handler_stores_the_result_dataclass(db, monkeypatch):
    @dataclass
    class DunningResult:
        reminded: int
        blocked: list
        dry_run: bool

    def run_dunning(session, *, on, actor, progress=None, dry_run=False):
        assert on == date(2026, 11, 27)
        return DunningResult(reminded=3, blocked=[11, 12], dry_run=dry_run)

    fake_module(monkeypatch, "portal.domain.dunning", run_dunning=run_dunning)
    job = jobs.enqueue("dunning_run", {"on": "2026-11-27", "dry_run": True}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.result == {"reminded": 3, "blocked": [11, 12], "dry_run": True}


def test_statement_import_reads_the_upload_not_the_queue(db, app, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(tmp_path / "uploads"))
    received = {}

    def import_statement(session, file_name, data, *, actor, progress=None):
        received.update(file_name=file_name, data=data, actor=actor)
        progress(1, 1)  # the job's own progress callback
        return types.SimpleNamespace(id=9, payments_count=1, total=Decimal("100.00"))

    fake_module(monkeypatch, "portal.domain.statements", import_statement=import_statement)
    job = jobs.enqueue_statement_import("november.csv", b"date;amount\n", actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert received == {"file_name": "november.csv", "data": b"date;amount\n", "actor": ACTOR}
    assert job.result == {"statement_import_id": 9, "payments_count": 1, "total": "100.00"}
    assert (job.progress_done, job.progress_total) == (1, 1)
    upload = job.params["upload"]
    assert upload.endswith(".csv") and "/" not in upload
    assert (tmp_path / "uploads" / upload).read_bytes() == b"date;amount\n"


def test_an_upload_outside_the_folder_is_refused(db, app, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(tmp_path / "uploads"))
    fake_module(monkeypatch, "portal.domain.statements", import_statement=lambda *a, **k: None)
    job = jobs.enqueue("statement_import", {"file_name": "x.csv", "upload": "../secret"}, actor=ACTOR)
    assert "outside the uploads folder" in fresh(db, job.id).error


def test_render_document_handler(db, monkeypatch):
    from portal.models import DocumentKind

    def render_document(session, kind, owner_id):
        assert (kind, owner_id) == (DocumentKind.INVOICE, 42)
        return types.SimpleNamespace(id=3, file_name="invoice-42.pdf", version=1)

    fake_module(monkeypatch, "portal.documents", render_document=render_document)
    job = jobs.enqueue("render_document", {"document_kind": "invoice", "owner_id": 42}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.result == {"stored_document_id": 3, "file_name": "invoice-42.pdf", "version": 1}


# --- real queues, consumed by hand --------------------------------------------------------------


def consume_one(queue):
    """What a consumer's worker does with one message."""
    task = queue.huey.dequeue()
    assert task is not None
    queue.huey.execute(task)


def check_queued_then_consumed(db, app, monkeypatch, queue, register):
    monkeypatch.setitem(app.extensions, "jobs", queue)
    register("test_queued")(lambda ctx: ctx.progress(1, 1) or {"ran": ctx.params["n"]})

    job = jobs.enqueue("test_queued", {"n": 1}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.QUEUED and job.started_at is None
    assert queue.huey.pending_count() == 1
    consume_one(queue)
    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.result == {"ran": 1} and job.progress_done == 1
    assert queue.huey.pending_count() == 0


def test_sqlite_queue_runs_jobs_through_the_queue(db, app, handler, monkeypatch, tmp_path):
    queue = jobs.JobQueue(app, f"sqlite:///{tmp_path / 'jobs.db'}")
    assert not queue.immediate
    check_queued_then_consumed(db, app, monkeypatch, queue, handler)


def test_redis_queue_runs_jobs_through_the_queue(db, app, handler, monkeypatch, redis_url):
    url = redis_url
    queue = jobs.JobQueue(app, url, name=f"portal-test-{uuid.uuid4().hex[:12]}")
    try:
        check_queued_then_consumed(db, app, monkeypatch, queue, handler)
    finally:
        queue.huey.storage.flush_all()


def test_queue_urls(app, tmp_path):
    assert jobs.JobQueue(app, "memory://").immediate
    assert "s3cret" not in jobs.JobQueue(app, "redis://:s3cret@127.0.0.1:6379/0").describe()
    with pytest.raises(ValueError, match="HUEY_URL"):
        jobs.JobQueue(app, "amqp://localhost")


# --- the command line ---------------------------------------------------------------------------


def test_jobs_list_and_show(db, app, handler):
    handler("test_cli")(lambda ctx: {"answer": 42})
    job = jobs.enqueue("test_cli", {}, actor=ACTOR)
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert "test_cli" in listed.output and "done" in listed.output and "Olga Operator" in listed.output

    shown = runner.invoke(args=["jobs", "show", str(job.id)])
    assert shown.exit_code == 0 and '"answer": 42' in shown.output


def test_consumer_refuses_the_inline_queue(app):
    result = app.test_cli_runner().invoke(args=["jobs", "consumer"])
    assert result.exit_code != 0 and "memory://" in result.output


@pytest.mark.slow
def test_flask_jobs_consumer_runs_queued_jobs(db, app, database_url, monkeypatch, tmp_path):
    """The real consumer process, as `make run` starts it, over the test database."""
    queue = jobs.JobQueue(app, f"sqlite:///{tmp_path / 'jobs.db'}")
    monkeypatch.setitem(app.extensions, "jobs", queue)
    job = jobs.enqueue("ping", {}, actor=ACTOR)
    env = {
        **os.environ,
        "FLASK_APP": "wsgi.py",
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_HUEY_URL": queue.url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "jobs", "consumer", "-w", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while fresh(db, job.id).state != JobState.DONE and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)  # graceful stop
        output, _ = proc.communicate(timeout=30)
    assert fresh(db, job.id).state == JobState.DONE, output
    assert fresh(db, job.id).result["pong"] is True
    assert proc.returncode == 0, output


# --- the real domain functions, through jobs ------------------------------------------------------


def test_real_billing_run_over_an_empty_database(db):
    pytest.importorskip("portal.domain.billing")
    from portal.models import BillingRun

    job = jobs.enqueue("billing_run", {"period_start": "2026-11-01"}, actor=ACTOR)

    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    run = db.get(BillingRun, job.result["billing_run_id"])
    assert run.job_id == job.id and job.result["invoices_count"] == 0


def test_real_dunning_dry_run(db):
    pytest.importorskip("portal.domain.dunning")
    job = jobs.enqueue("dunning_run", {"on": "2026-11-27", "dry_run": True}, actor=ACTOR)
    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.result["dry_run"] is True


def test_real_statement_import_refusal_is_the_jobs_error(db, app, monkeypatch, tmp_path):
    pytest.importorskip("portal.domain.statements")
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(tmp_path))
    job = jobs.enqueue_statement_import("empty.csv", b"   ", actor=ACTOR)
    job = fresh(db, job.id)
    assert job.state == JobState.FAILED and job.error == "The file is empty."


def test_real_render_document_of_a_missing_owner_fails(db):
    pytest.importorskip("portal.documents.service")
    job = jobs.enqueue("render_document", {"document_kind": "invoice", "owner_id": 999}, actor=ACTOR)
    job = fresh(db, job.id)
    assert job.state == JobState.FAILED and "999 not found" in job.error


def test_jobs_translate_without_a_request(db, app, handler):
    from flask import has_request_context
    from flask_babel import get_locale, gettext

    @handler("test_i18n")
    def translated(ctx):
        return {"request": has_request_context(), "text": gettext("Invoice"), "locale": str(get_locale())}

    job = jobs.enqueue("test_i18n", {}, actor=ACTOR)
    job = fresh(db, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.result["locale"] == app.config["BABEL_DEFAULT_LOCALE"]


def test_a_job_cut_off_by_a_stopping_consumer_is_marked_failed(db, app, handler, monkeypatch, tmp_path):
    queue = jobs.JobQueue(app, f"sqlite:///{tmp_path / 'jobs.db'}")
    monkeypatch.setitem(app.extensions, "jobs", queue)
    handler("test_cut")(lambda ctx: {})
    job = jobs.enqueue("test_cut", {}, actor=ACTOR)
    task = queue.huey.dequeue()
    db.execute(text("UPDATE job SET state = 'running' WHERE id = :id"), {"id": job.id})
    db.commit()

    queue._interrupted("interrupted", task)  # what huey signals for each task in flight

    job = fresh(db, job.id)
    assert job.state == JobState.FAILED and job.error.startswith("Interrupted")
