"""Billing run throughput: `python -m bench.billing --sizes 1000,10000`.

For each size N it builds N customer services (N/1.5 customers: a third of them hold two
services) in a fresh database — a SQLite file in /tmp, or PostgreSQL when
PORTAL_BENCH_DATABASE_URL is set (its database name must contain "bench": it is wiped) —
times `run_billing` for one month, then times a raw bulk INSERT (Core executemany, one
transaction) of as many invoice rows into a scratch table with the invoice table's columns.
Prints seconds, invoices/s and the ratio run/raw, and appends the results to
bench/results.json as {"name", "value", "unit", "baseline", "ratio", "database"}.
Target: the run within 10× of the raw insert.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import configure_mappers

RESULTS = Path(__file__).resolve().parent / "results.json"
PERIOD = "2026-11"
ISSUE = date(2026, 12, 1)


def _database_url(n: int) -> str:
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    if url:
        if "bench" not in (make_url(url).database or ""):
            raise SystemExit("PORTAL_BENCH_DATABASE_URL must name a database containing 'bench' (it is wiped).")
        return url
    path = Path(tempfile.gettempdir()) / f"portal-bench-billing-{n}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _app(url: str, tmp: Path):
    from portal import create_app

    if url.startswith("postgresql"):
        from tests.conftest import ensure_postgres_database

        ensure_postgres_database(url)
    app = create_app({"DATABASE_URL": url, "HUEY_URL": "memory://", "RATELIMIT_STORAGE_URI": "memory://",
                      "MAIL_OUTBOX_DIR": str(tmp / "outbox"), "DOCUMENTS_DIR": str(tmp / "documents")})
    logging.getLogger().setLevel(logging.WARNING)
    return app


def _populate(session, n_services: int) -> int:
    """N services for ceil(N / 1.5) customers, with Core bulk inserts. Returns the customers."""
    from portal.models import (
        BillingPlan,
        Customer,
        CustomerService,
        Location,
        Partner,
        ServiceDefinition,
        ServiceGroup,
    )

    conn = session.connection()
    partner = conn.execute(insert(Partner.__table__).returning(Partner.__table__.c.id), [{
        "name": "Bench Net s.r.o.", "company_id": "12345679", "vat_id": "CZ12345679", "street": "Příkladná 1",
        "city": "Praha", "postal_code": "110 00", "country": "CZ", "iban": "CZ6508000000192000145399",
        "bank_account": "19-2000145399/0800"}]).scalar_one()
    location = conn.execute(insert(Location.__table__).returning(Location.__table__.c.id), [{
        "name": "Bench", "code": "B1", "partner_id": partner, "currency": "CZK",
        "invoice_series_prefix": "1"}]).scalar_one()
    plan = conn.execute(insert(BillingPlan.__table__).returning(BillingPlan.__table__.c.id), [{
        "name": "Monthly", "customer_name": "Monthly", "invoice_day": 1, "due_days": 14, "delivery": "email",
        "payment_method": "transfer", "block_enabled": True, "series": "FV", "constant_symbol": "0308",
        "active": True}]).scalar_one()
    group = conn.execute(insert(ServiceGroup.__table__).returning(ServiceGroup.__table__.c.id), [{
        "name": "Internet", "kind": "internet"}]).scalar_one()
    defs = [conn.execute(insert(ServiceDefinition.__table__).returning(ServiceDefinition.__table__.c.id), [{
        "group_id": group, "code": code, "name": name, "customer_name": name, "price": Decimal(price),
        "price_includes_vat": True, "vat_rate": Decimal(vat), "period": "monthly", "commitment_months": 0,
        "notice_days": 30, "selfcare_changeable": False, "valid_from": date(2020, 1, 1), "active": True}]).scalar_one()
        for code, name, price, vat in (("NET100", "Internet 100", "605", "21"), ("TV", "TV Basic", "99.90", "12"))]
    n_customers = math.ceil(n_services / 1.5)
    customers = [{
        "location_id": location, "customer_number": f"C{i:07d}", "kind": "person", "first_name": "Jana",
        "last_name": f"Nováková{i}", "street": "Dlouhá 5", "city": "Brno", "postal_code": "602 00", "country": "CZ",
        "language": "cs", "billing_plan_id": plan, "variable_symbol": f"{7000000 + i}", "credit_limit": 0,
        "dunning_exempt": False, "note": "", "active": True, "name_key": f"novakova{i}",
        "street_key": "dlouha 5"}
        for i in range(n_customers)]
    ids = []
    for i in range(0, len(customers), 5000):
        ids += conn.execute(insert(Customer.__table__).returning(Customer.__table__.c.id,
                                                                 sort_by_parameter_order=True),
                            customers[i:i + 5000]).scalars().all()
    services = []
    for i, cid in enumerate(ids):
        for j in range(2 if i < n_services - n_customers else 1):
            services.append({
                "customer_id": cid, "definition_id": defs[j], "state": "active", "ordered_on": date(2024, 1, 1),
                "activated_on": date(2024, 1, 1),
                "billing_from": date(2024, 1, 1) if i % 20 else date(2026, 11, 1) + timedelta(days=i % 30),
                "installation_street": "", "installation_city": "", "installation_postal_code": "", "note": ""})
    for i in range(0, len(services), 5000):
        conn.execute(insert(CustomerService.__table__), services[i:i + 5000])
    session.commit()
    return n_customers


def _raw_insert(session, count: int) -> float:
    """Seconds to bulk-insert `count` invoice-shaped rows into a scratch table."""
    from portal.models import Invoice

    scratch = Table("bench_invoice_raw", MetaData(),
                    *[Column(c.name, c.type, primary_key=c.primary_key) for c in Invoice.__table__.columns])
    engine = session.get_bind()
    scratch.drop(engine, checkfirst=True)
    scratch.create(engine)
    supplier = {"name": "Bench Net s.r.o.", "address": "Příkladná 1\n110 00 Praha\nCZ", "company_id": "12345679",
                "vat_id": "CZ12345679", "iban": "CZ6508000000192000145399", "bank_account": "19-2000145399/0800"}
    from portal.models.base import utcnow

    now = utcnow()
    rows = [{
        "customer_id": i + 1, "location_id": 1, "billing_plan_id": 1, "type": "invoice", "series": "1FV",
        "year": 2026, "sequence": i + 1, "number": f"1FV-2026-{i + 1:06d}", "variable_symbol": f"261{i + 1:06d}",
        "constant_symbol": "0308", "issue_date": ISSUE, "taxable_supply_date": date(2026, 11, 30),
        "due_date": ISSUE + timedelta(days=14), "period_start": date(2026, 11, 1), "period_end": date(2026, 11, 30),
        "currency": "CZK", "state": "issued", "correction_reason": "", "billing_run_id": 1,
        "customer_name": f"Jana Nováková{i}", "customer_address": "Dlouhá 5\n602 00 Brno\nCZ",
        "customer_number": f"C{i:07d}", "supplier": supplier, "net_total": Decimal("500.00"),
        "vat_total": Decimal("105.00"), "gross_total": Decimal("605.00"), "rounding": Decimal("0.00"),
        "paid_amount": Decimal("0.00"), "created_at": now, "updated_at": now} for i in range(count)]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(scratch), rows)
    elapsed = time.perf_counter() - started
    scratch.drop(engine)
    return elapsed


def bench(n: int) -> dict:
    from portal.domain.actors import Actor
    from portal.domain.billing import run_billing
    from portal.extensions import db
    from portal.models import Base

    url = _database_url(n)
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    app = _app(url, tmp)
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        customers = _populate(db.session, n)
        configure_mappers()  # once per process in a running portal; not the run's cost
        started = time.perf_counter()
        run = run_billing(db.session, PERIOD, actor=Actor.system("bench"), issue_date=ISSUE)
        run_seconds = time.perf_counter() - started
        invoices = run.invoices_count
        raw_seconds = _raw_insert(db.session, invoices)
        database = db.engine.dialect.name
        db.session.remove()
        if database == "postgresql":
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        db.engine.dispose()
    ratio = run_seconds / raw_seconds if raw_seconds else float("inf")
    print(f"[{database}] {n} services, {customers} customers, {run.charges_count} charges, {invoices} invoices: "
          f"run {run_seconds:.2f} s ({invoices / run_seconds:,.0f} invoices/s), raw insert {raw_seconds:.3f} s "
          f"({invoices / raw_seconds:,.0f} rows/s), ratio {ratio:.1f}×")
    return {"name": f"billing.run services={n} invoices={invoices}", "value": round(run_seconds, 4), "unit": "s",
            "baseline": round(raw_seconds, 4), "ratio": round(ratio, 2), "database": database}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="Comma-separated numbers of customer services.")
    args = parser.parse_args(argv)
    results = [bench(int(s)) for s in args.sizes.split(",") if s.strip()]
    append_results(results)


def append_results(results: list[dict]) -> None:
    """Append to bench/results.json under an exclusive lock (other benchmarks write it too)."""
    import fcntl

    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(json.dumps(existing + results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
