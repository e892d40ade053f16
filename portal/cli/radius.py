"""`flask radius …`: a provisioning pass by hand (the job consumer runs one every minute), and
a FreeRADIUS configuration that reads the portal's database."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

group = AppGroup("radius", help="RADIUS: apply the provisioning outbox; write a FreeRADIUS configuration.")


@group.command("sync")
def sync():
    """Apply the pending provisioning changes once."""
    from portal.jobs import sync_network

    result = sync_network(current_app._get_current_object())
    click.echo("RADIUS: {applied} service(s) in sync, {failed} failed.".format(**result.as_dict()))


@group.command("config")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--port", default=1812, show_default=True, type=int, help="Authentication port (accounting: +1).")
def config(out, port):
    """Write a complete FreeRADIUS configuration: run it with `freeradius -f -d OUT`."""
    from portal.integrations.freeradius_config import ConfigError, render_config

    app = current_app
    try:
        root = render_config(out, database_url=app.config["SQLALCHEMY_DATABASE_URI"], port=port,
                             secret=app.config.get("RADIUS_LOCAL_SECRET", "testing123"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"FreeRADIUS configuration written to {root}; run: freeradius -f -d {root}")
