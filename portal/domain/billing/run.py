"""The billing run: charges inserted, invoices numbered and issued per batch, customer credit
applied, the run recorded; and staff's request for a run (`request_billing_run`)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

from flask_babel import gettext as _
from sqlalchemy import func, insert, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.domain import audit, events
from portal.domain.actors import Actor
from portal.domain.billing.charges import ChargeDraft, _Catalog
from portal.domain.billing.errors import BillingRunRefused, NoBillingPlan, VariableSymbolClash
from portal.domain.billing.invoices import (
    NUMBER_FORMAT,
    _group_invoices,
    _InvoiceDraft,
    _series,
    _totals_by_currency,
    supplier_snapshot,
    variable_symbol,
)
from portal.domain.billing.loading import (
    _chunks,
    _compute_charges,
    _customers_with_open_charges,
    _load_customers,
    _load_services,
    _lock_customers,
    _open_charges,
)
from portal.domain.billing.periods import _month
from portal.domain.money import (
    ZERO,
    to_decimal,
)
from portal.domain.numbering import reserve_numbers
from portal.domain.payments import apply_customer_credit
from portal.models import (
    BillingRun,
    BillingRunState,
    Charge,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
    Job,
    JobState,
    Payment,
    PaymentState,
)
from portal.models.base import utcnow

_charge = Charge.__table__
_invoice = Invoice.__table__
_line = InvoiceLine.__table__
_vat = InvoiceVat.__table__


# ---------------------------------------------------------------- the run


def _insert_charges(session: Session, drafts: list[ChargeDraft], run_id: int) -> int:
    """Insert the charges that do not exist yet; an existing (service, period, kind,
    discriminator) is skipped by the database (ON CONFLICT DO NOTHING), not an error.
    Returns how many were inserted."""
    if not drafts:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(_charge).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(_charge).on_conflict_do_nothing()
    else:  # pragma: no cover - the portal runs on these two
        raise NotImplementedError(dialect)
    # Plain executemany, no RETURNING: psycopg re-parses every multi-row RETURNING statement,
    # which cost more than the inserts. What this run inserted carries its id.
    for chunk in _chunks(drafts, 1000):
        session.execute(stmt, [d.row(run_id) for d in chunk])
    customer_ids = sorted({d.customer_id for d in drafts})
    return session.scalar(select(func.count()).select_from(_charge).where(
        _charge.c.billing_run_id == run_id, _charge.c.customer_id.in_(customer_ids)))


def _issue(session: Session, drafts: list[_InvoiceDraft], catalog: _Catalog, *, run_id: int, issue_date: date,
           ms: date, me: date) -> None:
    """Number, insert and link the invoices of one batch (Core bulk statements: the ORM's
    unit of work would cost more than everything else together)."""
    if not drafts:
        return
    year = issue_date.year
    by_series: dict[str, list[_InvoiceDraft]] = defaultdict(list)
    for d in drafts:
        by_series[_series(catalog, d)].append(d)
    numbered = []
    for series in sorted(by_series):
        items = by_series[series]
        seqs = reserve_numbers(session, f"invoice:{series}", year, len(items))
        for d, seq in zip(items, seqs, strict=True):
            numbered.append((d, series, seq))

    now = utcnow()
    symbols = [variable_symbol(series, year, seq) for _, series, seq in numbered]
    if len(set(symbols)) != len(symbols):
        raise VariableSymbolClash(_("Two invoice series of this run give the same variable symbols; give the "
                                    "billing plans' series distinct digits (e.g. FV and FV2)."))
    for chunk in _chunks(symbols, 5000):
        clash = session.execute(select(_invoice.c.number, _invoice.c.variable_symbol).where(
            _invoice.c.variable_symbol.in_(chunk), _invoice.c.type != InvoiceType.CREDIT_NOTE).limit(1)).first()
        if clash:
            raise VariableSymbolClash(
                _("Variable symbol %(vs)s is already used by invoice %(number)s; give the "
                  "billing plans' series distinct digits (e.g. FV and FV2).",
                  vs=clash.variable_symbol, number=clash.number))

    suppliers: dict[int, dict] = {}
    rows = []
    for (d, series, seq), vs in zip(numbered, symbols, strict=True):
        location = catalog.locations[d.customer.location_id]
        if location.id not in suppliers:
            suppliers[location.id] = supplier_snapshot(catalog.partners.get(location.partner_id))
        rows.append({
            "customer_id": d.customer.id, "location_id": location.id, "billing_plan_id": d.plan.id,
            "type": InvoiceType.INVOICE, "series": series, "year": year, "sequence": seq,
            "number": NUMBER_FORMAT.format(series=series, year=year, seq=seq), "variable_symbol": vs,
            "constant_symbol": d.plan.constant_symbol, "issue_date": issue_date, "taxable_supply_date": me,
            "due_date": issue_date + timedelta(days=d.plan.due_days), "period_start": ms, "period_end": me,
            "currency": d.currency, "state": InvoiceState.ISSUED, "correction_reason": "",
            "billing_run_id": run_id, "customer_name": d.customer.name[:200],
            "customer_address": d.customer.address, "customer_company_id": d.customer.company_id,
            "customer_vat_id": d.customer.vat_id, "customer_number": d.customer.number,
            "supplier": suppliers[location.id], "net_total": d.total.net, "vat_total": d.total.vat,
            "gross_total": d.total.gross, "rounding": ZERO, "paid_amount": ZERO,
            "created_at": now, "updated_at": now,
        })
    # Plain executemany, then the ids read back by the numbers just taken (RETURNING costs
    # more: SQLite keeps the order only row by row, psycopg re-parses each long statement).
    session.execute(insert(_invoice), rows)
    by_number = {}
    for series in sorted(by_series):
        seqs = [seq for _, s, seq in numbered if s == series]
        by_number.update(session.execute(select(_invoice.c.number, _invoice.c.id).where(
            _invoice.c.series == series, _invoice.c.year == year,
            _invoice.c.sequence.between(min(seqs), max(seqs)))).all())
    invoice_ids = [by_number[r["number"]] for r in rows]
    events.invoices_issued(session, [(i, r["customer_id"], r["number"]) for i, r in zip(invoice_ids, rows, strict=True)])

    line_rows, vat_rows, charge_ids = [], [], []
    for invoice_id, d in zip(invoice_ids, drafts_in_order(numbered), strict=True):
        for pos, (c, a) in enumerate(zip(d.charges, d.line_amounts, strict=True), start=1):
            qty = to_decimal(c.quantity) or Decimal(1)
            # The line's unit price is net: the line's net for one unit, the (net) price per
            # step for usage, else net / quantity.
            if qty == 1:
                unit_net = a.net
            elif not c.price_includes_vat:
                unit_net = to_decimal(c.unit_price)
            else:
                unit_net = a.net / qty
            line_rows.append({
                "invoice_id": invoice_id, "position": pos, "description": c.description[:300],
                "period_start": c.period_start, "period_end": c.period_end, "quantity": qty, "unit": c.unit,
                "unit_price": unit_net.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), "vat_rate": c.vat_rate,
                "net": a.net, "vat": a.vat, "gross": a.gross, "customer_service_id": c.customer_service_id,
                "created_at": now, "updated_at": now,
            })
            charge_ids.append(c.id)
        for rate, a in d.rates.items():
            vat_rows.append({"invoice_id": invoice_id, "vat_rate": rate, "net": a.net, "vat": a.vat,
                             "gross": a.gross, "created_at": now, "updated_at": now})
    session.execute(insert(_line), line_rows)
    by_position = {}
    for chunk in _chunks(invoice_ids, 5000):
        by_position.update({(r.invoice_id, r.position): r.id for r in session.execute(
            select(_line.c.invoice_id, _line.c.position, _line.c.id).where(_line.c.invoice_id.in_(chunk)))})
    line_ids = [by_position[(r["invoice_id"], r["position"])] for r in line_rows]
    session.execute(insert(_vat), vat_rows)
    # Link charges to their lines: one UPDATE … CASE per chunk (an executemany of single-row
    # UPDATEs costs more than all the inserts together).
    links = list(zip(charge_ids, line_ids, strict=True))
    for chunk in _chunks(links, 1000):
        # Both ids are integers the database just handed us, so inlining them is safe.
        mapping = literal_column("CASE id " + " ".join(f"WHEN {int(c)} THEN {int(ln)}" for c, ln in chunk) + " END")
        session.execute(
            update(_charge)
            .where(_charge.c.id.in_([cid for cid, _ in chunk]), _charge.c.invoice_line_id.is_(None))
            .values(invoice_line_id=mapping)
        )


def drafts_in_order(numbered: list[tuple]) -> list[_InvoiceDraft]:
    return [d for d, _, _ in numbered]


def _apply_credit(session: Session, customer_ids: list[int], *, actor: Actor, on: date) -> None:
    """Customer credit (overpayments) is allocated to the new invoices at once. The payments
    rules own that (portal.domain.payments.apply_customer_credit). Only customers holding
    credit (an overpaid payment with money left) are asked, which spares a query per
    customer on a large run."""
    with_credit = session.scalars(
        select(Payment.customer_id).where(Payment.customer_id.in_(customer_ids),
                                          Payment.state == PaymentState.OVERPAID, Payment.unallocated > 0)
        .distinct().order_by(Payment.customer_id)
    ).all()
    for cid in with_credit:
        apply_customer_credit(session, cid, actor=actor, on=on)


def run_billing(session: Session, period_start: str | date, *, actor: Actor, issue_date: date | None = None,
                progress: Callable[[int, int], None] | None = None, batch_size: int = 500,
                run_id: int | None = None, job_id: int | None = None) -> BillingRun:
    """Bill the month: create the missing charges, invoice every uninvoiced charge (one
    invoice per customer, billing plan and currency), apply customer credit, and record the
    run (state running → done, or failed with the error).

    Work is committed per batch of `batch_size` customers, so a large run never holds one
    giant transaction; each batch takes its invoice numbers in its own transaction, so a
    batch that fails gives its numbers back and numbering stays gapless. A failed run can
    simply be run again: what was committed stays, the rest is done.

    Double billing is impossible: the charge table's unique (service, period, kind,
    discriminator) makes a second insert of a charge a no-op (ON CONFLICT DO NOTHING), and
    each batch locks its customers' rows before collecting their uninvoiced charges, so of
    two concurrent runs the second waits and then finds those charges already invoiced.
    Running twice for a period adds nothing. `progress(done, total)` counts customers.
    Defaults: issue_date = today. `run_id` carries out a run staff requested
    (`request_billing_run`: its period and issue date win); `job_id` links the run to its
    background job. The session is committed by this function."""
    resumed = False
    if run_id is not None:
        run = session.get(BillingRun, run_id)
        # A failed run (its worker died or its batch failed) is carried on: its finished
        # batches stay, the rest is billed (see portal.jobs.resume_job).
        if run is None or run.state not in (BillingRunState.PREVIEWED, BillingRunState.FAILED):
            raise BillingRunRefused(_("Billing run %(run)s is not waiting to be run.", run=run_id))
        resumed = run.state == BillingRunState.FAILED
        run.error = ""
        ms, me, issue_date = run.period_start, run.period_end, run.issue_date
        run.state = BillingRunState.RUNNING
        run.started_at = utcnow()
    else:
        ms, me = _month(period_start)
        issue_date = issue_date or date.today()
        run = BillingRun(period_start=ms, period_end=me, issue_date=issue_date, state=BillingRunState.RUNNING,
                         started_by_type=actor.type, started_by_id=actor.id, started_by_name=actor.name[:200],
                         started_at=utcnow())
        session.add(run)
    if job_id is not None:
        run.job_id = job_id
    session.commit()  # visible as "running" to everyone from now on
    run_id = run.id
    done = charges_count = 0
    all_drafts: list[_InvoiceDraft] = []
    try:
        catalog = _Catalog.load(session)
        services = _load_services(session, ms, me)
        customer_ids = sorted(set(services) | _customers_with_open_charges(session, me))
        if customer_ids and catalog.default_plan_id is None:
            raise NoBillingPlan(_("There is no billing plan to invoice under; create one first."))
        total = len(customer_ids)
        if progress:
            progress(0, total)
        for batch in _chunks(customer_ids, batch_size):
            customers = _load_customers(session, batch)
            computed = _compute_charges(session, catalog, services, customers, ms, me)
            computed.sort(key=lambda c: (c.customer_service_id or 0, c.period_start, c.kind, c.discriminator))
            inserted = _insert_charges(session, computed, run_id)
            _lock_customers(session, batch)
            drafts = _group_invoices(_open_charges(session, batch, me), customers, catalog)
            _issue(session, drafts, catalog, run_id=run_id, issue_date=issue_date, ms=ms, me=me)
            _apply_credit(session, sorted({d.customer.id for d in drafts}), actor=actor, on=issue_date)
            session.commit()
            charges_count += inserted
            all_drafts.extend(drafts)
            done += len(batch)
            if progress:
                progress(done, total)
    except Exception as exc:
        session.rollback()
        run = session.get(BillingRun, run_id)
        _finish(run, all_drafts, charges_count)
        run.state = BillingRunState.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:4000]
        audit.record(session, actor, "billing.run_failed", "billing_run", run_id, _summary(run))
        session.commit()
        raise
    run = session.get(BillingRun, run_id)
    if resumed:  # the figures of the whole run, the batches committed before it failed included
        all_drafts, charges_count = _run_so_far(session, run_id)
    _finish(run, all_drafts, charges_count)
    run.state = BillingRunState.DONE
    audit.record(session, actor, "billing.run", "billing_run", run_id, _summary(run))
    session.commit()
    return run


def _run_so_far(session: Session, run_id: int) -> tuple[list, int]:
    """What a run has committed, as drafts for _finish: its invoices and its new charges."""
    invoices = session.scalars(select(Invoice).where(Invoice.billing_run_id == run_id,
                                                     Invoice.type == InvoiceType.INVOICE)).all()
    drafts = [SimpleNamespace(currency=i.currency, customer=SimpleNamespace(id=i.customer_id),
                              total=SimpleNamespace(net=i.net_total, vat=i.vat_total, gross=i.gross_total))
              for i in invoices]
    charges = session.scalar(select(func.count()).select_from(Charge).where(Charge.billing_run_id == run_id))
    return drafts, int(charges or 0)


def _finish(run: BillingRun, drafts: list[_InvoiceDraft], charges_count: int) -> None:
    by_currency = _totals_by_currency(drafts)
    run.finished_at = utcnow()
    run.charges_count = charges_count
    run.invoices_count = len(drafts)
    run.customers_count = len({d.customer.id for d in drafts})
    run.totals_by_currency = {k: {f: str(v) if isinstance(v, Decimal) else v for f, v in t.items()}
                              for k, t in by_currency.items()}
    # The *_total columns hold the main currency's totals (the one with most invoices);
    # totals_by_currency is the full breakdown.
    main = max(by_currency.items(), key=lambda kv: (kv[1]["invoices"], kv[0]), default=None)
    run.net_total = main[1]["net"] if main else ZERO
    run.vat_total = main[1]["vat"] if main else ZERO
    run.gross_total = main[1]["gross"] if main else ZERO


def _summary(run: BillingRun) -> dict:
    return {"period": run.period_start.strftime("%Y-%m"), "issue_date": run.issue_date, "state": run.state,
            "charges": run.charges_count, "invoices": run.invoices_count, "customers": run.customers_count,
            "totals": run.totals_by_currency, "error": run.error or None}

# ---------------------------------------------------------------- staff requests


def request_billing_run(session: Session, period: str | date, *, actor: Actor, location_ids=None,
                        issue_date: date | None = None) -> BillingRun:
    """Staff ask for the run of a month; a background job carries it out (`run_billing` with
    `run_id`). The rules: a run bills every location, so only an operator without location
    limits (`location_ids` None) may start one — an operator of some locations would
    otherwise issue invoices (and see totals) of locations that are not theirs; and while a
    run of the same month waits or runs, another is refused (it would add nothing, only
    confuse). The run is recorded as `previewed` (confirmed after the preview, waiting for
    the worker) and audited. Flushes; the caller commits (enqueueing the job commits)."""
    if location_ids is not None:
        raise BillingRunRefused(_("A billing run bills every location; only an operator without location limits "
                                  "may start one."))
    ms, me = _month(period)
    waiting = session.scalar(
        select(BillingRun.id)
        .outerjoin(Job, Job.id == BillingRun.job_id)
        .where(BillingRun.period_start == ms,
               BillingRun.state.in_([BillingRunState.PREVIEWED, BillingRunState.RUNNING]),
               or_(BillingRun.job_id.is_(None), Job.state.in_([JobState.QUEUED, JobState.RUNNING])))
        .limit(1)
    )
    if waiting is not None:
        raise BillingRunRefused(_("Billing run %(run)s of %(period)s is already waiting or running.",
                                  run=waiting, period=f"{ms:%Y-%m}"), field="period")
    issue_date = issue_date or date.today()
    run = BillingRun(period_start=ms, period_end=me, issue_date=issue_date, state=BillingRunState.PREVIEWED,
                     started_by_type=actor.type, started_by_id=actor.id, started_by_name=actor.name[:200],
                     started_at=utcnow())
    session.add(run)
    session.flush()
    audit.record(session, actor, "billing.run_requested", "billing_run", run.id,
                 {"period": f"{ms:%Y-%m}", "issue_date": issue_date})
    return run
