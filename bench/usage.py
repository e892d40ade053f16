"""Usage ingest throughput: `python -m bench.usage --readings 10000`.

Builds 1 000 metered customer services in a fresh database (SQLite file in /tmp, or
PORTAL_BENCH_DATABASE_URL as for bench.billing), then sends one batch of N readings (ten per
service, spread over November) three ways and prints rows/s for each:
  * the rule alone (portal.domain.usage.ingest_readings, first time: every row stored);
  * the same batch again (a retry: every row found, nothing stored);
  * the whole API request (POST /api/v1/usage/readings: JSON parsing, schema, rule, commit)
    of a new batch.
Baseline, same run: a raw Core executemany of N usage_reading-shaped rows into a scratch table.
Appends to bench/results.json like the other benchmarks.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, insert, select, update
from sqlalchemy.orm import configure_mappers

from bench.billing import _app, _database_url, _populate, append_results

SERVICES = 1000


def _meter(session) -> list[int]:
    """A data tracker on the internet definition: its services become metered."""
    from portal.models import CustomerService, ServiceDefinition, UsageItem, UsageTracker

    tracker = UsageTracker(name="Data", vat_rate=Decimal("21.00"))
    session.add(tracker)
    session.flush()
    session.add(UsageItem(tracker_id=tracker.id, metric="data", name="Transferred data", unit="GB",
                          step=Decimal(1), amount_per_step=Decimal("2.00")))
    session.execute(update(ServiceDefinition).where(ServiceDefinition.code == "NET100")
                    .values(usage_tracker_id=tracker.id))
    session.commit()
    return session.scalars(select(CustomerService.id).join(ServiceDefinition)
                           .where(ServiceDefinition.code == "NET100").order_by(CustomerService.id)).all()


def _batch(service_ids: list[int], n: int, hour: int) -> list[dict]:
    per_service = max(1, n // len(service_ids))
    start = datetime(2026, 11, 1, hour, tzinfo=UTC)
    return [{"service_id": sid, "metric": "data", "value": f"{(i * 7 + k) % 50}.25",
             "measured_at": start + timedelta(days=k % 30, minutes=k // 30)}
            for i, sid in enumerate(service_ids) for k in range(per_service)][:n]


def _raw(session, n: int) -> float:
    from portal.models import UsageReading
    from portal.models.base import utcnow

    scratch = Table("bench_usage_raw", MetaData(),
                    *[Column(c.name, c.type, primary_key=c.primary_key) for c in UsageReading.__table__.columns])
    engine = session.get_bind()
    scratch.drop(engine, checkfirst=True)
    scratch.create(engine)
    now = utcnow()
    rows = [{"instance_id": 1 + i % SERVICES, "item_id": 1, "measured_at": now - timedelta(minutes=i),
             "value": Decimal("1.25"), "created_at": now, "updated_at": now} for i in range(n)]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(scratch), rows)
    elapsed = time.perf_counter() - started
    scratch.drop(engine)
    return elapsed


def bench(n: int) -> list[dict]:
    from portal.domain.actors import Actor
    from portal.domain.api_tokens import create_token
    from portal.domain.usage import Reading, ingest_readings
    from portal.extensions import db
    from portal.models import RIGHTS, Base
    from tests.factories import OperatorFactory

    url = _database_url(n)
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    app = _app(url, tmp)
    app.config["API_RATE_LIMIT"] = "1000000 per minute"
    results = []
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        _populate(db.session, SERVICES * 2)
        service_ids = _meter(db.session)[:SERVICES]
        configure_mappers()
        database = db.engine.dialect.name
        actor = Actor.system("bench")
        first = [Reading(**{**r, "value": Decimal(r["value"])}) for r in _batch(service_ids, n, hour=6)]

        started = time.perf_counter()
        result = ingest_readings(db.session, actor, first)
        db.session.commit()
        rule_s = time.perf_counter() - started
        assert result.stored == n, result

        started = time.perf_counter()
        again = ingest_readings(db.session, actor, first)
        db.session.commit()
        retry_s = time.perf_counter() - started
        assert again.stored == 0 and again.already_stored == n, again

        OperatorFactory._meta.sqlalchemy_session = db.session
        operator = OperatorFactory(admin=True)
        _token, secret = create_token(db.session, actor, operator, name="bench", rights=list(RIGHTS))
        db.session.commit()
        body = {"readings": [{**r, "measured_at": r["measured_at"].isoformat()}
                             for r in _batch(service_ids, n, hour=18)]}
        client = app.test_client()
        started = time.perf_counter()
        response = client.post("/api/v1/usage/readings", json=body, headers={"Authorization": f"Bearer {secret}"})
        api_s = time.perf_counter() - started
        assert response.status_code == 200 and response.get_json()["stored"] == n, response.get_data(as_text=True)

        raw_s = _raw(db.session, n)
        db.session.remove()
        db.engine.dispose()
    for name, seconds in (("rule", rule_s), ("retry", retry_s), ("api", api_s)):
        print(f"[{database}] usage ingest {name}: {n} readings in {seconds:.3f} s ({n / seconds:,.0f} rows/s); "
              f"raw insert {raw_s:.3f} s ({n / raw_s:,.0f} rows/s), ratio {seconds / raw_s:.1f}×")
        results.append({"name": f"usage.ingest.{name} readings={n}", "value": round(n / seconds), "unit": "rows/s",
                        "baseline": round(n / raw_s), "ratio": round(seconds / raw_s, 2), "database": database})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000)
    args = parser.parse_args(argv)
    append_results(bench(args.readings))


if __name__ == "__main__":
    main()
