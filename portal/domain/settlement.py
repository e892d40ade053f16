"""Paid means unblocked at once. Whatever pays an invoice — a statement line, staff pairing a
payment, a payment entered through the API or a gateway, credit applied — goes through one
allocation (`invoice_state._allocate`), which notes the customer on the session. Before that
transaction commits, the customers' settled debt recovery cases close and unblock what they
blocked (`close_settled_cases`, by the dunning run's own rule), in the same transaction
and under the same actor. A hook, not a call at every place that pays: a new way of paying
cannot forget it."""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import event, select
from sqlalchemy.orm import Session, joinedload, selectinload

from portal.domain.actors import Actor
from portal.domain.dunning import case_settled, close_case
from portal.domain.invoice_state import PAID_CUSTOMERS
from portal.domain.overdue import ladder_for, ladders, overdue_by_customer, services_blocked_by
from portal.domain.recipients import billing_email
from portal.models import CaseState, Customer, DebtRecoveryCase, Reminder

log = logging.getLogger(__name__)


def close_settled_cases(session: Session, customer_ids, *, on: date, actor: Actor) -> list[int]:
    """Between dunning runs: the open cases of these customers that their payments settled
    unblock what they blocked and close now, by the run's own rule (`dunning.case_settled`), so a customer
    who pays is not left blocked until the next run. Returns the closed cases' ids."""
    ids = sorted(set(customer_ids))
    cases: dict[int, DebtRecoveryCase] = {}
    for case in session.scalars(
        select(DebtRecoveryCase)
        .options(selectinload(DebtRecoveryCase.reminders).selectinload(Reminder.invoices))
        .where(DebtRecoveryCase.customer_id.in_(ids), DebtRecoveryCase.state != CaseState.CLOSED)
        .order_by(DebtRecoveryCase.id)
    ):
        cases[case.customer_id] = case  # the newest open case wins, as in the run
    if not cases:
        return []
    customers = session.scalars(
        select(Customer)
        .options(selectinload(Customer.contacts), joinedload(Customer.location), joinedload(Customer.billing_plan))
        .where(Customer.id.in_(list(cases)))
        .order_by(Customer.id)
    ).unique().all()
    all_ladders = ladders(session)
    overdue = overdue_by_customer(session, list(cases), on)
    closed = []
    for customer in customers:
        case = cases[customer.id]
        if case_settled(case, overdue.get(customer.id, []), ladder_for(customer, all_ladders), on):
            close_case(session, case, services_blocked_by(session, case), customer,
                        billing_email(session, customer), on=on, actor=actor)
            closed.append(case.id)
    return closed


def _unblock_paid(session: Session) -> None:
    paid = session.info.pop(PAID_CUSTOMERS, None)
    if not paid:
        return
    by_actor: dict[int, tuple] = {}
    for customer_id, actor in paid.items():
        by_actor.setdefault(id(actor), (actor, []))[1].append(customer_id)
    for actor, customer_ids in by_actor.values():
        try:
            # A savepoint: should unblocking fail, the payment still commits (the next
            # dunning run unblocks), rather than the money being lost with it.
            with session.begin_nested():
                close_settled_cases(session, customer_ids, on=date.today(), actor=actor)
        except Exception:
            log.exception("unblocking after payment failed for customers %s; the dunning run will retry",
                          customer_ids)
    session.info.pop(PAID_CUSTOMERS, None)  # what unblocking itself paid needs no second pass


def _forget_paid(session: Session) -> None:
    session.info.pop(PAID_CUSTOMERS, None)  # what was rolled back paid nothing


def install_paid_unblocking() -> bool:
    """Process-wide on every ORM session, like the invoice guard; create_app calls it."""
    if event.contains(Session, "before_commit", _unblock_paid):
        return False
    event.listen(Session, "before_commit", _unblock_paid)
    event.listen(Session, "after_rollback", _forget_paid)
    return True
