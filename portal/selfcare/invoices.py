"""Selfcare money: invoices (list, page, PDF, the payment QR), the account statement and
payments. Lists load what their templates show in a fixed number of queries."""
from __future__ import annotations

from datetime import date
from functools import cache

from flask import request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload, selectinload

from portal.documents import (
    document_for,
    invoice_supplier,
    kind_for,
    render_statement,
    send_document,
    send_pdf,
    statement_file_name,
)
from portal.documents.qr import payment_qr
from portal.domain.balance import customer_statement, describe_entry
from portal.domain.overview import open_invoices_query
from portal.extensions import db
from portal.links import pay_token
from portal.models import Invoice, InvoiceLine, InvoiceType, InvoiceVat, Payment, PaymentAllocation
from portal.selfcare import bp
from portal.selfcare.common import PER_PAGE, current_customer_id
from portal.selfcare.forms import InvoiceFilterForm, StatementForm
from portal.selfcare.reminders import has_reminders
from portal.web.access import customer_required, owned_or_404
from portal.web.forms import choices
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate


def _invoice_years(customer_id: int) -> list[int]:
    return list(db.session.scalars(_invoice_list_statements()["years"], {"customer_id": customer_id}))


@cache
def _invoice_list_statements() -> dict:
    """The invoice list's statements, built once with bound parameters (building them and
    their cache keys cost about a millisecond a page)."""
    customer_id = bindparam("customer_id")
    unpaid = open_invoices_query(customer_id).order_by(None).order_by(Invoice.due_date.desc(), Invoice.id.desc())
    every = select(Invoice).where(Invoice.customer_id == customer_id).order_by(Invoice.issue_date.desc(), Invoice.id.desc())
    year = bindparam("year")
    return {
        "years": select(Invoice.year).where(Invoice.customer_id == customer_id).distinct().order_by(Invoice.year.desc()),
        (True, False): unpaid, (True, True): unpaid.where(Invoice.year == year),
        (False, False): every, (False, True): every.where(Invoice.year == year),
    }


@bp.get("/invoices")
@customer_required
def invoices():
    years = _invoice_years(current_customer_id())
    form = InvoiceFilterForm(formdata=request.args)
    form.year.choices = choices([("", _("All years"))] + [(y, str(y)) for y in years])
    year = form.year.data if form.year.data in years else None
    unpaid = bool(form.unpaid.data)
    stmt = _invoice_list_statements()[unpaid, year is not None]
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE,
                    params={"customer_id": current_customer_id(), "year": year} if year is not None else {"customer_id": current_customer_id()})
    params = {"year": year, "unpaid": "y" if unpaid else None}
    return render("selfcare/invoices.html", block="invoice_table", page=page, form=form, params=params,
                  today=date.today(), reminders=has_reminders(current_customer_id()))


def invoice_payment_qr(invoice: Invoice) -> dict | None:
    """What to scan to pay what is left on `invoice` (its amount due already counts credit
    notes and payments): the same QR the printed invoice carries, for the amount due now."""
    supplier = invoice_supplier(invoice)
    found = payment_qr(
        currency=invoice.currency.value, iban=supplier.get("iban"), amount=invoice.amount_due,
        variable_symbol=invoice.variable_symbol, constant_symbol=invoice.constant_symbol,
        due_date=invoice.due_date, message=f"Invoice {invoice.number}", payee_name=supplier.get("name") or "",
        bic=supplier.get("bic"),
    )
    if invoice.type == InvoiceType.CREDIT_NOTE or found is None:
        return None
    payload, svg = found
    return {"payload": payload, "svg": svg, "label": "QR Platba" if invoice.currency.value == "CZK" else "EPC QR (SEPA)"}


@bp.get("/invoices/<int:invoice_id>/pdf")
@customer_required
def invoice_pdf(invoice_id: int):
    invoice = owned_or_404(Invoice, invoice_id)
    doc = document_for(db.session, kind_for(invoice), invoice)
    # The first download renders and stores the file (and points the invoice at it).
    db.session.commit()
    return send_document(doc)


@cache
def _invoice_detail_statements():
    """The invoice page's statements, built once with bound parameters (building them and
    their cache keys cost ~0.3 ms a page)."""
    invoice_id = bindparam("invoice_id")
    return (
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position, InvoiceLine.id),
        select(InvoiceVat).where(InvoiceVat.invoice_id == invoice_id).order_by(InvoiceVat.vat_rate),
        select(PaymentAllocation)
        .options(joinedload(PaymentAllocation.payment))
        .where(PaymentAllocation.invoice_id == invoice_id)
        .order_by(PaymentAllocation.at, PaymentAllocation.id),
        select(Invoice).where(Invoice.id == invoice_id, Invoice.customer_id == bindparam("customer_id")),
    )


@bp.get("/invoices/<int:invoice_id>")
@customer_required
def invoice_detail(invoice_id: int):
    invoice = owned_or_404(Invoice, invoice_id)
    lines_stmt, vat_stmt, allocations_stmt, corrects_stmt = _invoice_detail_statements()
    params = {"invoice_id": invoice.id}
    lines = db.session.scalars(lines_stmt, params).all()
    vat = db.session.scalars(vat_stmt, params).all()
    allocations = db.session.scalars(allocations_stmt, params).all()
    corrects = None
    if invoice.corrects_id is not None:
        corrects = db.session.scalar(corrects_stmt, {"invoice_id": invoice.corrects_id, "customer_id": current_customer_id()})
    # The invoice's pay link (the one its e-mail and PDF carry, or a fresh one when that has
    # expired), to open or pass on to whoever pays; only while something is due.
    token = pay_token(invoice, renew_on=date.today()) if invoice.amount_due > 0 else None
    return render("selfcare/invoice_detail.html", invoice=invoice, lines=lines, vat=vat, allocations=allocations,
                  corrects=corrects, supplier=invoice_supplier(invoice), today=date.today(), qr=invoice_payment_qr(invoice),
                  pay_link=url_for("selfcare.pay", token=token) if token else None)


# ---------------------------------------------------------------------------------- statement

@bp.get("/statement")
@customer_required
def statement():
    """The account statement for a period (default: this year so far), as a page or, with
    ?format=pdf, as a PDF rendered on demand (a snapshot of the ledger, not stored)."""
    today = date.today()
    if "start" in request.args or "end" in request.args:
        form = StatementForm(formdata=request.args)
        valid = form.validate()
    else:
        form = StatementForm(formdata=None, start=date(today.year, 1, 1), end=today)
        valid = True
    if not valid:
        return render("selfcare/statement.html", status=422, form=form, statement=None)
    result = customer_statement(db.session, current_customer_id(), form.start.data, form.end.data)
    if request.args.get("format") == "pdf":
        customer = current_user.customer
        return send_pdf(render_statement(customer, result), statement_file_name(customer, result))
    return render("selfcare/statement.html", form=form, statement=result,
                  describe=lambda entry: describe_entry(entry, _))


# ---------------------------------------------------------------------------------- payments

@bp.get("/payments")
@customer_required
def payments():
    stmt = (
        select(Payment)
        .options(selectinload(Payment.allocations).joinedload(PaymentAllocation.invoice))
        .where(Payment.customer_id == current_customer_id())
        .order_by(Payment.received_on.desc(), Payment.id.desc())
    )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/payments.html", block="payment_table", page=page)

