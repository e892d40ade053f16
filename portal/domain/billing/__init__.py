"""The billing engine: periods and charges, the billing run, credit notes and the guard that
keeps issued invoices unchanged.

The rules, in the business's words (domain.md §3 "Billing run" and "Credit notes"):

- A run bills one calendar month, "the period" (`billing_period("2026-11")`).
- A customer service is billable when it is active or blocked (blocked services are still
  charged — ours), or cancelled with its last billed day (`billing_to`, else `cancelled_on`)
  on or after the start of the charged period; and billing_from ≤ the period's end and
  (billing_to is open or ≥ the period's start). Ordered services are not billed.
- Monthly services are charged per calendar month; quarterly per calendar quarter and yearly
  per calendar year, charged in the run of the period's first month — or, when the service
  starts later in that quarter/year, in the run of the month it starts, prorated to the
  period's end. (Any run inside the quarter/year creates the charge if it is still missing;
  the unique constraint makes that a no-op otherwise.) One-off services are charged once,
  in the run of the month billing_from falls into, never prorated.
- Proration by days: days in service within the charged period / days in the period, the
  amount rounded to 0.01 half-up.
- Price: the service's price_override, else the definition's price effective for the
  period: the latest PriceChange with effective_from ≤ the period's start, else the
  definition's price (a change inside a period applies from the next one; never
  retroactively). `price_includes_vat` decides whether the gross or the net is fixed.
- Discounts valid on at least one day of the charged period (per service, or per customer
  optionally limited to a service group; only when the definition's commitment_months ≥ the
  discount's min_commitment_months): percent of the service charge, or an amount per full
  period; both prorated by the days the discount covers, capped at the charge. Shown
  discounts are separate negative charges of kind `discount` (discriminator = discount id);
  discounts not shown on the invoice are folded into the service charge's price.
- Usage, billed per month in arrears: for a service whose definition has a usage tracker and
  which has a UsageInstance of it, the readings measured inside the month (UTC) are
  aggregated per item (sum/max/last/average), the included steps × step subtracted, the rest
  rounded to whole steps (up/down/nearest) × amount_per_step, net, VAT from the tracker.
- Uninvoiced charges with period_start ≤ the period's end (dunning fees, credits, charges of
  an interrupted run) are invoiced too. Zero charges are not created.
- One invoice per (customer, billing plan [the service's, else the customer's, else the
  first active plan], currency). An invoice whose total would be negative is not issued:
  its charges wait for the next run.
- Numbering: series = location.invoice_series_prefix + plan.series (e.g. "1" + "FV" =
  "1FV"), scope "invoice:1FV", gapless per year of the issue date; number text
  "{series}-{year}-{seq:06d}", e.g. "1FV-2026-000123". Variable symbol = the number's
  digits without the century: YY + the series' digits + the 6-digit sequence, e.g.
  "261000123" (at most 10 digits). Two series with the same digits would make equal
  symbols, so the run refuses (`VariableSymbolClash`) rather than issue an ambiguous VS.
- Due date = issue date + plan.due_days; taxable supply date (DUZP) = the period's last day
  (a continuing supply billed per period); constant symbol from the plan; the customer's and
  the supplier's (the location's partner) identities are copied onto the invoice.
- Running twice for a period adds nothing; two runs at once neither double-bill nor leave
  gaps in numbering (see `run_billing`).
- An issued invoice never changes: the only correction is a credit note (type credit_note,
  negative amounts, corrects_id), full or per line, with a reason. Cancelling an unpaid
  invoice issues a full credit note and marks it cancelled. What an invoice still asks for
  is gross − paid − credited (`amount_due`).

The package, by topic: `periods` (the month, quarters, days), `charges` (what a period costs:
prices, proration, discounts, usage), `loading` (what a run reads), `invoices` (charges grouped
into invoices, numbers, variable symbols), `preview`, `run` (the run and staff's request for
one), `credit_notes` (credit notes, cancelling, amount due), `guard` (issued invoices never
change), `sending` (an invoice by e-mail), `errors`. Import from the package: the names below
are its public API.
"""
from __future__ import annotations

import logging

from portal.domain.billing.charges import (
    UNITS,
    ChargeDraft,
    aggregate_readings,
    billable_steps,
    effective_price,
    service_charges,
    usage_charges,
)
from portal.domain.billing.credit_notes import (
    CREDIT_NOTE_SUFFIX,
    amount_due,
    cancel_invoice,
    credited_amount,
    issue_credit_note,
)
from portal.domain.billing.errors import (
    BillingRunRefused,
    CancellationRefused,
    CreditNoteRefused,
    InvalidPeriod,
    InvoiceImmutable,
    InvoiceNotSent,
    NoBillingPlan,
    VariableSymbolClash,
)
from portal.domain.billing.guard import (
    MUTABLE_INVOICE_FIELDS,
    protect_issued_invoices,
    unprotect_issued_invoices,
)
from portal.domain.billing.invoices import (
    KIND_ORDER,
    NUMBER_FORMAT,
    supplier_snapshot,
    variable_symbol,
)
from portal.domain.billing.periods import billing_period, days_between, quarter_bounds, year_bounds
from portal.domain.billing.preview import (
    BillingPreview,
    PreviewInvoice,
    PreviewRow,
    preview_billing,
    preview_customer,
)
from portal.domain.billing.run import drafts_in_order, request_billing_run, run_billing
from portal.domain.billing.sending import send_invoice

log = logging.getLogger(__name__)

__all__ = [
    "CREDIT_NOTE_SUFFIX",
    "KIND_ORDER",
    "MUTABLE_INVOICE_FIELDS",
    "NUMBER_FORMAT",
    "UNITS",
    "BillingPreview",
    "BillingRunRefused",
    "CancellationRefused",
    "ChargeDraft",
    "CreditNoteRefused",
    "InvalidPeriod",
    "InvoiceImmutable",
    "InvoiceNotSent",
    "NoBillingPlan",
    "PreviewInvoice",
    "PreviewRow",
    "VariableSymbolClash",
    "aggregate_readings",
    "amount_due",
    "billable_steps",
    "billing_period",
    "cancel_invoice",
    "credited_amount",
    "days_between",
    "drafts_in_order",
    "effective_price",
    "issue_credit_note",
    "preview_billing",
    "preview_customer",
    "protect_issued_invoices",
    "quarter_bounds",
    "request_billing_run",
    "run_billing",
    "send_invoice",
    "service_charges",
    "supplier_snapshot",
    "unprotect_issued_invoices",
    "usage_charges",
    "variable_symbol",
    "year_bounds",
]
