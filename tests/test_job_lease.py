"""A job whose worker dies does not stay "running" forever: the worker holds a lease it
renews while it works; a running job whose lease expired is marked interrupted (by the
consumer, at start and periodically, and by the staff pages that show or start jobs), and
staff resume it. The real test kills a real `flask jobs consumer` with SIGKILL in the middle
of a billing run; the resumed run ends with the invoices of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.domain.actors import Actor
from portal.domain.billing import request_billing_run
from portal.jobs import JobQueue, enqueue, enqueue_billing_run, reap_interrupted_jobs
from portal.models import BillingRun, BillingRunState, Invoice, Job, JobState
from tests.domain.billing_fixtures import World

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 12
BATCH = 2


def _consumer(database_url: str, huey_url: str, tmp: Path) -> subprocess.Popen:
    """A real `flask jobs consumer`, configured through the environment as in production."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PORTAL_DATABASE_URL": database_url, "PORTAL_HUEY_URL": huey_url,
           "PORTAL_TESTING": "1", "PORTAL_MAIL_OUTBOX_DIR": str(tmp / "outbox"),
           "PORTAL_DOCUMENTS_DIR": str(tmp / "documents"), "PORTAL_UPLOADS_DIR": str(tmp / "uploads"),
           "PORTAL_BILLING_BATCH_SIZE": str(BATCH), "PORTAL_JOB_TEST_BATCH_DELAY": "0.4",
           "PORTAL_JOB_LEASE_SECONDS": "4"}
    env.pop("PORTAL_TEST_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal:create_app", "jobs", "consumer",
                             "-w", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "consumer.log", "ab"))  # noqa: SIM115


def _wait(what, check, tmp: Path, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    log = (tmp / "consumer.log").read_text(errors="replace")[-3000:] if (tmp / "consumer.log").exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.fixture
def file_queue(app, tmp_path, monkeypatch):
    """This process enqueues on (and reads heartbeats from) the consumer's SQLite huey."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    queue = JobQueue(app, url=url)
    monkeypatch.setitem(app.extensions, "jobs", queue)
    monkeypatch.setitem(app.config, "JOB_LEASE_SECONDS", 4)
    return url


@pytest.mark.slow
def test_killed_consumer_mid_billing_run_is_detected_and_resumed(db, database_url, file_queue, tmp_path,
                                                                 staff_client):
    world = World()
    for _ in range(CUSTOMERS):
        world.service()
    db.commit()
    run = request_billing_run(db, "2026-11", actor=Actor.system("test"), issue_date=date(2026, 12, 1))
    job = enqueue_billing_run(run, actor=Actor.system("test"))
    run_id, job_id = run.id, job.id

    def invoices_count() -> int:
        db.rollback()
        return db.scalar(select(func.count()).select_from(Invoice))

    first = _consumer(database_url, file_queue, tmp_path)
    try:
        _wait("two batches billed", lambda: invoices_count() >= 2 * BATCH, tmp_path)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        _stop(first)
    billed = invoices_count()
    assert 0 < billed < CUSTOMERS, "the kill must land mid-run"
    db.expire_all()
    assert db.get(Job, job_id).state == JobState.RUNNING  # what the defect left for ever

    second = _consumer(database_url, file_queue, tmp_path)
    try:
        # The new consumer's reaper finds the lease expired and marks the job interrupted.
        def interrupted():
            db.rollback()
            db.expire_all()
            j = db.get(Job, job_id)
            return j if j.state == JobState.FAILED and j.interrupted_at else None

        lost = _wait("the job marked interrupted", interrupted, tmp_path)
        assert "Interrupted" in lost.error
        assert db.get(BillingRun, run_id).state == BillingRunState.FAILED

        page = staff_client.get(f"/staff/billing/runs/{run_id}")
        assert page.status_code == 200
        assert b'data-state="interrupted"' in page.data
        assert f'/staff/billing/runs/{run_id}/resume'.encode() in page.data
        assert staff_client.post(f"/staff/billing/runs/{run_id}/resume", csrf=False).status_code == 400

        resp = staff_client.post(f"/staff/billing/runs/{run_id}/resume")
        assert resp.status_code == 302
        db.rollback()
        db.expire_all()
        new_id = db.get(Job, job_id).resumed_by_id
        assert new_id and new_id != job_id

        def done():
            db.rollback()
            db.expire_all()
            return db.get(BillingRun, run_id).state == BillingRunState.DONE

        _wait("the resumed run done", done, tmp_path)
    finally:
        _stop(second)

    db.expire_all()
    assert db.get(Job, new_id).state == JobState.DONE
    assert db.get(BillingRun, run_id).job_id == new_id
    # As an uninterrupted run: one invoice per customer, numbered 1..N without gaps or repeats.
    invs = db.scalars(select(Invoice)).all()
    assert len(invs) == CUSTOMERS and len({i.customer_id for i in invs}) == CUSTOMERS
    seqs = defaultdict(list)
    for inv in invs:
        seqs[(inv.series, inv.year)].append(inv.sequence)
    assert [sorted(v) for v in seqs.values()] == [list(range(1, CUSTOMERS + 1))]
    assert {inv.billing_run_id for inv in invs} == {run_id}
    run = db.get(BillingRun, run_id)  # the run's figures are the whole run's, as if never interrupted
    assert (run.invoices_count, run.customers_count, run.charges_count) == (CUSTOMERS, CUSTOMERS, CUSTOMERS)
    assert run.gross_total == sum(inv.gross_total for inv in invs)
    # Resumed once only.
    assert staff_client.post(f"/staff/billing/runs/{run_id}/resume").status_code == 302
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Job).where(Job.kind == "billing_run")) == 2


@pytest.mark.slow
def test_killed_cli_billing_run_does_not_block_the_month(db, app, database_url, tmp_path, staff_client,
                                                         monkeypatch):
    """`flask billing run` (run here, not queued) killed mid-way: staff may bill the month again,
    and that run bills the rest."""
    world = World()
    for _ in range(CUSTOMERS):
        world.service()
    db.commit()
    monkeypatch.setitem(app.config, "JOB_LEASE_SECONDS", 4)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PORTAL_DATABASE_URL": database_url,
           "PORTAL_HUEY_URL": f"sqlite:///{tmp_path / 'jobs.db'}", "PORTAL_TESTING": "1",
           "PORTAL_MAIL_OUTBOX_DIR": str(tmp_path / "outbox"), "PORTAL_DOCUMENTS_DIR": str(tmp_path / "documents"),
           "PORTAL_JOB_TEST_BATCH_DELAY": "0.4"}
    env.pop("PORTAL_TEST_DATABASE_URL", None)
    cli = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal:create_app", "billing", "run",
                            "--period", "2026-11", "--issue-date", "2026-12-01", "--batch-size", str(BATCH)],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "consumer.log", "ab"))  # noqa: SIM115

    def invoices_count() -> int:
        db.rollback()
        return db.scalar(select(func.count()).select_from(Invoice))

    try:
        _wait("two batches billed", lambda: invoices_count() >= 2 * BATCH, tmp_path)
        os.kill(cli.pid, signal.SIGKILL)
    finally:
        _stop(cli)
    assert invoices_count() < CUSTOMERS
    time.sleep(4.5)  # the lease expires
    resp = staff_client.post("/staff/billing/runs", data={"period": "2026-11", "issue_date": "2026-12-01"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.rollback()
    db.expire_all()
    runs = db.scalars(select(BillingRun).order_by(BillingRun.id)).all()
    assert [r.state for r in runs] == [BillingRunState.FAILED, BillingRunState.DONE]
    invs = db.scalars(select(Invoice)).all()
    assert len(invs) == CUSTOMERS and len({i.customer_id for i in invs}) == CUSTOMERS
    assert sorted(i.sequence for i in invs) == list(range(1, CUSTOMERS + 1))


# --- detection and resuming, without processes ------------------------------------------------


def _lost_job(db, kind: str, params: dict, *, minutes: int = 10) -> Job:
    """A job left running by a worker that died `minutes` ago."""
    from portal.jobs import actor_to_params

    old = datetime.now(UTC) - timedelta(minutes=minutes)
    job = Job(kind=kind, state=JobState.RUNNING, params={**params, "actor": actor_to_params(Actor.system("t"))},
              result={}, error="", created_by_type=Actor.system("t").type, started_at=old, heartbeat_at=old, created_at=old,
              worker_id="gone:1")
    db.add(job)
    db.commit()
    return job


def test_fresh_lease_is_not_reaped(db):
    job = _lost_job(db, "ping", {}, minutes=0)
    assert reap_interrupted_jobs() == []
    db.expire_all()
    assert db.get(Job, job.id).state == JobState.RUNNING


def test_expired_lease_is_interrupted_and_staff_may_bill_the_month_again(db, staff_client):
    world = World()
    for _ in range(3):
        world.service()
    db.commit()
    run = request_billing_run(db, "2026-11", actor=Actor.system("t"), issue_date=date(2026, 12, 1))
    db.flush()
    job = _lost_job(db, "billing_run", {"period_start": "2026-11-01", "billing_run_id": run.id})
    run.job_id, run.state = job.id, BillingRunState.RUNNING
    db.commit()
    # Starting the same month is no longer refused: opening the form's POST reaps first.
    resp = staff_client.post("/staff/billing/runs", data={"period": "2026-11", "issue_date": "2026-12-01"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(Job, job.id).interrupted_at is not None
    assert db.get(BillingRun, run.id).state == BillingRunState.FAILED


def test_interrupted_run_resumed_from_its_page_bills_the_rest(db, staff_client):
    world = World()
    for _ in range(3):
        world.service()
    db.commit()
    run = request_billing_run(db, "2026-11", actor=Actor.system("t"), issue_date=date(2026, 12, 1))
    db.flush()
    job = _lost_job(db, "billing_run", {"period_start": "2026-11-01", "billing_run_id": run.id})
    run.job_id, run.state = job.id, BillingRunState.RUNNING
    db.commit()
    page = staff_client.get(f"/staff/billing/runs/{run.id}")
    assert b'data-state="interrupted"' in page.data
    assert staff_client.post(f"/staff/billing/runs/{run.id}/resume").status_code == 302
    db.expire_all()
    assert db.get(BillingRun, run.id).state == BillingRunState.DONE
    assert db.scalar(select(func.count()).select_from(Invoice)) == 3
    page = staff_client.get(f"/staff/billing/runs/{run.id}")
    assert b"/resume" not in page.data


def test_interrupted_dunning_run_and_import_are_resumable(db, staff_client):
    dunning = _lost_job(db, "dunning_run", {"on": "2026-12-01"})
    page = staff_client.get(f"/staff/dunning/runs/{dunning.id}")
    assert b'data-state="interrupted"' in page.data
    resp = staff_client.post(f"/staff/dunning/runs/{dunning.id}/resume")
    assert resp.status_code == 302
    db.expire_all()
    new = db.get(Job, db.get(Job, dunning.id).resumed_by_id)
    assert new.kind == "dunning_run" and new.state == JobState.DONE

    imported = _lost_job(db, "statement_import", {"file_name": "x.csv", "upload": "missing.csv"})
    page = staff_client.get(f"/staff/payments/import/jobs/{imported.id}")
    assert b'data-state="interrupted"' in page.data
    assert staff_client.post(f"/staff/payments/import/jobs/{imported.id}/resume").status_code == 302
    db.expire_all()
    assert db.get(Job, imported.id).resumed_by_id


def test_a_running_job_renews_its_lease(db, app, monkeypatch):
    from portal import jobs

    seen = []
    monkeypatch.setitem(app.config, "JOB_LEASE_SECONDS", 0.4)

    @jobs.job_handler("lease_probe")
    def probe(ctx):
        time.sleep(0.5)
        ctx.session.rollback()
        seen.append(ctx.session.get(Job, ctx.job_id).heartbeat_at)
        assert reap_interrupted_jobs() == []  # alive: renewed within the lease
        return {}

    try:
        job = enqueue("lease_probe", actor=Actor.system("t"))
    finally:
        jobs.unregister_handler("lease_probe")
    db.expire_all()
    job = db.get(Job, job.id)
    assert job.state == JobState.DONE, job.error
    assert job.worker_id and seen[0] > job.started_at


def test_cli_resumes_an_interrupted_render_job(db, app):
    job = _lost_job(db, "render_document", {"document_kind": "invoice", "owner_id": 999999})
    out = app.test_cli_runner().invoke(args=["jobs", "resume", str(job.id)])
    assert out.exit_code == 0, out.output
    db.expire_all()
    assert db.get(Job, job.id).interrupted_at and db.get(Job, job.id).resumed_by_id
    again = app.test_cli_runner().invoke(args=["jobs", "resume", str(job.id)])
    assert again.exit_code != 0 and "only once" in again.output
