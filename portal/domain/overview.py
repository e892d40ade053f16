"""Landing-page figures for both faces, each in a fixed number of queries."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, bindparam, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from portal.domain.payments import (
    HALF_CENT,
    PAYABLE_TYPES,
    STAFF_QUEUE_STATES,
    invoice_due,
)
from portal.domain.payments import open_invoices_query as open_invoice_rows
from portal.models import (
    BillingRun,
    BillingRunState,
    CaseState,
    Customer,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Invoice,
    InvoiceState,
    InvoiceType,
    Payment,
    RequestState,
    ServiceState,
)
from portal.models.base import ZERO

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
    # The earliest due date still ahead (today included); what is past it is overdue, and
    # `overdue_since` is the oldest due date of that.
    next_due_date: date | None = None
    overdue_since: date | None = None


def open_invoices_query(customer_id: int):
    """Issued invoices (and advances) with something left to pay once payments and credit
    notes are counted, oldest due first. For each one's amount due use the rows of
    `portal.domain.payments.open_invoices_query` (invoice, credited) and `invoice_due`."""
    return open_invoice_rows(customer_id).with_only_columns(Invoice)


@functools.cache
def _customer_overview_statements():
    """The overview's statements, built once with the customer as a bound parameter:
    building them and their cache keys cost ~0.3 ms a page."""
    customer_id = bindparam("customer_id")
    services = (
        select(CustomerService)
        .options(joinedload(CustomerService.definition))
        .where(CustomerService.customer_id == customer_id, CustomerService.state != ServiceState.CANCELLED)
        .order_by(CustomerService.id)
    )
    open_rows = open_invoice_rows(customer_id).limit(50)
    latest_invoices = (
        select(Invoice).where(Invoice.customer_id == customer_id)
        .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(5)
    )
    latest_payments = (
        select(Payment).where(Payment.customer_id == customer_id)
        .order_by(Payment.received_on.desc(), Payment.id.desc()).limit(5)
    )
    open_requests = select(func.count()).select_from(CustomerRequest).where(
        CustomerRequest.customer_id == customer_id, CustomerRequest.state.in_(OPEN_REQUEST_STATES)
    )
    return services, open_rows, latest_invoices, latest_payments, open_requests


def customer_overview(session: Session, customer_id: int, today: date | None = None) -> CustomerOverview:
    today = today or date.today()
    services_stmt, open_rows_stmt, latest_invoices_stmt, latest_payments_stmt, open_requests_stmt = (
        _customer_overview_statements())
    params = {"customer_id": customer_id}
    services = list(session.scalars(services_stmt, params))
    open_rows = session.execute(open_rows_stmt, params).all()
    open_invoices = [inv for inv, _ in open_rows]
    latest_invoices = list(session.scalars(latest_invoices_stmt, params))
    latest_payments = list(session.scalars(latest_payments_stmt, params))
    open_requests = session.scalar(open_requests_stmt, params) or 0
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
        next_due_date=min((inv.due_date for inv in open_invoices if inv.due_date >= today), default=None),
        overdue_since=min((inv.due_date for inv in open_invoices if inv.due_date < today), default=None),
    )


@dataclass
class LastBillingRun:
    """The latest billing run (not a preview) and, within the operator's locations, what it
    issued: invoices, customers and totals per currency ({"CZK": {"net", "vat", "gross"}})."""

    run: BillingRun
    invoices: int
    customers: int
    totals: dict[str, dict[str, Decimal]]


@dataclass
class BusinessOverview:
    """The staff landing page's figures, within the operator's locations. Money is per
    currency; `receivables` is all that is open, `due` the part not yet overdue."""

    customers: int
    services_by_state: dict[str, int]
    receivables: dict[str, Decimal]
    due: dict[str, Decimal]
    overdue: dict[str, Decimal]
    # level (0 = no reminder yet) → {"customers": n, "amounts": {currency: overdue}}
    overdue_by_level: dict[int, dict]
    cases_by_state: dict[str, int]
    requests_new: int
    requests_unassigned: int
    requests_mine: int
    requests_waiting_for_customer: int
    last_billing_run: LastBillingRun | None
    unmatched_payments: int
    unmatched_amounts: dict[str, Decimal]


def _cur(value) -> str:
    return str(getattr(value, "value", value))


def _amount(value) -> Decimal:
    # SQLite sums NUMERIC as floats; amounts are shown to the cent.
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def business_overview(session: Session, location_ids: frozenset[int] | None, today: date | None = None,
                      operator_id: int | None = None) -> BusinessOverview:
    """Figures for the staff dashboard in a fixed number of queries (one per card), whatever
    the number of customers. Everything is limited to customers of `location_ids` (None =
    all). Overdue debt is split by the level of the customer's open debt recovery case (the
    last reminder the dunning run sent; 0 = not reminded yet). Payments waiting for staff
    (unmatched or partly paired) that no customer is identified for belong to no location:
    every operator sees them, as the payments queue does."""
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

    # Receivables: what is left once payments and credit notes are counted (see
    # payments.invoice_due), split by due date, per currency — one query. The credit notes
    # are summed once per corrected invoice and joined, not a subquery per invoice (which
    # cost a second per 60 000 invoices on PostgreSQL).
    cn = aliased(Invoice, name="credit_note")
    credits = (
        select(cn.corrects_id.label("invoice_id"), func.sum(cn.gross_total).label("total"))
        .where(cn.corrects_id.is_not(None), cn.type == InvoiceType.CREDIT_NOTE, cn.state == InvoiceState.ISSUED)
        .group_by(cn.corrects_id)
        .subquery()
    )
    left = Invoice.gross_total - Invoice.paid_amount + func.coalesce(credits.c.total, 0)
    open_where = (Invoice.type.in_(PAYABLE_TYPES), Invoice.state == InvoiceState.ISSUED, left > HALF_CENT)
    is_overdue = Invoice.due_date < today
    receivables: dict[str, Decimal] = {}
    due: dict[str, Decimal] = {}
    overdue: dict[str, Decimal] = {}
    rows = session.execute(
        scoped(
            select(Invoice.currency, func.sum(left), func.sum(case((is_overdue, left), else_=0)))
            .outerjoin(credits, credits.c.invoice_id == Invoice.id)
            .where(*open_where),
            Invoice.location_id,
        ).group_by(Invoice.currency)
    )
    for currency, total, late in rows:
        cur = _cur(currency)
        receivables[cur], overdue[cur] = _amount(total), _amount(late)
        due[cur] = receivables[cur] - overdue[cur]
    overdue = {c: a for c, a in overdue.items() if a > 0}

    # Overdue split by the customer's open debt recovery case level.
    case_level = (
        select(DebtRecoveryCase.customer_id.label("customer_id"), func.max(DebtRecoveryCase.level).label("level"))
        .where(DebtRecoveryCase.state != CaseState.CLOSED)
        .group_by(DebtRecoveryCase.customer_id)
        .subquery()
    )
    level = func.coalesce(case_level.c.level, 0)
    overdue_by_level: dict[int, dict] = {}
    for lvl, currency, n_customers, amount in session.execute(
        scoped(
            select(level, Invoice.currency, func.count(func.distinct(Invoice.customer_id)), func.sum(left))
            .outerjoin(credits, credits.c.invoice_id == Invoice.id)
            .outerjoin(case_level, case_level.c.customer_id == Invoice.customer_id)
            .where(*open_where, is_overdue),
            Invoice.location_id,
        ).group_by(level, Invoice.currency)
    ):
        entry = overdue_by_level.setdefault(int(lvl or 0), {"customers": 0, "amounts": {}})
        entry["customers"] += n_customers
        entry["amounts"][_cur(currency)] = _amount(amount)
    overdue_by_level = dict(sorted(overdue_by_level.items()))

    cases_by_state = {
        _cur(state): n
        for state, n in session.execute(
            scoped(
                select(DebtRecoveryCase.state, func.count())
                .join(Customer, Customer.id == DebtRecoveryCase.customer_id)
                .where(DebtRecoveryCase.state != CaseState.CLOSED),
                Customer.location_id,
            ).group_by(DebtRecoveryCase.state)
        )
    }

    is_open = CustomerRequest.state.in_(OPEN_REQUEST_STATES)

    def counted(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    req = session.execute(
        scoped(
            select(
                counted(CustomerRequest.state == RequestState.NEW),
                counted(and_(is_open, CustomerRequest.assignee_id.is_(None))),
                counted(and_(is_open, CustomerRequest.assignee_id == operator_id)) if operator_id is not None
                else literal(0),
                counted(CustomerRequest.state == RequestState.WAITING_FOR_CUSTOMER),
            ).join(Customer, Customer.id == CustomerRequest.customer_id),
            Customer.location_id,
        )
    ).one()

    last_run = None
    run = session.scalar(
        select(BillingRun).where(BillingRun.state != BillingRunState.PREVIEWED)
        .order_by(BillingRun.started_at.desc(), BillingRun.id.desc()).limit(1)
    )
    if run is not None:
        totals: dict[str, dict[str, Decimal]] = {}
        invoices = customers_billed = 0
        for currency, n, n_customers, net, vat, gross in session.execute(
            scoped(
                select(Invoice.currency, func.count(Invoice.id), func.count(func.distinct(Invoice.customer_id)),
                       func.sum(Invoice.net_total), func.sum(Invoice.vat_total), func.sum(Invoice.gross_total))
                .where(Invoice.billing_run_id == run.id),
                Invoice.location_id,
            ).group_by(Invoice.currency)
        ):
            invoices += n
            customers_billed += n_customers  # a customer invoices in one currency (its location's)
            totals[_cur(currency)] = {"net": _amount(net), "vat": _amount(vat), "gross": _amount(gross)}
        last_run = LastBillingRun(run=run, invoices=invoices, customers=customers_billed, totals=totals)

    unmatched = 0
    unmatched_amounts: dict[str, Decimal] = {}
    pay_stmt = (
        select(Payment.currency, func.count(Payment.id), func.sum(Payment.unallocated))
        .outerjoin(Customer, Customer.id == Payment.customer_id)
        .where(Payment.state.in_(STAFF_QUEUE_STATES))
        .group_by(Payment.currency)
    )
    if location_ids is not None:
        pay_stmt = pay_stmt.where(or_(Payment.customer_id.is_(None), Customer.location_id.in_(location_ids)))
    for currency, n, amount in session.execute(pay_stmt):
        unmatched += n
        unmatched_amounts[_cur(currency)] = _amount(amount)

    return BusinessOverview(
        customers=customers,
        services_by_state={_cur(k): v for k, v in by_state.items()},
        receivables=receivables,
        due=due,
        overdue=overdue,
        overdue_by_level=overdue_by_level,
        cases_by_state=cases_by_state,
        requests_new=int(req[0]),
        requests_unassigned=int(req[1]),
        requests_mine=int(req[2]),
        requests_waiting_for_customer=int(req[3]),
        last_billing_run=last_run,
        unmatched_payments=unmatched,
        unmatched_amounts=unmatched_amounts,
    )
