"""Invoices in memory: charges grouped into invoices (lines in order, VAT per rate), the
number format, variable symbols, the supplier copied onto an invoice, totals per currency."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _

from portal.domain.billing.charges import ChargeDraft, _Catalog
from portal.domain.billing.errors import NoBillingPlan, VariableSymbolClash
from portal.domain.billing.loading import _Customer
from portal.domain.money import (
    ZERO,
    Amounts,
    vat_recapitulation,
)
from portal.models import (
    BillingPlan,
    ChargeKind,
    Currency,
    Partner,
)

NUMBER_FORMAT = "{series}-{year}-{seq:06d}"
# Lines appear per service in this order, then fees and credits without a service.
KIND_ORDER = {ChargeKind.SERVICE: 0, ChargeKind.ONE_OFF: 1, ChargeKind.DISCOUNT: 2, ChargeKind.USAGE: 3,
              ChargeKind.FEE: 4, ChargeKind.CREDIT: 5}


# ---------------------------------------------------------------- invoices in memory


@dataclass
class _InvoiceDraft:
    customer: _Customer
    plan: BillingPlan
    currency: Currency
    charges: list[ChargeDraft]
    line_amounts: list[Amounts] = field(default_factory=list)
    rates: dict[Decimal, Amounts] = field(default_factory=dict)
    total: Amounts = field(default_factory=Amounts.zero)


def _line_order(c: ChargeDraft):
    return (c.customer_service_id is None, c.customer_service_id or 0, c.period_start,
            KIND_ORDER.get(ChargeKind(c.kind), 9), c.discriminator, c.id or 0)


def _group_invoices(charges: list[ChargeDraft], customers: dict[int, _Customer],
                    catalog: _Catalog) -> list[_InvoiceDraft]:
    """One invoice per (customer, billing plan, currency), lines in a stable order, VAT per
    rate (`vat_recapitulation`). Groups with a negative total are left out."""
    groups: dict[tuple, list[ChargeDraft]] = defaultdict(list)
    for c in charges:
        cust = customers[c.customer_id]
        plan_id = c.billing_plan_id or cust.billing_plan_id or catalog.default_plan_id
        if plan_id is None:
            raise NoBillingPlan(_("There is no billing plan to invoice under; create one first."))
        groups[(c.customer_id, plan_id, Currency(c.currency))].append(c)
    out = []
    for (cid, plan_id, currency), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        items.sort(key=_line_order)
        recap = vat_recapitulation((c.amount, c.vat_rate, c.price_includes_vat) for c in items)
        if recap.total.gross < 0:
            continue
        out.append(_InvoiceDraft(customers[cid], catalog.plans[plan_id], currency, items,
                                 recap.lines, recap.rates, recap.total))
    return out


def _series(catalog: _Catalog, draft: _InvoiceDraft) -> str:
    location = catalog.locations[draft.customer.location_id]
    return f"{location.invoice_series_prefix or ''}{draft.plan.series or ''}"


def variable_symbol(series: str, year: int, sequence: int) -> str:
    """The invoice's VS: YY + the series' digits + the 6-digit sequence ("1FV", 2026, 123 →
    "261000123"). More than 10 digits cannot be paid by bank transfer: refused."""
    vs = f"{year % 100:02d}{''.join(ch for ch in series if ch.isdigit())}{sequence:06d}"
    if len(vs) > 10:
        raise VariableSymbolClash(_("Series %(series)s gives a variable symbol longer than 10 digits (%(vs)s).",
                                    series=repr(series), vs=vs))
    return vs


def supplier_snapshot(partner: Partner | None) -> dict:
    """The supplier printed on the invoice, copied at issue."""
    if partner is None:
        return {}
    address = [x for x in (partner.street, f"{partner.postal_code or ''} {partner.city or ''}".strip(),
                           partner.country) if x]
    return {
        "name": partner.name, "address": "\n".join(address), "street": partner.street,
        "city": partner.city, "postal_code": partner.postal_code, "country": partner.country,
        "company_id": partner.company_id, "vat_id": partner.vat_id, "iban": partner.iban,
        "bank_account": partner.bank_account, "bic": partner.bic, "email": partner.email,
        "phone": partner.phone, "web": partner.web,
    }


def _totals_by_currency(drafts: Iterable[_InvoiceDraft]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in drafts:
        t = out.setdefault(str(d.currency), {"net": ZERO, "vat": ZERO, "gross": ZERO, "invoices": 0})
        t["net"] += d.total.net
        t["vat"] += d.total.vat
        t["gross"] += d.total.gross
        t["invoices"] += 1
    return out
