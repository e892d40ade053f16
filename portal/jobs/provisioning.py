"""Provisioning on the job queue: a pass every minute (huey's periodic task), applying the
outbox the service steps wrote (portal.integrations.provisioning)."""
from __future__ import annotations

from flask import Flask
from huey import crontab

from portal.extensions import db
from portal.integrations.provisioning import SyncResult, radius_driver, run_pass
from portal.jobs.registry import periodic


def sync_network(app: Flask) -> SyncResult:
    """One provisioning pass in the app's session (inside an app context)."""
    try:
        return run_pass(db.session, radius_driver(app.config),
                        retry_base=float(app.config.get("RADIUS_RETRY_BASE_SECONDS", 30.0)))
    finally:
        db.session.remove()


@periodic("radius_sync", crontab(minute="*"))
def radius_periodic(app: Flask) -> None:
    if app.config.get("RADIUS_ENABLED", True):
        sync_network(app)
