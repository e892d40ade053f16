"""Webhook delivery on the job queue: a pass every minute (huey's periodic task, one at a time
across consumers), each pass fanning out new events and sending what is due for at most
WEBHOOKS_PASS_SECONDS. Pages and billing runs only ever insert the event."""
from __future__ import annotations

from flask import Flask
from huey import crontab

from portal.extensions import db
from portal.integrations.webhooks import PassResult, Settings, run_pass
from portal.jobs.registry import periodic


def deliver_webhooks(app: Flask) -> PassResult:
    """One delivery pass in the app's session (inside an app context)."""
    try:
        return run_pass(db.session, Settings.from_config(app.config))
    finally:
        db.session.remove()


@periodic("webhooks_deliver", crontab(minute="*"))
def webhooks_periodic(app: Flask) -> None:
    if app.config.get("WEBHOOKS_ENABLED", True):
        deliver_webhooks(app)
