"""Landing-page figures for both faces, each in a fixed number of queries."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import case, func, select, type_coerce
from sqlalchemy.orm import Session, aliased, joinedload

from portal.domain.payments import HALF_CENT, PAYABLE_TYPES, invoice_due
from portal.domain.payments import open_invoices_query as open_invoice_rows
from portal.models import (
    Customer,
    CustomerRequest,
    CustomerService,
    Invoice,
    InvoiceState,
    InvoiceType,
    Payment,
    PaymentState,
    RequestState,
    ServiceState,
)
from portal.models.base import ZERO, Money

OPEN_REQUEST_STATES = (RequestState.NEW, RequestState.IN_PROGRESS, RequestState.WAITING_FOR_CUSTOMER)


@dataclass
class CustomerOverview:
    services: list[CustomerService]
    open_invoices: list[Invoice]
    latest_invoices: list[Invoice]
    latest_payments: list[Payment]
    open_requests: int
    amount_due: dict[str, Decimal] = field(default_factory=dict)
    overdue: dict[str, Decimal] = field(default_factory=dict)
    next_due_date: date | None = None


def open_invoices_query(customer_id: int):
    """Issued invoices (and advances) with something left to pay once payments and credit
    notes are counted, oldest due first. For each one's amount due use the rows of
    `portal.domain.payments.open_invoices_query` (invoice, credited) and `invoice_due`."""
    return open_invoice_rows(customer_id).with_only_columns(Invoice)


def customer_overview(session: Session, customer_id: int, today: date | None = None) -> CustomerOverview:
    today = today or date.today()
    services = list(
        session.scalars(
            select(CustomerService)
            .options(joinedload(CustomerService.definition))
            .where(CustomerService.customer_id == customer_id, CustomerService.state != ServiceState.CANCELLED)
            .order_by(CustomerService.id)
        )
    )
    open_rows = session.execute(open_invoice_rows(customer_id).limit(50)).all()
    open_invoices = [inv for inv, _ in open_rows]
    latest_invoices = list(
        session.scalars(
            select(Invoice).where(Invoice.customer_id == customer_id).order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(5)
        )
    )
    latest_payments = list(
        session.scalars(
            select(Payment).where(Payment.customer_id == customer_id).order_by(Payment.received_on.desc(), Payment.id.desc()).limit(5)
        )
    )
    open_requests = session.scalar(
        select(func.count()).select_from(CustomerRequest).where(
            CustomerRequest.customer_id == customer_id, CustomerRequest.state.in_(OPEN_REQUEST_STATES)
        )
    ) or 0
    amount_due: dict[str, Decimal] = {}
    overdue: dict[str, Decimal] = {}
    for inv, credited in open_rows:
        due = invoice_due(inv, credited)
        amount_due[inv.currency.value] = amount_due.get(inv.currency.value, ZERO) + due
        if inv.due_date < today:
            overdue[inv.currency.value] = overdue.get(inv.currency.value, ZERO) + due
    return CustomerOverview(
        services=services,
        open_invoices=open_invoices,
        latest_invoices=latest_invoices,
        latest_payments=latest_payments,
        open_requests=open_requests,
        amount_due=amount_due,
        overdue=overdue,
        next_due_date=open_invoices[0].due_date if open_invoices else None,
    )


@dataclass
class BusinessOverview:
    customers: int
    services_by_state: dict[str, int]
    receivables: dict[str, Decimal]
    overdue: dict[str, Decimal]
    requests_waiting: int
    unmatched_payments: int


def business_overview(session: Session, location_ids: frozenset[int] | None, today: date | None = None) -> BusinessOverview:
    today = today or date.today()

    def scoped(stmt, location_col):
        return stmt if location_ids is None else stmt.where(location_col.in_(location_ids))

    customers = session.scalar(scoped(select(func.count(Customer.id)), Customer.location_id)) or 0
    by_state = dict(
        session.execute(
            scoped(
                select(CustomerService.state, func.count()).join(Customer, Customer.id == CustomerService.customer_id),
                Customer.location_id,
            ).group_by(CustomerService.state)
        ).all()
    )
    # What is left once payments and credit notes are counted (see payments.invoice_due):
    # the credit notes summed once per corrected invoice and joined, not a subquery per
    # invoice (which made this page cost a second per 60 000 invoices on PostgreSQL).
    cn = aliased(Invoice, name="credit_note")
    credits = (
        select(cn.corrects_id.label("invoice_id"), func.sum(cn.gross_total).label("total"))
        .where(cn.corrects_id.is_not(None), cn.type == InvoiceType.CREDIT_NOTE, cn.state == InvoiceState.ISSUED)
        .group_by(cn.corrects_id)
        .subquery()
    )
    left = Invoice.gross_total - Invoice.paid_amount + func.coalesce(credits.c.total, 0)
    open_q = scoped(
        select(Invoice.currency, type_coerce(func.sum(left), Money),
               type_coerce(func.sum(case((Invoice.due_date < today, left), else_=0)), Money))
        .outerjoin(credits, credits.c.invoice_id == Invoice.id)
        .where(Invoice.type.in_(PAYABLE_TYPES), Invoice.state == InvoiceState.ISSUED, left > HALF_CENT),
        Invoice.location_id,
    ).group_by(Invoice.currency)
    receivables: dict[str, Decimal] = {}
    overdue: dict[str, Decimal] = {}
    for c, total, late in session.execute(open_q):
        code = str(c.value if hasattr(c, "value") else c)
        receivables[code] = Decimal(total or 0)
        if late and Decimal(late) > 0:
            overdue[code] = Decimal(late)
    requests_waiting = session.scalar(
        scoped(
            select(func.count(CustomerRequest.id)).join(Customer, Customer.id == CustomerRequest.customer_id)
            .where(CustomerRequest.state.in_((RequestState.NEW, RequestState.IN_PROGRESS))),
            Customer.location_id,
        )
    ) or 0
    unmatched = session.scalar(select(func.count(Payment.id)).where(Payment.state == PaymentState.UNMATCHED)) or 0
    return BusinessOverview(
        customers=customers,
        services_by_state={str(getattr(k, "value", k)): v for k, v in by_state.items()},
        receivables=receivables,
        overdue=overdue,
        requests_waiting=requests_waiting,
        unmatched_payments=unmatched,
    )
