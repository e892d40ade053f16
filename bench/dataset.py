"""A large, valid dataset built fast with Core bulk inserts (not the demo generator), for the
page benchmark and the load test.

What it holds, at `Scale(customers=N, services=S, months=M)`:
- one partner, two locations (Praha, series prefix 1; Brno, prefix 2), one billing plan with a
  reminder ladder, a small catalogue (internet plans changeable in selfcare, a TV add-on);
- N customers (Czech names, accent-free `name_key` for search, an e-mail contact each, a
  selfcare login each — all with the password `PASSWORD`, hashed once);
- S services (the first S − N customers have two: internet and TV; the rest one);
- M months of invoices per customer, up to the month before `today`: one invoice a month
  with a line per service, the VAT recapitulation, numbered per series and year (the
  `number_sequence` counters are set, so a billing run continues the numbering); every
  invoice paid by a matched bank payment with its allocation, except the last month's, which
  a fifth of the customers still owe (overdue by then: work for a dunning run);
- an administrator operator `OPERATOR_EMAIL` / `PASSWORD`.

Ids are given explicitly (a fresh database; PostgreSQL sequences are moved past them at the
end), so rows go in with plain executemany and no RETURNING.
"""
from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, text

PASSWORD = "Bench-password-1"
OPERATOR_EMAIL = "operator@bench.example"
FIRST = ["Jan", "Petr", "Jana", "Eva", "Tomáš", "Lucie", "Martin", "Kateřina", "Jiří", "Tereza", "Pavel", "Marie",
         "Lukáš", "Anna", "Jakub", "Veronika", "David", "Hana", "Ondřej", "Barbora"]
LAST = ["Novák", "Svoboda", "Novotný", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý", "Horák", "Němec",
        "Marek", "Pospíšil", "Pokorný", "Hájek", "Král", "Jelínek", "Růžička", "Beneš", "Fiala", "Sedláček",
        "Doležal", "Zeman", "Kolář", "Navrátil", "Čermák", "Vaněk", "Urban", "Blažek", "Kříž", "Kovář",
        "Bartoš", "Vlček", "Polák", "Musil", "Kopecký", "Šimek", "Konečný", "Malý", "Holub", "Štěpánek"]
STREETS = ["Dlouhá", "Krátká", "Nádražní", "Školní", "Lipová", "Polní", "Zahradní", "Husova", "Palackého", "Komenského"]
CHUNK = 2000  # customers per batch of inserts


@dataclass(frozen=True)
class Scale:
    customers: int
    services: int
    months: int


SCALES = {
    "large": Scale(100_000, 150_000, 24),
    "medium": Scale(5_000, 7_500, 12),
    "small": Scale(2_000, 3_000, 6),
}


def name_key(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def month_end(d: date) -> date:
    return add_months(d, 1) - timedelta(days=1)


def customer_email(i: int) -> str:
    return f"customer{i}@bench.example"


def customer_number(i: int) -> str:
    return f"B{i:07d}"


def _surname(i: int) -> tuple[str, str]:
    first = FIRST[i % len(FIRST)]
    last = LAST[(i // len(FIRST)) % len(LAST)]
    if first.endswith("a") or first in ("Marie",):  # Czech female surnames
        last = last[:-1] + "á" if last.endswith("ý") else last + "ová"
    return first, last


def build(session, scale: Scale, *, today: date | None = None, say=print) -> dict:
    """Fill an empty schema. Returns what callers need: ids of the master rows and sample
    customers. The session is committed."""
    from portal.domain.accounts import ensure_admin_role
    from portal.models import (
        BillingPlan,
        Contact,
        Customer,
        CustomerLogin,
        CustomerService,
        Invoice,
        InvoiceLine,
        InvoiceVat,
        Location,
        NumberSequence,
        Operator,
        Partner,
        Payment,
        PaymentAllocation,
        ReminderLevel,
        ServiceDefinition,
        ServiceGroup,
    )
    from portal.models.catalog import service_definition_targets
    from portal.security.passwords import hash_password

    started = time.perf_counter()
    today = today or date.today()
    now = datetime.now(UTC)
    ts = {"created_at": now, "updated_at": now}
    pw = hash_password(PASSWORD)

    partner = Partner(name="Bench Net s.r.o.", company_id="12345679", vat_id="CZ12345679", street="Příkladná 1",
                      city="Praha", postal_code="110 00", country="CZ", iban="CZ6508000000192000145399",
                      bank_account="19-2000145399/0800", email="billing@bench.example")
    locations = [Location(name="Praha", code="PRG", partner=partner, currency="CZK", invoice_series_prefix="1"),
                 Location(name="Brno", code="BRN", partner=partner, currency="CZK", invoice_series_prefix="2")]
    plan = BillingPlan(name="Monthly e-mail", customer_name="Monthly invoice by e-mail, transfer within 14 days",
                       invoice_day=1, due_days=14, delivery="email", payment_method="transfer", block_enabled=True,
                       series="FV", constant_symbol="0308", active=True)
    internet = ServiceGroup(name="Internet", kind="internet", position=1)
    tv = ServiceGroup(name="Television", kind="tv", position=2)
    session.add_all([partner, *locations, plan, internet, tv])
    session.flush()
    defs = {}
    for code, group, name, price, changeable in (("NET100", internet, "Internet 100", "449.00", True),
                                                  ("NET300", internet, "Internet 300", "605.00", True),
                                                  ("NET1000", internet, "Internet 1000", "799.00", True),
                                                  ("TVBASIC", tv, "TV Basic", "199.00", False)):
        defs[code] = ServiceDefinition(group_id=group.id, code=code, name=name, customer_name=name, price=Decimal(price),
                                       price_includes_vat=True, vat_rate=Decimal("21.00"), period="monthly",
                                       commitment_months=0, notice_days=30, selfcare_changeable=changeable,
                                       valid_from=date(2020, 1, 1), active=True)
    session.add_all(defs.values())
    session.flush()
    nets = ["NET100", "NET300", "NET1000"]
    session.execute(insert(service_definition_targets), [
        {"definition_id": defs[a].id, "target_id": defs[b].id} for a in nets for b in nets if a != b])
    for level, days, fee, blocks in ((1, 7, "0.00", False), (2, 14, "100.00", False), (3, 30, "0.00", True)):
        session.add(ReminderLevel(billing_plan_id=None, level=level, days_overdue=days, fee=Decimal(fee),
                                  blocks=blocks, letter_template="reminder.html", pay_within_days=7))
    admin = ensure_admin_role(session)
    operator = Operator(email=OPERATOR_EMAIL, name="Bench Operator", password_hash=pw, roles=[admin])
    session.add(operator)
    session.flush()
    supplier = {"name": partner.name, "address": "Příkladná 1\n110 00 Praha\nCZ", "company_id": partner.company_id,
                "vat_id": partner.vat_id, "iban": partner.iban, "bank_account": partner.bank_account}
    net_ids = [defs[c].id for c in nets]
    prices = {d.id: d.price for d in defs.values()}
    names = {d.id: d.customer_name for d in defs.values()}
    tv_id = defs["TVBASIC"].id
    session.commit()

    first_month = add_months(date(today.year, today.month, 1), -scale.months)
    months = [add_months(first_month, k) for k in range(scale.months)]
    two_services = scale.services - scale.customers
    counters: dict[tuple[str, int], int] = {}
    ids = {"service": 0, "invoice": 0, "line": 0, "payment": 0}
    conn = session.connection()
    say(f"  dataset: {scale.customers} customers, {scale.services} services, {scale.months} months of invoices")
    for lo in range(0, scale.customers, CHUNK):
        rows: dict[str, list[dict]] = {k: [] for k in
                                       ("customer", "contact", "login", "service", "invoice", "line", "vat",
                                        "payment", "allocation")}
        for i in range(lo, min(lo + CHUNK, scale.customers)):
            cid = i + 1
            loc = locations[0] if i % 3 else locations[1]
            first, last = _surname(i)
            street = f"{STREETS[i % len(STREETS)]} {i % 97 + 1}"
            city, pc = ("Brno", "602 00") if loc is locations[1] else ("Praha", "110 00")
            vs = f"{8000000000 + cid}"
            rows["customer"].append({
                "id": cid, "location_id": loc.id, "customer_number": customer_number(i), "kind": "person",
                "first_name": first, "last_name": last, "street": street, "city": city, "postal_code": pc,
                "country": "CZ", "language": "cs", "billing_plan_id": plan.id, "variable_symbol": vs,
                "credit_limit": Decimal("0.00"), "dunning_exempt": False, "note": "", "active": True,
                "name_key": name_key(f"{last} {first}"), "street_key": name_key(street), **ts})
            email = customer_email(i)
            rows["contact"].append({"id": cid, "customer_id": cid, "kind": "email", "value": email, "value_key": email,
                                    "purpose": "billing", "primary": True, **ts})
            rows["login"].append({"id": cid, "customer_id": cid, "email": email, "password_hash": pw,
                                  "recovery_code_hashes": [], "notify_email": True, "failed_logins": 0,
                                  "session_version": 1, "active": True, "language": "en", **ts})
            services = [(net_ids[i % 3], f"{street}")] + ([(tv_id, street)] if i < two_services else [])
            svc_ids = []
            for def_id, place in services:
                ids["service"] += 1
                svc_ids.append((ids["service"], def_id))
                rows["service"].append({
                    "id": ids["service"], "customer_id": cid, "definition_id": def_id, "state": "active",
                    "ordered_on": first_month - timedelta(days=20), "activated_on": first_month,
                    "billing_from": first_month, "installation_street": place, "installation_city": city,
                    "installation_postal_code": pc, "note": "", **ts})
            gross = sum((prices[d] for _s, d in svc_ids), Decimal("0.00"))
            net = (gross / Decimal("1.21")).quantize(Decimal("0.01"))
            series = f"{loc.invoice_series_prefix}{plan.series}"
            unpaid_last = i % 5 == 0
            for k, ms in enumerate(months):
                issue = add_months(ms, 1)
                key = (series, issue.year)
                counters[key] = seq = counters.get(key, 0) + 1
                ids["invoice"] += 1
                inv_id = ids["invoice"]
                paid = not (unpaid_last and k == len(months) - 1)
                rows["invoice"].append({
                    "id": inv_id, "customer_id": cid, "location_id": loc.id, "billing_plan_id": plan.id,
                    "type": "invoice", "series": series, "year": issue.year, "sequence": seq,
                    "number": f"{series}-{issue.year}-{seq:06d}",
                    "variable_symbol": f"{issue.year % 100:02d}{loc.invoice_series_prefix}{seq:06d}",
                    "constant_symbol": "0308", "issue_date": issue, "taxable_supply_date": month_end(ms),
                    "due_date": issue + timedelta(days=14), "period_start": ms, "period_end": month_end(ms),
                    "currency": "CZK", "state": "issued", "correction_reason": "", "customer_name": f"{first} {last}",
                    "customer_address": f"{street}\n{pc} {city}\nCZ", "customer_number": customer_number(i),
                    "supplier": supplier, "net_total": net, "vat_total": gross - net, "gross_total": gross,
                    "rounding": Decimal("0.00"), "paid_amount": gross if paid else Decimal("0.00"),
                    "paid_at": issue + timedelta(days=10) if paid else None, "credited_amount": Decimal("0.00"), **ts})
                for pos, (sid, def_id) in enumerate(svc_ids, start=1):
                    ids["line"] += 1
                    lg = prices[def_id]
                    ln = (lg / Decimal("1.21")).quantize(Decimal("0.01"))
                    rows["line"].append({
                        "id": ids["line"], "invoice_id": inv_id, "position": pos,
                        "description": f"{names[def_id]} {ms:%m/%Y}", "period_start": ms, "period_end": month_end(ms),
                        "quantity": Decimal("1"), "unit": "pcs", "unit_price": ln, "vat_rate": Decimal("21.00"),
                        "net": ln, "vat": lg - ln, "gross": lg, "customer_service_id": sid, **ts})
                rows["vat"].append({"id": inv_id, "invoice_id": inv_id, "vat_rate": Decimal("21.00"), "net": net,
                                    "vat": gross - net, "gross": gross, **ts})
                if paid:
                    ids["payment"] += 1
                    pid = ids["payment"]
                    rows["payment"].append({
                        "id": pid, "received_on": issue + timedelta(days=10), "amount": gross, "currency": "CZK",
                        "variable_symbol": rows["invoice"][-1]["variable_symbol"], "constant_symbol": "0308",
                        "counterparty_name": f"{first} {last}", "message": "", "source": "bank_import",
                        "bank_reference": f"bench-{pid}", "customer_id": cid, "state": "matched",
                        "unallocated": Decimal("0.00"), "note": "", **ts})
                    rows["allocation"].append({"id": pid, "payment_id": pid, "invoice_id": inv_id, "amount": gross,
                                               "at": now, "actor_type": "system", **ts})
        for model, key in ((Customer, "customer"), (Contact, "contact"), (CustomerLogin, "login"),
                           (CustomerService, "service"), (Invoice, "invoice"), (InvoiceLine, "line"),
                           (InvoiceVat, "vat"), (Payment, "payment"), (PaymentAllocation, "allocation")):
            if rows[key]:
                conn.execute(insert(model.__table__), rows[key])
        session.commit()
        conn = session.connection()
        done = min(lo + CHUNK, scale.customers)
        if done % (CHUNK * 10) == 0 or done == scale.customers:
            say(f"  … {done} customers, {ids['invoice']} invoices ({time.perf_counter() - started:.0f} s)")
    session.execute(insert(NumberSequence.__table__), [
        {"scope": f"invoice:{series}", "year": year, "last_value": last, **ts}
        for (series, year), last in sorted(counters.items())])
    session.commit()
    if session.get_bind().dialect.name == "postgresql":
        from portal.models import Base

        for table in Base.metadata.sorted_tables:
            if "id" in table.c and table.c.id.primary_key:
                sql = (f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "  # noqa: S608 — our table names
                       f"COALESCE((SELECT MAX(id) FROM \"{table.name}\"), 0) + 1, false)")
                session.execute(text(sql))
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
    else:
        session.execute(text("ANALYZE"))
        session.commit()
    elapsed = time.perf_counter() - started
    say(f"  dataset built in {elapsed:.0f} s: {ids['invoice']} invoices, {ids['line']} lines, "
        f"{ids['payment']} payments")
    return {"customers": scale.customers, "services": ids["service"], "invoices": ids["invoice"],
            "seconds": elapsed, "operator_id": operator.id, "last_month": months[-1]}


def reset_schema(engine) -> None:
    from portal.models import Base

    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
