"""Staff customer search on many customers: `python -m bench.customer_search --customers 100000`.

Fills a fresh database (a SQLite file in /tmp, or PostgreSQL when PORTAL_BENCH_DATABASE_URL is
set — its name must contain "bench": it is wiped) with Core bulk inserts: N customers in three
locations, an e-mail and a phone each, a service with its own variable symbol for every other
customer and an invoice for every customer. Then times `portal.domain.customers.search_customers`
(count + page of 25 + contacts) for each kind of query, median of --repeat runs, and prints the
PostgreSQL plan of the name-prefix query. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bench.billing import _app

SURNAMES = ["Novák", "Svoboda", "Novotný", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý", "Horák", "Němec",
            "Marek", "Pospíšil", "Pokorný", "Hájek", "Král", "Jelínek", "Růžička", "Beneš", "Fiala", "Sedláček",
            "Doležal", "Zeman", "Kolář", "Navrátil", "Čermák", "Vaněk", "Urban", "Blažek", "Kříž", "Kovář"]
FIRST = ["Jan", "Jana", "Petr", "Petra", "Jiří", "Eva", "Pavel", "Hana", "Tomáš", "Lucie", "Martin", "Marie"]
STREETS = ["Dlouhá", "Krátká", "Nádražní", "Školní", "Polní", "Lesní", "Zahradní", "Komenského", "Husova"]


def _database_url() -> str:
    url = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    if url:
        if "bench" not in (make_url(url).database or ""):
            raise SystemExit("PORTAL_BENCH_DATABASE_URL must name a database containing 'bench' (it is wiped).")
        return url
    path = Path(tempfile.gettempdir()) / "portal-bench-customers.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _populate(session, n: int) -> None:
    from portal.domain.customers import search_key
    from portal.models import (
        BillingPlan,
        Contact,
        Customer,
        CustomerService,
        Invoice,
        Location,
        Partner,
        ServiceDefinition,
        ServiceGroup,
    )

    rng = random.Random(7)
    conn = session.connection()
    partner = conn.execute(insert(Partner.__table__).returning(Partner.__table__.c.id),
                           [{"name": "Bench Net", "street": "", "city": "", "postal_code": "", "country": "CZ"}]).scalar_one()
    locations = [conn.execute(insert(Location.__table__).returning(Location.__table__.c.id), [{
        "name": f"Bench {i}", "code": f"B{i}", "partner_id": partner, "currency": "CZK",
        "invoice_series_prefix": str(i)}]).scalar_one() for i in range(3)]
    plan = conn.execute(insert(BillingPlan.__table__).returning(BillingPlan.__table__.c.id), [{
        "name": "Monthly", "customer_name": "Monthly", "invoice_day": 1, "due_days": 14, "delivery": "email",
        "payment_method": "transfer", "block_enabled": True, "series": "FV"}]).scalar_one()
    group = conn.execute(insert(ServiceGroup.__table__).returning(ServiceGroup.__table__.c.id),
                         [{"name": "Internet", "kind": "internet"}]).scalar_one()
    definition = conn.execute(insert(ServiceDefinition.__table__).returning(ServiceDefinition.__table__.c.id), [{
        "group_id": group, "code": "NET", "name": "Internet", "customer_name": "Internet", "price": 605,
        "price_includes_vat": True, "vat_rate": 21, "period": "monthly", "commitment_months": 0, "notice_days": 30,
        "selfcare_changeable": True, "valid_from": date(2020, 1, 1), "active": True}]).scalar_one()
    batch = 10_000
    for start in range(0, n, batch):
        customers, contacts, services, invoices = [], [], [], []
        for i in range(start, min(n, start + batch)):
            last, first = rng.choice(SURNAMES), rng.choice(FIRST)
            number = str(100001 + i)
            street = f"{rng.choice(STREETS)} {rng.randint(1, 999)}"
            customers.append({
                "id": i + 1, "location_id": locations[i % 3], "customer_number": number, "kind": "person",
                "first_name": first, "last_name": last, "street": street, "street_key": search_key(street),
                "city": "Brno", "postal_code": "602 00", "country": "CZ", "language": "cs", "billing_plan_id": plan,
                "variable_symbol": "8" + number, "credit_limit": 0, "dunning_exempt": False, "note": "",
                "active": True, "name_key": search_key(last)})
            email = f"{search_key(first)}.{search_key(last)}{i}@example.com"
            phone = f"420{rng.randint(600, 799)}{rng.randint(0, 999999):06d}"
            contacts.append({"customer_id": i + 1, "kind": "email", "value": email, "value_key": email,
                             "purpose": "billing", "primary": True})
            contacts.append({"customer_id": i + 1, "kind": "phone", "value": "+" + phone, "value_key": phone,
                             "purpose": "general", "primary": True})
            if i % 2 == 0:
                services.append({"customer_id": i + 1, "definition_id": definition, "state": "active",
                                 "ordered_on": date(2024, 1, 1), "variable_symbol": str(5_000_000 + i),
                                 "installation_street": "", "installation_city": "", "installation_postal_code": "",
                                 "note": ""})
            invoices.append({
                "customer_id": i + 1, "location_id": locations[i % 3], "type": "invoice", "series": "FV",
                "year": 2026, "sequence": i + 1, "number": f"FV26{i + 1:06d}", "variable_symbol": f"26{i + 1:08d}",
                "issue_date": date(2026, 11, 1), "due_date": date(2026, 11, 15), "currency": "CZK", "state": "issued",
                "correction_reason": "", "customer_name": f"{first} {last}", "customer_address": "Brno",
                "customer_number": number, "supplier": {}, "net_total": 500, "vat_total": 105, "gross_total": 605,
                "rounding": 0, "paid_amount": 605, "credited_amount": 0})
        conn.execute(insert(Customer.__table__), customers)
        conn.execute(insert(Contact.__table__), contacts)
        conn.execute(insert(CustomerService.__table__), services)
        conn.execute(insert(Invoice.__table__), invoices)
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE"))
        session.commit()


QUERIES = [
    ("empty query, first page", ""),
    ("name prefix (thousands match)", "nov"),
    ("surname (one in 30)", "Dvořák"),
    ("first + last name", "jana kučera"),
    ("customer number", "150001"),
    ("customer VS", "8150001"),
    ("service VS", "5000100"),
    ("invoice VS", "2600050000"),
    ("e-mail prefix", "petr.kral12"),
    ("phone, national", "601 123"),
    ("phone, international prefix", "+420 601 12"),
    ("street and number", "Dlouhá 12"),
    ("no match", "xyzzy"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    url = _database_url()
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    app = _app(url, tmp)
    logging.getLogger().setLevel(logging.WARNING)
    from portal.domain.customers import CustomerFilters, search_customers, search_statement
    from portal.extensions import db
    from portal.models import Base

    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        t0 = time.perf_counter()
        _populate(db.session, args.customers)
        print(f"{db.engine.dialect.name}: {args.customers} customers inserted in {time.perf_counter() - t0:.1f} s")
        for label, query in QUERIES:
            for scope in (None, [1]):
                times, total = [], 0
                for _ in range(args.repeat):
                    db.session.expunge_all()
                    t = time.perf_counter()
                    total = search_customers(db.session, query, scope, limit=25).total
                    times.append((time.perf_counter() - t) * 1000)
                where = "all locations" if scope is None else "one location"
                print(f"  {label:32} {where:14} {total:7d} found  median {statistics.median(times):7.1f} ms"
                      f"  max {max(times):7.1f} ms")
        if db.engine.dialect.name == "postgresql":
            stmt = search_statement(CustomerFilters(query="dvorak"), None).limit(25)
            compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = db.session.execute(text(f"EXPLAIN ANALYZE {compiled}")).scalars().all()
            print("\n".join(plan))


if __name__ == "__main__":
    main()
