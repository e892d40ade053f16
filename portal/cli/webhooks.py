"""`flask webhooks …`: run a delivery pass by hand (the job consumer runs one every minute)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

group = AppGroup("webhooks", help="Webhooks: deliver the outbox's events to their endpoints.")


@group.command("deliver")
def deliver():
    """Fan out new events and send what is due, once (at most WEBHOOKS_PASS_SECONDS)."""
    from portal.jobs import deliver_webhooks

    result = deliver_webhooks(current_app._get_current_object())
    click.echo("Webhooks: {dispatched} event(s) dispatched, {delivered} delivered, {retrying} to retry, "
               "{failed} failed, {deferred} left for the next pass.".format(**result.as_dict()))
