"""`--queue` turns a long command into a background job; the job runs the same rule."""
from datetime import date

from sqlalchemy import select

from portal.models import BillingRun, Job, JobState


def test_billing_run_with_queue_becomes_a_job(app, db):
    result = app.test_cli_runner().invoke(args=["billing", "run", "--period", "2026-11", "--queue"])
    assert result.exit_code == 0, result.output
    assert "Queued job" in result.output
    job = db.scalar(select(Job))
    assert job.kind == "billing_run" and job.params["period_start"] == "2026-11-01"
    # The test queue runs jobs at once (memory://, immediate): the run really happened.
    assert job.state == JobState.DONE, job.error
    run = db.scalar(select(BillingRun))
    assert run.period_start == date(2026, 11, 1) and run.job_id == job.id


def test_dunning_run_with_queue_becomes_a_job(app, db):
    result = app.test_cli_runner().invoke(args=["dunning", "run", "--date", "2026-11-20", "--dry-run", "--queue"])
    assert result.exit_code == 0, result.output
    job = db.scalar(select(Job))
    assert job.kind == "dunning_run" and job.params["dry_run"] is True
    assert job.state == JobState.DONE, job.error


def test_statement_import_with_queue_becomes_a_job(app, db, tmp_path):
    f = tmp_path / "statement.csv"
    f.write_text("date;amount;currency;variable_symbol;transaction_id\n2026-11-02;605,00;CZK;123;TX-1\n")
    result = app.test_cli_runner().invoke(args=["payments", "import", str(f), "--queue"])
    assert result.exit_code == 0, result.output
    job = db.scalar(select(Job))
    assert job.kind == "statement_import" and job.state == JobState.DONE, job.error
    assert job.result["payments_count"] == 1


def test_a_bad_period_is_refused_before_queueing(app, db):
    result = app.test_cli_runner().invoke(args=["billing", "run", "--period", "2026-13", "--queue"])
    assert result.exit_code != 0
    assert db.scalar(select(Job)) is None
