"""Load test on PostgreSQL: `python -m bench.loadtest [--seconds 60] [--scale medium]`.

Builds a medium dataset (bench/dataset.py) in PORTAL_LOADTEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1/portal_loadtest; its name must contain "loadtest":
it is wiped), serves the portal (wsgi.py) with gunicorn on loopback, and for a bounded time
runs 50 customers browsing (dashboard, invoices, an invoice, payments, services, requests;
now and then a new request) and 5 operators working through the staff pages this build has
(the dashboard at least; customer search and customer pages when present), each a logged-in
HTTP session in its own thread — while, in separate processes, a billing run for this month,
a dunning run and a bank statement import (payments for the open invoices, some overpaid,
some unknown) execute. The per-IP login limit is raised for the run (every simulated
browser logs in from 127.0.0.1).

Prints requests served, errors (must be 0: a 5xx, a failed connection, an unexpected status,
or a background command failing), duplicate invoices (must be 0: more than one invoice per
customer, period, billing plan and currency) and payments left unpaired that should have
paired (must be 0: money left unallocated for a customer with an open invoice in that
currency, or a payment left unmatched although its variable symbol names an invoice).
Exit code 1 when any must-be-zero figure is not zero.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text

from bench import dataset
from bench.server import ROOT, checked_url, gunicorn, login, portal_app, server_env, tmpdir

CUSTOMERS = 50
OPERATORS = 5
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1/portal_loadtest"
HARD_LIMIT = 900  # seconds: the whole browsing phase never runs longer


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.served = 0
        self.by_status: Counter = Counter()
        self.errors: list[str] = []
        self.latencies: list[float] = []

    def record(self, method: str, url: str, status: int | None, seconds: float, allowed: tuple[int, ...],
               error: str | None = None) -> None:
        with self.lock:
            self.served += status is not None
            self.by_status[status or "no answer"] += 1
            self.latencies.append(seconds)
            if error or status not in allowed:
                if len(self.errors) < 50:
                    self.errors.append(f"{method} {url}: {error or status}")
                else:
                    self.errors.append("")


def _request(stats: Stats, session, method: str, base: str, url: str, allowed=(200,), **kwargs):
    t = time.perf_counter()
    try:
        resp = session.request(method, base + url, allow_redirects=False, timeout=60, **kwargs)
    except Exception as exc:  # noqa: BLE001 — every failure is counted
        stats.record(method, url, None, time.perf_counter() - t, allowed, f"{type(exc).__name__}: {exc}")
        return None
    stats.record(method, url, resp.status_code, time.perf_counter() - t, allowed)
    return resp


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def customer_loop(stats: Stats, session, base: str, me: dict, stop: threading.Event, rng: random.Random) -> None:
    pages = ["/", "/invoices", f"/invoices/{me['invoice_id']}", "/payments", "/services", "/requests",
             "/invoices?unpaid=y", "/profile"]
    n = 0
    while not stop.is_set():
        url = pages[n % len(pages)]
        resp = _request(stats, session, "GET", base, url)
        n += 1
        if url == "/requests" and resp is not None and rng.random() < 0.15:
            m = CSRF.search(resp.text)
            if m:
                _request(stats, session, "POST", base, "/requests", allowed=(302, 303),
                         data={"csrf_token": m.group(1), "kind": "question", "subject": f"Load test {n}",
                               "message": "Is my internet fine?"})
        stop.wait(rng.uniform(0.05, 0.3))


def operator_loop(stats: Stats, session, base: str, urls: list[str], stop: threading.Event,
                  rng: random.Random) -> None:
    while not stop.is_set():
        _request(stats, session, "GET", base, rng.choice(urls), headers=rng.choice([{}, {"HX-Request": "true"}]))
        stop.wait(rng.uniform(0.05, 0.3))


def statement_csv(app, path: Path, today: date) -> int:
    """Payments for the open invoices (exact, some overpaid by 100, a few to the customer's
    VS), and a few with unknown symbols (those rightly wait for staff)."""
    from portal.extensions import db
    from portal.models import Customer, Invoice

    with app.app_context():
        rows = db.session.execute(
            select(Invoice.variable_symbol, Invoice.gross_total, Customer.variable_symbol)
            .join(Customer, Customer.id == Invoice.customer_id)
            .where(Invoice.paid_amount == 0).order_by(Invoice.id)).all()
    lines = ["date;amount;currency;variable_symbol;transaction_id"]
    for k, (vs, gross, customer_vs) in enumerate(rows):
        amount = gross + (Decimal("100.00") if k % 5 == 0 else Decimal("0.00"))
        lines.append(f"{today:%Y-%m-%d};{amount};CZK;{customer_vs if k % 7 == 0 else vs};lt-{k}")
    for k in range(10):
        lines.append(f"{today:%Y-%m-%d};250.00;CZK;99{k:08d};lt-unknown-{k}")
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def checks(app) -> dict:
    from portal.extensions import db

    with app.app_context():
        s = db.session
        duplicates = s.execute(text(
            "SELECT count(*) FROM (SELECT customer_id, period_start, billing_plan_id, currency FROM invoice "
            "WHERE type = 'invoice' AND state = 'issued' "
            "GROUP BY customer_id, period_start, billing_plan_id, currency HAVING count(*) > 1) d")).scalar_one()
        credit_left = s.execute(text(
            "SELECT count(*) FROM payment p WHERE p.unallocated > 0 AND p.customer_id IS NOT NULL AND EXISTS ("
            " SELECT 1 FROM invoice i WHERE i.customer_id = p.customer_id AND i.currency = p.currency"
            " AND i.type IN ('invoice', 'advance') AND i.state = 'issued'"
            " AND i.gross_total - i.paid_amount - i.credited_amount > 0.005)")).scalar_one()
        unmatched_known = s.execute(text(
            "SELECT count(*) FROM payment p WHERE p.state = 'unmatched' AND p.variable_symbol IN ("
            " SELECT variable_symbol FROM invoice WHERE state = 'issued' AND type IN ('invoice', 'advance'))"
        )).scalar_one()
        figures = {
            "invoices": s.execute(text("SELECT count(*) FROM invoice")).scalar_one(),
            "invoices this month": s.execute(text(
                "SELECT count(*) FROM invoice WHERE period_start = :p"), {"p": date.today().replace(day=1)}
            ).scalar_one(),
            "reminders": s.execute(text("SELECT count(*) FROM reminder")).scalar_one(),
            "payments": s.execute(text("SELECT count(*) FROM payment")).scalar_one(),
            "payments waiting for staff": s.execute(text(
                "SELECT count(*) FROM payment WHERE state = 'unmatched'")).scalar_one(),
        }
    return {"duplicates": duplicates, "unpaired": credit_left + unmatched_known, "credit_left": credit_left,
            "unmatched_known": unmatched_known, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="browsing time at least (and until the "
                        f"background runs finish, at most {HARD_LIMIT} s)")
    parser.add_argument("--scale", choices=sorted(dataset.SCALES), default="medium")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args(argv)

    url = checked_url(os.environ.get("PORTAL_LOADTEST_DATABASE_URL", DEFAULT_URL), "PORTAL_LOADTEST_DATABASE_URL",
                      "loadtest")
    if not url.startswith("postgresql"):
        raise SystemExit("The load test runs on PostgreSQL (PORTAL_LOADTEST_DATABASE_URL).")
    tmp = tmpdir("portal-loadtest-")
    app = portal_app(url, tmp)
    scale = dataset.SCALES[args.scale]
    today = date.today()
    print(f"[loadtest] {url}, scale {args.scale}")
    from portal.extensions import db
    from portal.models import CustomerLogin, Invoice, Operator

    with app.app_context():
        dataset.reset_schema(db.engine)
        dataset.build(db.session, scale, today=today)
        admin = db.session.scalar(select(Operator).where(Operator.email == dataset.OPERATOR_EMAIL))
        for k in range(1, OPERATORS):
            db.session.add(Operator(email=f"operator{k}@bench.example", name=f"Operator {k}",
                                    password_hash=admin.password_hash, roles=list(admin.roles)))
        db.session.commit()
        step = max(scale.customers // CUSTOMERS, 1)
        people = []
        for cid in range(1, scale.customers + 1, step)[:CUSTOMERS]:
            people.append({"email": db.session.scalar(select(CustomerLogin.email).where(
                CustomerLogin.customer_id == cid)), "customer_id": cid,
                "invoice_id": db.session.scalar(select(func.max(Invoice.id)).where(Invoice.customer_id == cid))})
        staff_rules = [r.rule for r in app.url_map.iter_rules()
                       if r.endpoint.startswith("staff.") and not r.arguments and "GET" in (r.methods or ())
                       and "login" not in r.endpoint and "logout" not in r.endpoint]
        db.session.remove()
        db.engine.dispose()
    statement = tmp / "statement.csv"

    env = server_env(url, tmp, PORTAL_LOGIN_LIMIT_PER_IP="10000 per minute", FLASK_APP="wsgi.py")
    stats = Stats()
    background: dict[str, subprocess.Popen] = {}
    with gunicorn("wsgi:app", env, workers=args.workers, log=tmp / "gunicorn.log") as base:
        sessions = [login(base, "/login", p["email"], dataset.PASSWORD) for p in people]
        operators = [login(base, "/staff/login", e, dataset.PASSWORD)
                     for e in [dataset.OPERATOR_EMAIL] + [f"operator{k}@bench.example" for k in range(1, OPERATORS)]]
        # The staff pages this build has: every GET page without arguments, a search and
        # customer pages when the customers area is there.
        candidates = staff_rules + [f"/staff/customers?q={q}" for q in ("novak", "dvor", "B00001")] + [
            f"/staff/customers/{p['customer_id']}" for p in people[:10]]
        staff_urls = [u for u in candidates
                      if operators[0].get(base + u, allow_redirects=False, timeout=60).status_code == 200]
        print(f"  {len(sessions)} customers and {len(operators)} operators logged in; staff pages in use: "
              f"{len(staff_urls)} ({', '.join(sorted({u.split('?')[0] for u in staff_urls})[:12])}…)")
        stop = threading.Event()
        threads = [threading.Thread(target=customer_loop, args=(stats, s, base, p, stop, random.Random(k)))
                   for k, (s, p) in enumerate(zip(sessions, people, strict=True))]
        threads += [threading.Thread(target=operator_loop, args=(stats, s, base, staff_urls, stop, random.Random(100 + k)))
                    for k, s in enumerate(operators)]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(min(5, args.seconds / 4))
        payments = statement_csv(app, statement, today)
        flask = [sys.executable, "-m", "flask"]
        logs = {}
        for name, cmd in (("billing run", [*flask, "billing", "run", "--period", f"{today:%Y-%m}"]),
                          ("dunning run", [*flask, "dunning", "run"]),
                          ("statement import", [*flask, "payments", "import", str(statement)])):
            logs[name] = open(tmp / f"{name.replace(' ', '-')}.log", "w")  # noqa: SIM115 — closed below
            background[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs[name],  # noqa: S603
                                                stderr=subprocess.STDOUT)
        print(f"  billing run, dunning run and statement import ({payments} payments) started "
              f"{time.monotonic() - started:.0f} s into the browsing")
        while time.monotonic() - started < HARD_LIMIT:
            done = all(p.poll() is not None for p in background.values())
            if done and time.monotonic() - started >= args.seconds:
                break
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        for name, p in background.items():
            if p.poll() is None:
                p.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=30)
                stats.errors.append(f"{name}: still running after {HARD_LIMIT} s")
            logs[name].close()
    bg_errors = []
    for name, p in background.items():
        out = (tmp / f"{name.replace(' ', '-')}.log").read_text()
        last = [line for line in out.splitlines() if line.strip() and "INFO" not in line][-1:] or [""]
        print(f"  {name}: exit {p.returncode}; {last[0][:160]}")
        if p.returncode != 0:
            bg_errors.append(f"{name} exited {p.returncode}: {out[-1500:]}")
    found = checks(app)
    errors = len(stats.errors) + len(bg_errors)
    lat = sorted(stats.latencies)
    p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else 0.0
    print()
    print(f"### Load test — PostgreSQL, {scale.customers} customers, gunicorn {args.workers} sync workers, "
          f"{CUSTOMERS} customers + {OPERATORS} operators for {elapsed:.0f} s")
    print()
    print("| figure | value | must be |")
    print("|---|---:|---|")
    print(f"| requests served | {stats.served} ({stats.served / elapsed:.0f}/s, p95 {p95:.0f} ms) | |")
    print(f"| responses by status | {dict(sorted(stats.by_status.items(), key=str))} | |")
    print(f"| errors | {errors} | 0 |")
    print(f"| duplicate invoices | {found['duplicates']} | 0 |")
    print(f"| payments left unpaired that should have paired | {found['unpaired']} "
          f"(credit beside an open invoice {found['credit_left']}, unmatched with an invoice's VS "
          f"{found['unmatched_known']}) | 0 |")
    for key in ("invoices", "invoices this month", "reminders", "payments", "payments waiting for staff"):
        print(f"| {key} | {found[key]} | |")
    for e in [e for e in stats.errors if e][:20] + bg_errors:
        print(f"  error: {e[:500]}")
    failed = errors or found["duplicates"] or found["unpaired"]
    print()
    print("FAILED" if failed else "OK: every must-be-zero figure is zero")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
