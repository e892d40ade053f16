"""The preview of a run: what it would invoice, in total and per customer; writes nothing."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.domain.billing.charges import ChargeDraft, _Catalog
from portal.domain.billing.invoices import _group_invoices, _InvoiceDraft, _totals_by_currency
from portal.domain.billing.loading import (
    _chunks,
    _compute_charges,
    _customers_with_open_charges,
    _existing_keys,
    _load_customers,
    _load_services,
    _open_charges,
)
from portal.domain.billing.periods import _month, year_bounds
from portal.domain.money import (
    ZERO,
    Amounts,
)

# ---------------------------------------------------------------- preview


@dataclass
class PreviewRow:
    customer_id: int
    name: str
    number: str
    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    lines: int
    invoices: int = 1


@dataclass
class BillingPreview:
    period_start: date
    period_end: date
    services: int = 0  # services with at least one new charge
    charges: int = 0  # charges the run would create
    invoices: int = 0
    customers: int = 0
    totals: dict[str, dict] = field(default_factory=dict)  # currency → {net, vat, gross, invoices}
    per_customer: list[PreviewRow] = field(default_factory=list)

    @property
    def period(self) -> tuple[date, date]:
        return self.period_start, self.period_end


def preview_billing(session: Session, period_start: str | date, *, today: date | None = None,
                    batch_size: int = 2000) -> BillingPreview:
    """What `run_billing` would create for the period, computed in memory: the charges not
    yet in the database plus the uninvoiced ones, grouped into invoices with their VAT.
    Writes nothing (no flush, no insert, no number taken). `today` is accepted for symmetry
    with the run and does not change the amounts."""
    ms, me = _month(period_start)
    preview = BillingPreview(ms, me)
    with session.no_autoflush:
        catalog = _Catalog.load(session)
        services = _load_services(session, ms, me)
        customer_ids = sorted(set(services) | _customers_with_open_charges(session, me))
        rows: dict[tuple[int, str], PreviewRow] = {}
        all_drafts: list[_InvoiceDraft] = []
        for batch in _chunks(customer_ids, batch_size):
            customers = _load_customers(session, batch)
            computed = _compute_charges(session, catalog, services, customers, ms, me)
            existing = _existing_keys(session, [s.id for cid in batch for s in services.get(cid, ())],
                                      year_bounds(ms)[0], me)
            new = [c for c in computed if c.key not in existing]
            preview.charges += len(new)
            preview.services += len({c.customer_service_id for c in new})
            drafts = _group_invoices(_open_charges(session, batch, me) + new, customers, catalog)
            all_drafts.extend(drafts)
            for d in drafts:
                key = (d.customer.id, str(d.currency))
                row = rows.get(key)
                if row is None:
                    row = rows[key] = PreviewRow(d.customer.id, d.customer.name, d.customer.number, str(d.currency),
                                                 ZERO, ZERO, ZERO, 0, 0)
                row.net += d.total.net
                row.vat += d.total.vat
                row.gross += d.total.gross
                row.lines += len(d.charges)
                row.invoices += 1
    preview.invoices = len(all_drafts)
    preview.customers = len({d.customer.id for d in all_drafts})
    preview.totals = _totals_by_currency(all_drafts)
    preview.per_customer = sorted(rows.values(), key=lambda r: (r.number, r.currency))
    return preview


@dataclass
class PreviewInvoice:
    """One invoice a run would issue for a customer: its lines (charge drafts with their
    amounts after the VAT recapitulation) and totals — the preview's drill-down."""

    currency: str
    plan_name: str
    lines: list[tuple[ChargeDraft, Amounts]]
    rates: dict[Decimal, Amounts]
    total: Amounts


def preview_customer(session: Session, period_start: str | date, customer_id: int) -> list[PreviewInvoice]:
    """What `run_billing` would invoice one customer for the period, line by line — the same
    computation as `preview_billing`, limited to that customer. Writes nothing."""
    ms, me = _month(period_start)
    with session.no_autoflush:
        catalog = _Catalog.load(session)
        services = {customer_id: _load_services(session, ms, me).get(customer_id, [])}
        customers = _load_customers(session, [customer_id])
        if not customers:
            return []
        computed = _compute_charges(session, catalog, services, customers, ms, me)
        existing = _existing_keys(session, [s.id for s in services[customer_id]], year_bounds(ms)[0], me)
        new = [c for c in computed if c.key not in existing]
        drafts = _group_invoices(_open_charges(session, [customer_id], me) + new, customers, catalog)
    return [PreviewInvoice(str(d.currency), d.plan.name, list(zip(d.charges, d.line_amounts, strict=True)),
                           dict(d.rates), d.total) for d in drafts]
