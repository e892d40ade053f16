"""Alembic environment for the portal: the app's engine and the one shared model."""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from portal.models import Base
from portal.models.base import UTCDateTime

config = context.config
if config.config_file_name and not current_app.config.get("TESTING"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Our column types render as portal.models.base types with their import."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("import portal.models.base")
        return "portal.models.base.UTCDateTime()"
    return False


def _configure(**kw):
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        compare_type=True,
        compare_server_default=False,
        render_item=render_item,
        **kw,
    )


def run_migrations_offline():
    _configure(url=str(current_app.extensions["migrate"].db.engine.url), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = current_app.extensions["migrate"].db.engine
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
