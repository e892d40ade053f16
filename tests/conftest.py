"""Test harness: one app per session over a fresh schema; every test starts from empty
tables (cleaned after each test, so live servers and other processes see real commits).
PORTAL_TEST_DATABASE_URL selects PostgreSQL; otherwise a temporary SQLite file."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import event, text

from portal import create_app
from portal.extensions import db as _db
from portal.extensions import limiter
from portal.models import Base

PASSWORD = "Correct-horse-1"


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if url:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        return f"{url}_{worker}" if worker else url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def ensure_postgres_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}):
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = _database_url(tmp_path_factory)
    if url.startswith("postgresql"):
        ensure_postgres_database(url)
    return url


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis: PORTAL_TEST_REDIS_URL, else the one on 127.0.0.1:6379, else a redis-server
    started for the run on a free loopback port (scripts/system-packages installs it). Never a
    skip: without any, the tests that need it fail saying so."""
    import shutil
    import socket
    import subprocess
    import time

    url = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if _redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"no Redis answers at {url} and redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if _redis_answers(url):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not answer on port {port}")
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("instance")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "MAIL_OUTBOX_DIR": str(tmp / "outbox"),
            "DOCUMENTS_DIR": str(tmp / "documents"),
            "UPLOADS_DIR": str(tmp / "uploads"),
            "HUEY_URL": "memory://",
            "RATELIMIT_STORAGE_URI": "memory://",
            "BASE_URL": "http://localhost",
            # The Komerční banka sample statements are for a second account of the operator's.
            "STATEMENT_ACCOUNTS": ["CZ4201000001071234567890"],
        }
    )
    app.test_client_class = PortalClient
    with app.app_context():
        Base.metadata.drop_all(_db.engine)
        Base.metadata.create_all(_db.engine)
    yield app
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def clean_tables(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))
            conn.execute(text("DELETE FROM sqlite_sequence")) if conn.scalar(
                text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")
            ) else None
            conn.execute(text("PRAGMA foreign_keys=ON"))


@pytest.fixture(autouse=True)
def db(app):
    """The session for the test, in an app context; empty tables afterwards."""
    ctx = app.app_context()
    ctx.push()
    limiter.reset()
    yield _db.session
    _db.session.rollback()
    _db.session.remove()
    clean_tables(_db.engine)
    ctx.pop()


class PortalClient(FlaskClient):
    """A test client that sends the CSRF token with every POST unless told not to."""

    def csrf_token(self) -> str:
        app = self.application
        with self.session_transaction() as sess:
            raw = sess.get("csrf_token")
            if raw is None:
                import hashlib

                raw = hashlib.sha1(os.urandom(64)).hexdigest()  # noqa: S324 — what Flask-WTF does
                sess["csrf_token"] = raw
        s = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token")
        return s.dumps(raw)

    def post(self, *args, csrf: bool = True, **kwargs):
        if csrf:
            if "json" in kwargs:
                kwargs.setdefault("headers", {})["X-CSRFToken"] = self.csrf_token()
            else:
                data = kwargs.get("data")
                if data is None:
                    data = {}
                if isinstance(data, dict) and "csrf_token" not in data:
                    data = {**data, "csrf_token": self.csrf_token()}
                kwargs["data"] = data
        return super().post(*args, **kwargs)

    def htmx(self, method: str, url: str, **kwargs):
        headers = {"HX-Request": "true", **kwargs.pop("headers", {})}
        if method.upper() != "GET":
            headers["X-CSRFToken"] = self.csrf_token()
        return self.open(url, method=method.upper(), headers=headers, **kwargs)


@pytest.fixture
def client(app) -> PortalClient:
    return app.test_client()


@pytest.fixture
def make_client(app):
    return app.test_client


def login_customer(client: PortalClient, email: str, password: str = PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


def login_operator(client: PortalClient, email: str, password: str = PASSWORD):
    return client.post("/staff/login", data={"email": email, "password": password})


@pytest.fixture
def customer_login(db):
    from tests.factories import CustomerLoginFactory

    login = CustomerLoginFactory()
    db.commit()
    return login


@pytest.fixture
def operator(db):
    from tests.factories import OperatorFactory

    op = OperatorFactory(admin=True)
    db.commit()
    return op


@pytest.fixture
def customer_client(client, customer_login):
    resp = login_customer(client, customer_login.email)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


@pytest.fixture
def staff_client(client, operator):
    resp = login_operator(client, operator.email)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


class QueryCounter:
    def __init__(self):
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not re.match(r"\s*(SAVEPOINT|RELEASE|ROLLBACK|PRAGMA)", statement, re.I):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app):
    """`with count_queries() as q: ...; q.count` — SQL statements issued inside the block."""
    from contextlib import contextmanager

    @contextmanager
    def counter():
        q = QueryCounter()
        event.listen(_db.engine, "before_cursor_execute", q)
        try:
            yield q
        finally:
            event.remove(_db.engine, "before_cursor_execute", q)

    return counter


@pytest.fixture
def outbox(app):
    """The e-mails written so far, oldest first, as parsed messages with a `.text` body."""
    import email
    from email import policy

    def read() -> list:
        folder = Path(app.config["MAIL_OUTBOX_DIR"])
        if not folder.exists():
            return []
        messages = []
        for p in sorted(folder.glob("*.eml")):
            msg = email.message_from_bytes(p.read_bytes(), policy=policy.default)
            msg.text = msg.get_body(preferencelist=("plain",)).get_content()
            messages.append(msg)
        return messages

    folder = Path(app.config["MAIL_OUTBOX_DIR"])
    if folder.exists():
        for p in folder.glob("*.eml"):
            p.unlink()
    return read
