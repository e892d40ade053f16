"""Credit notes, the only correction of an issued invoice, and cancelling an unpaid invoice;
what an invoice still asks for (`amount_due`)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import audit
from portal.domain.actors import Actor
from portal.domain.billing.errors import CancellationRefused, CreditNoteRefused
from portal.domain.billing.invoices import NUMBER_FORMAT
from portal.domain.money import (
    ZERO,
    Amounts,
    rate_key,
    round_money,
    to_decimal,
)
from portal.domain.numbering import format_number, reserve_numbers
from portal.domain.payments import settle_credit_note
from portal.models import (
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
)

CREDIT_NOTE_SUFFIX = "D"  # credit-note series = the invoice series + "D": "1FV" → "1FVD"


# ---------------------------------------------------------------- credit notes


def credited_amount(session: Session, invoice: Invoice) -> Decimal:
    """How much of the invoice its issued credit notes took back: −Σ of their gross totals
    (a positive amount; 0 without credit notes)."""
    total = session.scalar(select(func.coalesce(func.sum(Invoice.gross_total), 0)).where(
        Invoice.corrects_id == invoice.id, Invoice.type == InvoiceType.CREDIT_NOTE,
        Invoice.state == InvoiceState.ISSUED))
    return -round_money(total)


def amount_due(session: Session, invoice: Invoice) -> Decimal:
    """What the invoice still asks for: gross − paid − credited, never below 0; nothing for a
    credit note or a cancelled invoice. Computed from the credit notes themselves;
    `Invoice.amount_due` reads the same figure from the cached `credited_amount` that
    payments.settle_credit_note keeps."""
    if invoice.type == InvoiceType.CREDIT_NOTE or invoice.state != InvoiceState.ISSUED:
        return ZERO
    return max(round_money(invoice.gross_total - invoice.paid_amount - credited_amount(session, invoice)), ZERO)


def _remaining_per_line(session: Session, invoice: Invoice) -> dict[int, Amounts]:
    """For each line: its amounts minus what issued credit notes already took back."""
    remaining = {ln.id: Amounts(ln.net, ln.vat, ln.gross) for ln in invoice.lines}
    credited = session.execute(
        select(InvoiceLine.corrects_line_id, func.sum(InvoiceLine.net), func.sum(InvoiceLine.vat),
               func.sum(InvoiceLine.gross))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.corrects_line_id.in_(list(remaining)), Invoice.state == InvoiceState.ISSUED,
               Invoice.type == InvoiceType.CREDIT_NOTE)
        .group_by(InvoiceLine.corrects_line_id)
    ).all()
    for line_id, net, vat, gross in credited:
        remaining[line_id] = remaining[line_id] + Amounts(round_money(net), round_money(vat), round_money(gross))
    return remaining


def issue_credit_note(session: Session, invoice: Invoice, *, actor: Actor, reason: str,
                      line_ids: Iterable[int] | None = None, issue_date: date | None = None) -> Invoice:
    """Correct an issued invoice by a credit note — the only way to change it. Full (every
    line with something left) or for the given lines; each credited line takes back what
    remains of it, so nothing can be credited twice. A reason is required; a credit note
    cannot itself be credited. The credit note has its own gapless number in the invoice
    series' credit-note series (e.g. "1FVD-2026-000001", scope "credit_note:1FV"), negative
    quantities and amounts, VAT rows summed from its lines (so a full credit note cancels
    the invoice to the cent), the invoice's parties and variable symbol, issue date =
    taxable supply date = due date = `issue_date` (default today). The payments rules then
    settle it against the invoice (payments.settle_credit_note). Flushes; the
    caller commits."""
    reason = (reason or "").strip()
    if not reason:
        raise CreditNoteRefused(_("A credit note needs a reason."), field="reason")
    if invoice.type == InvoiceType.CREDIT_NOTE:
        raise CreditNoteRefused(_("A credit note cannot be credited."))
    if invoice.state != InvoiceState.ISSUED:
        raise CreditNoteRefused(_("Invoice %(number)s is cancelled; there is nothing to credit.",
                                  number=invoice.number))
    issue_date = issue_date or date.today()
    remaining = _remaining_per_line(session, invoice)
    lines_by_id = {ln.id: ln for ln in invoice.lines}
    if line_ids is None:
        chosen = [ln for ln in invoice.lines if remaining[ln.id] != Amounts.zero()]
        if not chosen:
            raise CreditNoteRefused(_("Invoice %(number)s is already fully credited.", number=invoice.number))
    else:
        wanted = list(dict.fromkeys(int(i) for i in line_ids))
        if not wanted:
            raise CreditNoteRefused(_("Choose at least one line to credit."), field="lines")
        unknown = [i for i in wanted if i not in lines_by_id]
        if unknown:
            raise CreditNoteRefused(_("Line(s) %(lines)s are not on invoice %(number)s.",
                                      lines=", ".join(map(str, unknown)), number=invoice.number), field="lines")
        spent = [i for i in wanted if remaining[i] == Amounts.zero()]
        if spent:
            raise CreditNoteRefused(
                _("Line(s) %(lines)s of invoice %(number)s are already credited.",
                  lines=", ".join(str(lines_by_id[i].position) for i in spent), number=invoice.number),
                field="lines")
        chosen = sorted((lines_by_id[i] for i in wanted), key=lambda ln: ln.position)

    series = f"{invoice.series}{CREDIT_NOTE_SUFFIX}"
    seq = reserve_numbers(session, f"credit_note:{invoice.series}", issue_date.year, 1)[0]
    note = Invoice(
        customer_id=invoice.customer_id, location_id=invoice.location_id, billing_plan_id=invoice.billing_plan_id,
        type=InvoiceType.CREDIT_NOTE, series=series, year=issue_date.year, sequence=seq,
        number=format_number(NUMBER_FORMAT, series=series, year=issue_date.year, seq=seq),
        variable_symbol=invoice.variable_symbol, constant_symbol=invoice.constant_symbol, issue_date=issue_date,
        taxable_supply_date=issue_date, due_date=issue_date, period_start=invoice.period_start,
        period_end=invoice.period_end, currency=invoice.currency, state=InvoiceState.ISSUED,
        corrects_id=invoice.id, correction_reason=reason, customer_name=invoice.customer_name,
        customer_address=invoice.customer_address, customer_company_id=invoice.customer_company_id,
        customer_vat_id=invoice.customer_vat_id, customer_number=invoice.customer_number,
        supplier=dict(invoice.supplier or {}), net_total=ZERO, vat_total=ZERO, gross_total=ZERO,
        rounding=ZERO, paid_amount=ZERO,
    )
    rates: dict[Decimal, Amounts] = defaultdict(Amounts.zero)
    for pos, ln in enumerate(chosen, start=1):
        back = -remaining[ln.id]
        note.lines.append(InvoiceLine(
            position=pos, description=ln.description, period_start=ln.period_start, period_end=ln.period_end,
            quantity=-to_decimal(ln.quantity), unit=ln.unit, unit_price=ln.unit_price, vat_rate=ln.vat_rate,
            net=back.net, vat=back.vat, gross=back.gross, customer_service_id=ln.customer_service_id,
            corrects_line_id=ln.id,
        ))
        rates[rate_key(ln.vat_rate)] = rates[rate_key(ln.vat_rate)] + back
    total = Amounts.zero()
    for rate in sorted(rates):
        a = rates[rate]
        note.vat_breakdown.append(InvoiceVat(vat_rate=rate, net=a.net, vat=a.vat, gross=a.gross))
        total = total + a
    note.net_total, note.vat_total, note.gross_total = total.net, total.vat, total.gross
    session.add(note)
    session.flush()
    audit.record(session, actor, "invoice.credit_note_issued", "invoice", note.id, {
        "credit_note": note.number, "corrects": invoice.number, "reason": reason,
        "lines": [ln.position for ln in chosen], "gross": note.gross_total,
    }, customer_id=invoice.customer_id)
    # The payments rules decide what the credit does to the invoice's allocations (release
    # an overpayment to customer credit…).
    if note.gross_total < 0:
        settle_credit_note(session, note, actor=actor, on=issue_date)
    return note


def cancel_invoice(session: Session, invoice: Invoice, *, actor: Actor, reason: str,
                   issue_date: date | None = None) -> Invoice | None:
    """Cancel an unpaid invoice: a full credit note of whatever is not yet credited, then the
    invoice's state becomes cancelled. Refused for paid or partly paid invoices (credit
    them instead), credit notes and cancelled invoices; a reason is required. Returns the
    credit note (None when earlier credit notes had already taken everything back).
    Flushes; the caller commits."""
    reason = (reason or "").strip()
    if not reason:
        raise CancellationRefused(_("A cancellation needs a reason."), field="reason")
    if invoice.type == InvoiceType.CREDIT_NOTE:
        raise CancellationRefused(_("A credit note cannot be cancelled."))
    if invoice.state == InvoiceState.CANCELLED:
        raise CancellationRefused(_("Invoice %(number)s is already cancelled.", number=invoice.number))
    if to_decimal(invoice.paid_amount) != 0:
        raise CancellationRefused(
            _("Invoice %(number)s is (partly) paid and cannot be cancelled; issue a credit note instead.",
              number=invoice.number))
    remaining = _remaining_per_line(session, invoice)
    note = None
    if any(a != Amounts.zero() for a in remaining.values()):
        note = issue_credit_note(session, invoice, actor=actor, reason=reason, issue_date=issue_date)
    invoice.state = InvoiceState.CANCELLED
    session.flush()
    audit.record(session, actor, "invoice.cancelled", "invoice", invoice.id, {
        "invoice": invoice.number, "reason": reason, "credit_note": note.number if note else None,
    }, customer_id=invoice.customer_id)
    return note
