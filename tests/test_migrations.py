"""The Alembic migrations build exactly the model, on SQLite and on PostgreSQL, and take it
down again.

On a fresh, empty database: `flask db upgrade` (run programmatically), then autogenerate must
find no difference between the database and `Base.metadata`, then downgrading to base leaves
only alembic_version. SQLite runs always; PostgreSQL when PORTAL_TEST_DATABASE_URL is set (in a
separate `<name>_migrations` database, created and dropped here)."""
from __future__ import annotations

import os

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.extensions import db as _db
from portal.models import Base


def _postgres_url() -> str | None:
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        return None
    u = make_url(url)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    name = f"{u.database}_{worker}_migrations" if worker else f"{u.database}_migrations"
    return u.set(database=name).render_as_string(hide_password=False)


def _admin(url: str):
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _recreate_postgres(url: str) -> None:
    name = make_url(url).database
    engine = _admin(url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _drop_postgres(url: str) -> None:
    engine = _admin(url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    url = _postgres_url()
    if url is None:
        pytest.skip("PostgreSQL: set PORTAL_TEST_DATABASE_URL")
    _recreate_postgres(url)
    try:
        yield url
    finally:
        _drop_postgres(url)


@pytest.fixture
def migration_app(empty_database, tmp_path):
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": empty_database,
        "HUEY_URL": "memory://",
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DOCUMENTS_DIR": str(tmp_path / "documents"),
    })
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        _db.session.remove()
        _db.engine.dispose()
        ctx.pop()


def _differences(engine) -> list:
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return compare_metadata(mc, Base.metadata)


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _head(app) -> str:
    cfg = Config(os.path.join(app.extensions["migrate"].directory, "alembic.ini"))
    cfg.set_main_option("script_location", app.extensions["migrate"].directory)
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def test_migrations_have_a_single_head(app):
    assert _head(app)


def test_migrations_build_exactly_the_model_and_take_it_down(migration_app):
    """One database per backend for the whole round trip (creating and dropping PostgreSQL
    databases is slow): upgrade, compare, upgrade again, downgrade, upgrade again."""
    engine = _db.engine
    assert _tables(engine) == set()

    # flask db upgrade on an empty database builds exactly the model.
    flask_migrate.upgrade()
    diff = _differences(engine)
    assert diff == [], "the migrations and the model differ:\n" + "\n".join(map(repr, diff))
    assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == _head(migration_app)

    # Running it again changes nothing.
    flask_migrate.upgrade()
    assert _differences(engine) == []

    # Downgrading to base leaves only alembic_version, and nothing of ours behind.
    flask_migrate.downgrade(revision="base")
    assert _tables(engine) == {"alembic_version"}
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 0
        if engine.dialect.name == "postgresql":
            assert conn.scalars(text("SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                                     "WHERE n.nspname = 'public' AND t.typtype = 'e'")).all() == []
            assert conn.scalars(text("SELECT sequence_name FROM information_schema.sequences "
                                     "WHERE sequence_schema = 'public'")).all() == []
        else:
            assert conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index' "
                                     "AND name NOT LIKE 'sqlite_%'")).all() == []

    # Every downgrade is complete enough for the upgrade to run again.
    flask_migrate.upgrade()
    assert _differences(engine) == []


def test_a_new_right_reaches_the_existing_administrator_role(migration_app):
    """Rights added after the first deployment (0008 usage.write) are given to the
    Administrator role the database already has; a downgrade takes them back."""
    flask_migrate.upgrade(revision="0007_api_tokens")
    with _db.engine.begin() as conn:
        conn.execute(text("INSERT INTO role (name, created_at, updated_at) VALUES ('Administrator', "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    flask_migrate.upgrade()
    granted = text('SELECT r.code FROM role_right rr JOIN "right" r ON r.id = rr.right_id '
                   "JOIN role ON role.id = rr.role_id WHERE role.name = 'Administrator'")
    with _db.engine.connect() as conn:
        assert "usage.write" in conn.scalars(granted).all()
    flask_migrate.downgrade(revision="0007_api_tokens")
    with _db.engine.connect() as conn:
        assert "usage.write" not in conn.scalars(granted).all()
