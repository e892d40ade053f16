"""The job row written in its own short transaction (state, progress, heartbeat), and the
billing run a lost job was carrying out failed with it."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from portal.extensions import db
from portal.models import BillingRun, BillingRunState, Job, JobState

log = logging.getLogger("portal.jobs")  # one logger for the package, as before it was split


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


def _fail_billing_run_of(job_id: int, now: datetime, error: str, conn=None) -> None:
    """The billing run a lost job was carrying out is failed too (in the job's transaction
    when `conn` is given): its finished batches stay, and resuming (run_billing with its
    run_id) bills the rest."""
    stmt = (update(BillingRun)
            .where(BillingRun.job_id == job_id,
                   BillingRun.state.in_([BillingRunState.PREVIEWED, BillingRunState.RUNNING]))
            .values(state=BillingRunState.FAILED, error=error, finished_at=now))
    if conn is not None:
        conn.execute(stmt)
        return
    with db.engine.begin() as own:
        own.execute(stmt)
