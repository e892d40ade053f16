"""Webhooks: `python -m bench.webhooks --events 2000 --steps 200`.

Measures, in a fresh database (a SQLite file in /tmp, or PostgreSQL when
PORTAL_BENCH_DATABASE_URL is set; its database name must contain "bench": it is wiped):

- **outbox throughput**: N events in the outbox (over N/4 subjects, as services' steps
  come), delivered by delivery passes to a ThreadingHTTPServer on loopback started here
  (answering 204): events/s from the first pass to the last delivery, every signature made
  with standardwebhooks; the receiver counts what it got.
- **cost per service step**: block + unblock of M active services, each step with the event
  emitted and without (the event mapping emptied), interleaved in rounds: statements per step
  (the difference must be exactly one INSERT into webhook_event) and median milliseconds.

Prints the figures and appends them to bench/results.json as {"name", "value", "unit",
"baseline", "ratio", "database"}.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

TODAY = date(2026, 12, 4)


def _database_url() -> str:
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    if url:
        if "bench" not in (make_url(url).database or ""):
            raise SystemExit("PORTAL_BENCH_DATABASE_URL must name a database containing 'bench' (it is wiped).")
        return url
    path = Path(tempfile.gettempdir()) / "portal-bench-webhooks.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


class _Receiver:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def throughput(db, n_events: int) -> dict:
    from portal.domain import events
    from portal.domain import webhooks as rules
    from portal.domain.actors import Actor
    from portal.integrations import webhooks as delivery

    receiver = _Receiver()
    try:
        rules.create_endpoint(db.session, Actor.system("bench"), url=receiver.url, description="bench",
                              event_types=list(events.EVENT_TYPES), allow_http_loopback=True)
        subjects = max(1, n_events // 4)
        for i in range(n_events):
            events.emit(db.session, "service.blocked", "customer_service", i % subjects + 1,
                        customer_id=i % subjects + 1, changes={"state": ["active", "blocked"]})
        db.session.commit()
        settings = delivery.Settings(budget_seconds=600)
        started = time.perf_counter()
        passes = 0
        while receiver.count < n_events and passes < 1000:
            delivery.run_pass(db.session, settings)
            passes += 1
        seconds = time.perf_counter() - started
    finally:
        receiver.stop()
    rate = receiver.count / seconds if seconds else 0.0
    print(f"webhooks: {receiver.count}/{n_events} events delivered to a loopback receiver in {seconds:.2f} s "
          f"({passes} pass(es)): {rate:.0f} events/s")
    return {"name": f"webhooks outbox throughput ({n_events} events)", "value": round(rate, 1), "unit": "events/s",
            "baseline": None, "ratio": None, "delivered": receiver.count}


def step_cost(db, n_services: int, rounds: int = 3) -> list[dict]:
    from portal.domain import events
    from portal.domain import lifecycle as lc
    from portal.domain.actors import Actor
    from portal.models import ServiceState
    from tests.factories import CustomerFactory, CustomerServiceFactory, ServiceDefinitionFactory

    actor = Actor.system("bench")
    definition = ServiceDefinitionFactory()
    services = []
    for _ in range(n_services):
        services.append(CustomerServiceFactory(customer=CustomerFactory(), definition=definition,
                                               state=ServiceState.ACTIVE, ordered_on=date(2024, 1, 1),
                                               activated_on=date(2024, 1, 1), billing_from=date(2024, 1, 1)))
    db.session.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", count)
    original = dict(events.AUDIT_EVENTS)
    times = {True: [], False: []}
    counts = {True: [], False: []}
    inserts = {True: [], False: []}
    try:
        for _round in range(rounds):
            for emitting in (True, False):
                if not emitting:
                    events.AUDIT_EVENTS.clear()
                for svc in services:
                    for step in (lc.block, lc.unblock):
                        statements.clear()
                        t = time.perf_counter()
                        step(db.session, svc, actor=actor, on=TODAY, reason="bench", today=TODAY)
                        db.session.commit()
                        times[emitting].append(time.perf_counter() - t)
                        counts[emitting].append(len(statements))
                        inserts[emitting].append(sum(1 for s in statements if "webhook_event" in s))
                events.AUDIT_EVENTS.update(original)
    finally:
        events.AUDIT_EVENTS.update(original)
        sa_event.remove(db.engine, "before_cursor_execute", count)
    with_ms, without_ms = (statistics.median(times[k]) * 1000 for k in (True, False))
    with_n, without_n = (statistics.mean(counts[k]) for k in (True, False))
    outbox = statistics.mean(inserts[True])
    print(f"webhooks: a service step (block or unblock, committed) costs {with_ms:.2f} ms with the event, "
          f"{without_ms:.2f} ms without (+{with_ms - without_ms:.2f} ms); {with_n:.1f} statements against "
          f"{without_n:.1f} (+{with_n - without_n:.1f}); INSERTs into webhook_event per step: {outbox:.1f}")
    return [
        {"name": "webhooks: service step with the event", "value": round(with_ms, 3), "unit": "ms",
         "baseline": round(without_ms, 3), "ratio": round(with_ms / without_ms, 3) if without_ms else None},
        {"name": "webhooks: statements added per service step", "value": round(with_n - without_n, 2),
         "unit": "statements", "baseline": round(without_n, 2), "ratio": None, "outbox_inserts_per_step": outbox},
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events in the outbox to deliver")
    parser.add_argument("--steps", type=int, default=200, help="services blocked and unblocked")
    args = parser.parse_args(argv)

    from portal import create_app
    from portal.extensions import db
    from portal.models import Base

    url = _database_url()
    if url.startswith("postgresql"):
        from tests.conftest import ensure_postgres_database

        ensure_postgres_database(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    app = create_app({"DATABASE_URL": url, "HUEY_URL": "memory://", "RATELIMIT_STORAGE_URI": "memory://",
                      "MAIL_OUTBOX_DIR": str(tmp / "outbox"), "DOCUMENTS_DIR": str(tmp / "documents")})
    logging.getLogger().setLevel(logging.WARNING)
    database = make_url(url).get_backend_name()
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        results = [throughput(db, args.events), *step_cost(db, args.steps)]
    for r in results:
        r["database"] = database
    from bench.billing import append_results

    append_results(results)


if __name__ == "__main__":
    main()
