"""A cut database connection costs no user a 500: after the server drops the portal's
connections (a PostgreSQL restart, a failover, a pgbouncer restart — here
pg_terminate_backend from an admin connection), the next request on every pooled connection
still succeeds, because the pool pings a connection before handing it out."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.extensions import db as _db
from tests.conftest import PortalClient, login_operator

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(not os.environ.get("PORTAL_TEST_DATABASE_URL", "").startswith("postgresql"),
                       reason="needs PostgreSQL (PORTAL_TEST_DATABASE_URL)"),
]

POOLED = 4  # connections held open at once, so several stale ones sit in the pool
ROUNDS = 5


def test_engine_pings_before_use(app):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True
    assert _db.engine.pool._pre_ping


def _terminate_portal_backends(admin, database: str) -> int:
    with admin.connect() as conn:
        return len(conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = :name AND pid <> pg_backend_pid() AND backend_type = 'client backend'"),
            {"name": database},
        ).all())


def _fill_pool(engine) -> None:
    """Check out several connections at once and give them back: the pool then holds that many."""
    conns = [engine.connect() for _ in range(POOLED)]
    for conn in conns:
        conn.execute(text("SELECT 1"))
    for conn in conns:
        conn.close()


@pytest.mark.parametrize("pre_ping", [True, False], ids=["configured", "without-pre-ping"])
def test_terminated_backends_cost_no_500(database_url, operator, tmp_path, pre_ping):
    overrides = {
        "DATABASE_URL": database_url,
        "HUEY_URL": "memory://",
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DOCUMENTS_DIR": str(tmp_path / "documents"),
        "RATELIMIT_ENABLED": False,
        "PROPAGATE_EXCEPTIONS": False,  # a failing request is a 500, as users see it
    }
    if not pre_ping:  # the control: what the defect looked like
        overrides["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": False}
    email = operator.email
    _db.session.close()  # the test's own session holds no connection across the cuts
    web = create_app(overrides)
    web.test_client_class = PortalClient
    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    database = make_url(database_url).database
    statuses = []
    try:
        client = web.test_client()
        assert login_operator(client, email).status_code == 302
        with web.app_context():
            engine = _db.engine
        for _ in range(ROUNDS):
            _fill_pool(engine)
            assert _terminate_portal_backends(admin, database) >= POOLED
            # Every pooled connection is now dead; draw each of them with a request.
            for _ in range(POOLED + 1):
                statuses.append(client.get("/staff/").status_code)
    finally:
        _db.session.close()
        admin.dispose()
        with web.app_context():
            _db.engine.dispose()
    if pre_ping:
        assert set(statuses) == {200}, statuses
    else:
        assert 500 in statuses, statuses
