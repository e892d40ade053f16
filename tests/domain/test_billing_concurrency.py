"""Two billing runs at once on PostgreSQL: no double billing, gapless numbering.

Two OS processes run `run_billing` for the same period against the same database, released
at the same moment; the data they bill is committed before they start."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.models import BillingRun, BillingRunState, Charge, ChargeKind, Currency, Invoice
from tests.domain.billing_fixtures import World

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(not os.environ.get("PORTAL_TEST_DATABASE_URL", "").startswith("postgresql"),
                       reason="needs PostgreSQL (PORTAL_TEST_DATABASE_URL)"),
]

SCRIPT = textwrap.dedent("""
    import sys, time
    from datetime import date
    from pathlib import Path
    from portal import create_app
    from portal.domain.actors import Actor
    from portal.domain.billing import run_billing
    from portal.extensions import db

    url, tmp, name, batch = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    app = create_app({"TESTING": True, "DATABASE_URL": url, "HUEY_URL": "memory://",
                      "RATELIMIT_STORAGE_URI": "memory://", "MAIL_OUTBOX_DIR": str(tmp / "outbox"),
                      "DOCUMENTS_DIR": str(tmp / "documents")})
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))  # connected and warm
        db.session.rollback()
        (tmp / f"ready-{name}").touch()
        while not (tmp / "go").exists():
            time.sleep(0.005)
        run = run_billing(db.session, "2026-11", actor=Actor.system(name), issue_date=date(2026, 12, 1),
                          batch_size=batch)
        print(name, run.state, run.charges_count, run.invoices_count)
""")


def _start(url: str, tmp: Path, name: str, batch: int) -> subprocess.Popen:
    script = tmp / "bill.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PORTAL_TEST_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, str(script), url, str(tmp), name, str(batch)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("batches", [(3, 3), (2, 7)])
def test_concurrent_runs_never_double_bill(db, database_url, tmp_path, batches):
    worlds = [World(prefix="1"), World(prefix="2")]
    services = []
    for i in range(30):
        w = worlds[i % 2]
        customer = w.customer()
        services.append(w.service(customer=customer))
        if i % 3 == 0:
            services.append(w.service(customer=customer, definition=w.definition(price="99.90", vat="12")))
    # Customers with only an uninvoiced fee: no charge insert makes the runs wait for each
    # other there, only the per-customer lock does.
    fees = []
    for i in range(6):
        customer = worlds[i % 2].customer()
        fees.append(Charge(customer_id=customer.id, period_start=date(2026, 11, 5), period_end=date(2026, 11, 5),
                           kind=ChargeKind.FEE, discriminator=f"reminder-{i}", description="Reminder fee",
                           quantity=Decimal(1), unit_price=Decimal(100), vat_rate=Decimal(0), net=Decimal(100),
                           vat=Decimal(0), gross=Decimal(100), currency=Currency.CZK))
    db.add_all(fees)
    db.commit()  # the other processes must see it

    procs = [_start(database_url, tmp_path, name, batch) for name, batch in zip(("a", "b"), batches, strict=True)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in ("a", "b")):
        assert time.time() < deadline, [p.communicate() for p in procs]
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]

    db.expire_all()
    # exactly one service charge per (service, period), each invoiced once
    per_service = dict(db.execute(select(Charge.customer_service_id, func.count())
                                  .where(Charge.kind == ChargeKind.SERVICE).group_by(Charge.customer_service_id)).all())
    assert per_service == {s.id: 1 for s in services}
    charges = db.scalars(select(Charge)).all()
    assert all(c.invoice_line_id is not None for c in charges)
    assert len({c.invoice_line_id for c in charges}) == len(charges)
    # one invoice per customer, numbered 1..N per series without gaps
    invs = db.scalars(select(Invoice)).all()
    assert len(invs) == 36 and len({i.customer_id for i in invs}) == 36
    seqs = defaultdict(list)
    for i in invs:
        seqs[(i.series, i.year)].append(i.sequence)
    assert {k: sorted(v) for k, v in seqs.items()} == {("1FV", 2026): list(range(1, 19)),
                                                       ("2FV", 2026): list(range(1, 19))}
    assert len({i.variable_symbol for i in invs}) == 36
    runs = db.scalars(select(BillingRun)).all()
    assert [r.state for r in runs] == [BillingRunState.DONE, BillingRunState.DONE]
    assert sum(r.invoices_count for r in runs) == 36
    assert sum(r.charges_count for r in runs) == len(services)  # fees existed before
    assert all(r.period_start == date(2026, 11, 1) for r in runs)
