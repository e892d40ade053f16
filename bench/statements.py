"""Statement import throughput: `python -m bench.statements --entries 50000`.

For each format (CAMT.053 and ABO/GPC) it writes a statement of N credits, each paying one
issued invoice of its own customer (N customers and N invoices, bulk-inserted into a fresh
database: a SQLite file in /tmp, or PostgreSQL when PORTAL_BENCH_DATABASE_URL is set — its
name must contain "bench": it is wiped), then times, in the same run, reading the file alone
(`parse_statement`: detection, validation, the transactions) and the whole
`import_statement` (reading again, duplicate look-up, a payment per credit, pairing it to
the invoice, the audit entry) with its commit. Prints payments/s for both and appends to
bench/results.json as {"name", "value", "unit", "baseline", "ratio", "database"}: value the
import's seconds, baseline the parse's.

The 10 MB upload cap is lifted for the run (a 50 000-entry CAMT.053 is ~25 MB; an ABO file of
as many entries ~6.5 MB): the benchmark measures the import, the cap is the upload's.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import configure_mappers

from bench.billing import _app, _database_url, append_results

OUR_IBAN = "CZ6508000000192000145399"
DAY = date(2026, 12, 3)


def _populate(session, n: int) -> None:
    """N customers, each with one issued invoice of 605 CZK (VS 9000000000 + i)."""
    from portal.models import BillingPlan, Customer, Invoice, Location, Partner
    from portal.models.base import utcnow

    conn = session.connection()
    partner = conn.execute(insert(Partner.__table__).returning(Partner.__table__.c.id), [{
        "name": "Bench Net s.r.o.", "company_id": "12345679", "vat_id": "CZ12345679", "street": "Příkladná 1",
        "city": "Praha", "postal_code": "110 00", "country": "CZ", "iban": OUR_IBAN,
        "bank_account": "19-2000145399/0800"}]).scalar_one()
    location = conn.execute(insert(Location.__table__).returning(Location.__table__.c.id), [{
        "name": "Bench", "code": "B1", "partner_id": partner, "currency": "CZK",
        "invoice_series_prefix": "1"}]).scalar_one()
    plan = conn.execute(insert(BillingPlan.__table__).returning(BillingPlan.__table__.c.id), [{
        "name": "Monthly", "customer_name": "Monthly", "invoice_day": 1, "due_days": 14, "delivery": "email",
        "payment_method": "transfer", "block_enabled": True, "series": "FV", "constant_symbol": "0308",
        "active": True}]).scalar_one()
    customers = [{
        "location_id": location, "customer_number": f"C{i:07d}", "kind": "person", "first_name": "Jana",
        "last_name": f"Nováková{i}", "street": "Dlouhá 5", "city": "Brno", "postal_code": "602 00", "country": "CZ",
        "language": "cs", "billing_plan_id": plan, "variable_symbol": f"{7000000 + i}", "credit_limit": 0,
        "dunning_exempt": False, "note": "", "active": True, "name_key": f"novakova{i}", "street_key": "dlouha 5"}
        for i in range(n)]
    ids: list[int] = []
    for i in range(0, n, 5000):
        ids += conn.execute(insert(Customer.__table__).returning(Customer.__table__.c.id, sort_by_parameter_order=True),
                            customers[i:i + 5000]).scalars().all()
    now = utcnow()
    supplier = {"name": "Bench Net s.r.o.", "iban": OUR_IBAN}
    invoices = [{
        "customer_id": cid, "location_id": location, "billing_plan_id": plan, "type": "invoice", "series": "1FV",
        "year": 2026, "sequence": i + 1, "number": f"1FV-2026-{i + 1:06d}", "variable_symbol": _vs(i),
        "constant_symbol": "0308", "issue_date": DAY - timedelta(days=20), "taxable_supply_date": date(2026, 11, 30),
        "due_date": DAY - timedelta(days=6), "period_start": date(2026, 11, 1), "period_end": date(2026, 11, 30),
        "currency": "CZK", "state": "issued", "correction_reason": "", "customer_name": f"Jana Nováková{i}",
        "customer_address": "Dlouhá 5\n602 00 Brno\nCZ", "customer_number": f"C{i:07d}", "supplier": supplier,
        "net_total": Decimal("500.00"), "vat_total": Decimal("105.00"), "gross_total": Decimal("605.00"),
        "rounding": Decimal("0.00"), "paid_amount": Decimal("0.00"), "created_at": now, "updated_at": now}
        for i, cid in enumerate(ids)]
    for i in range(0, n, 5000):
        conn.execute(insert(Invoice.__table__), invoices[i:i + 5000])
    session.commit()


def _vs(i: int) -> str:
    return f"{9000000000 + i}"


def camt053(n: int) -> bytes:
    entries = "".join(
        f"<Ntry><Amt Ccy=\"CZK\">605.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        f"<BookgDt><Dt>{DAY}</Dt></BookgDt><AcctSvcrRef>B{i:09d}</AcctSvcrRef><NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><RltdPties><Dbtr><Nm>Jana Nováková{i}</Nm></Dbtr>"
        f"<DbtrAcct><Id><IBAN>CZ5503000000000123456789</IBAN></Id></DbtrAcct></RltdPties>"
        f"<RmtInf><Strd><CdtrRefInf><Ref>{_vs(i)}</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>\n"
        for i in range(n))
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\"><BkToCstmrStmt>"
            "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-12-03T20:00:00</CreDtTm></GrpHdr><Stmt><Id>1</Id>"
            f"<Acct><Id><IBAN>{OUR_IBAN}</IBAN></Id></Acct>\n{entries}</Stmt></BkToCstmrStmt></Document>\n").encode()


def abo(n: int) -> bytes:
    day = f"{DAY:%d%m%y}"
    lines = [f"0740000192000145399{'BENCH NET':<20}{day}{0:014d}+{0:014d}+{0:014d}0{0:014d}0001{day}{'':14}"]
    lines += [f"0750000192000145399{123456789 + i:016d}{i + 1:013d}{60500:012d}2{_vs(i)}0003000308{0:010d}{day}"
              f"{'NOVAKOVA JANA':<20}00203{day}" for i in range(n)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1250")


def bench(fmt: str, n: int) -> dict:
    from portal.domain import statements
    from portal.domain.actors import Actor
    from portal.extensions import db
    from portal.models import Base

    data = camt053(n) if fmt == "camt053" else abo(n)
    statements.MAX_FILE_SIZE = max(statements.MAX_FILE_SIZE, len(data) + 1)
    url = _database_url(n)
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    app = _app(url, tmp)
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        _populate(db.session, n)
        configure_mappers()
        started = time.perf_counter()
        parsed = statements.parse_statement(data)
        parse_seconds = time.perf_counter() - started
        assert len(parsed.credits) == n, len(parsed.credits)
        started = time.perf_counter()
        imp = statements.import_statement(db.session, f"bench.{fmt}", data, actor=Actor.system("bench"))
        db.session.commit()
        import_seconds = time.perf_counter() - started
        assert imp.payments_count == n and imp.matched_count == n, (imp.payments_count, imp.matched_count)
        database = db.engine.dialect.name
        db.session.remove()
        db.engine.dispose()
    ratio = import_seconds / parse_seconds if parse_seconds else float("inf")
    print(f"[{database}] {fmt} {n} credits ({len(data) / 1e6:.1f} MB): parse {parse_seconds:.2f} s "
          f"({n / parse_seconds:,.0f} payments/s), import {import_seconds:.2f} s ({n / import_seconds:,.0f} payments/s, "
          f"all paired), ratio {ratio:.1f}×")
    return {"name": f"statements.import format={fmt} entries={n}", "value": round(import_seconds, 4), "unit": "s",
            "baseline": round(parse_seconds, 4), "ratio": round(ratio, 2), "database": database,
            "payments_per_s": round(n / import_seconds), "parse_payments_per_s": round(n / parse_seconds)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50000, help="Credits per statement file.")
    parser.add_argument("--formats", default="camt053,abo")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    append_results([bench(fmt.strip(), args.entries) for fmt in args.formats.split(",") if fmt.strip()])


if __name__ == "__main__":
    main()
