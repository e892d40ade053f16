"""Shared by the page benchmark and the load test: a bench database, gunicorn on loopback,
logging in over HTTP, and the SQL statement count of a page."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789abcdef-0123456789"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def checked_url(url: str, env_name: str, word: str = "bench") -> str:
    if word not in (make_url(url).database or ""):
        raise SystemExit(f"{env_name} must name a database containing {word!r} (it is wiped).")
    return url


def portal_app(url: str, tmp: Path):
    from portal import create_app

    if url.startswith("postgresql"):
        from tests.conftest import ensure_postgres_database

        ensure_postgres_database(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "HUEY_URL": "memory://",
                      "RATELIMIT_STORAGE_URI": "memory://", "MAIL_OUTBOX_DIR": str(tmp / "outbox"),
                      "DOCUMENTS_DIR": str(tmp / "documents"), "UPLOADS_DIR": str(tmp / "uploads")})
    logging.getLogger().setLevel(logging.WARNING)
    return app


def server_env(url: str, tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": SECRET, "PORTAL_HUEY_URL": "memory://",
        "PORTAL_MAIL_OUTBOX_DIR": str(tmp / "outbox"), "PORTAL_DOCUMENTS_DIR": str(tmp / "documents"),
        "PORTAL_UPLOADS_DIR": str(tmp / "uploads"), "PYTHONPATH": str(ROOT), **extra,
    })
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_path: str, env: dict, *, workers: int = 2, log: Path, timeout: float = 60):
    """gunicorn with `workers` sync workers on a free loopback port; yields the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", "--error-logfile", str(log), "--timeout", "120", app_path]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"gunicorn exited ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start in {timeout} s; see {log}") from None
                time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def login(base: str, path: str, email: str, password: str):
    """A logged-in requests.Session (log in like a browser: the form, its CSRF token, POST)."""
    import requests

    s = requests.Session()
    page = s.get(base + path, timeout=30)
    m = CSRF.search(page.text)
    if not m:
        raise SystemExit(f"no CSRF token on {path} (HTTP {page.status_code})")
    resp = s.post(base + path, data={"csrf_token": m.group(1), "email": email, "password": password},
                  allow_redirects=False, timeout=30)
    if resp.status_code != 302:
        raise SystemExit(f"login of {email} at {path} failed: HTTP {resp.status_code}")
    s.csrf_token = m.group(1)
    return s


def cookie_header(session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def csrf_of(session, base: str, path: str) -> str | None:
    m = CSRF.search(session.get(base + path, timeout=30).text)
    return m.group(1) if m else None


class StatementCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not re.match(r"\s*(SAVEPOINT|RELEASE|ROLLBACK|PRAGMA)", statement, re.I):
            self.count += 1


BARE_PATH = "/__bare"
FLOOR_PATH = "/__empty-selfcare-page"


def add_floor_page(app) -> None:
    """A reference, not a page of the portal: a logged-in customer's page with the selfcare
    layout and nothing in it (the session check, the layout, the security headers — what every
    page pays before its own content). Added only by the benchmark, to both the gunicorn and
    the in-process app."""
    from flask import render_template

    from portal.web.access import customer_required

    template = app.jinja_env.from_string('{% extends "selfcare/layout.html" %}{% block content %}{% endblock %}')

    @customer_required
    def empty_selfcare_page():
        return render_template(template)

    app.add_url_rule(FLOOR_PATH, "bench_empty_selfcare_page", empty_selfcare_page)


def make_bare_app():
    """The bare Flask endpoint the pages are compared with."""
    from flask import Flask

    bare = Flask("bare")
    bare.add_url_rule(BARE_PATH, "bare", lambda: "ok")
    return bare


def cpu_ms(client, url: str, headers: dict, n: int = 30) -> float:
    """CPU milliseconds of this process per request (the neighbours' load does not count)."""
    client.get(url, headers=headers)
    started = time.process_time()
    for _ in range(n):
        client.get(url, headers=headers)
    return (time.process_time() - started) / n * 1000


def statements_per_page(app, email: str, password: str, urls: dict[str, tuple[str, dict]],
                        login_path: str = "/login", cpu: dict | None = None) -> dict[str, int | None]:
    """SQL statements each URL issues in-process (Flask test client, second request: the
    first warms caches and the session touch). None when the URL is not 200. With `cpu`,
    also the in-process CPU milliseconds per request of each URL, into that dict."""
    from sqlalchemy import event

    from portal.extensions import db

    client = app.test_client()
    page = client.get(login_path)
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    resp = client.post(login_path, data={"csrf_token": token, "email": email, "password": password})
    if resp.status_code != 302:
        raise SystemExit(f"test-client login of {email} failed: HTTP {resp.status_code}")
    out: dict[str, int | None] = {}
    with app.app_context():
        engine = db.engine
    for name, (url, headers) in urls.items():
        if client.get(url, headers=headers).status_code != 200:
            out[name] = None
            continue
        counter = StatementCounter()
        event.listen(engine, "before_cursor_execute", counter)
        try:
            client.get(url, headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", counter)
        out[name] = counter.count
        if cpu is not None:
            cpu[name] = cpu_ms(client, url, headers)
    return out


def statements_per_request(app, urls: dict[str, tuple[str, dict]], cpu: dict | None = None) -> dict[str, int | None]:
    """`statements_per_page` for requests that carry their own credentials (API tokens)."""
    from sqlalchemy import event

    from portal.extensions import db

    client = app.test_client()
    out: dict[str, int | None] = {}
    with app.app_context():
        engine = db.engine
    for name, (url, headers) in urls.items():
        if client.get(url, headers=headers).status_code != 200:
            out[name] = None
            continue
        counter = StatementCounter()
        event.listen(engine, "before_cursor_execute", counter)
        try:
            client.get(url, headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", counter)
        out[name] = counter.count
        if cpu is not None:
            cpu[name] = cpu_ms(client, url, headers)
    return out


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))
