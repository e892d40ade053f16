"""Paid means unblocked at once (portal/domain/settlement.py): a payment that settles the debt
behind a blocking unblocks when its transaction commits, whatever recorded it, under the same
actor; a partial payment does not; a failure to unblock never loses the payment."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from portal.domain import payments as pay_rules
from portal.domain import settlement
from portal.domain.actors import Actor
from portal.domain.dunning import run_dunning
from portal.domain.statements import import_statement
from portal.models import AuditEntry, CaseState, DebtRecoveryCase, Payment, ServiceState
from tests.domain.lifecycle_fixtures import (
    SYSTEM,
    customer_with_email,
    default_ladder,
    invoice,
    service,
)

DUE = date(2025, 1, 15)
CLERK = Actor.system("bank statement")


def blocked_customer(db):
    default_ladder()
    customer, email = customer_with_email()
    svc = service(customer)
    inv = invoice(customer, issue_date=DUE - timedelta(days=14), due_date=DUE)
    for step in (7, 14, 30):
        run_dunning(db, on=DUE + timedelta(days=step), actor=SYSTEM)
    db.commit()
    assert svc.state == ServiceState.BLOCKED
    return customer, svc, inv, email


def case_of(db, customer) -> DebtRecoveryCase:
    return db.scalar(select(DebtRecoveryCase).where(DebtRecoveryCase.customer_id == customer.id))


def paid(db, customer, inv, amount=None, actor=CLERK) -> Payment:
    payment = pay_rules.record_payment(db, amount=amount or inv.gross_total, currency=inv.currency,
                                       received_on=date.today(), actor=actor, customer=customer,
                                       variable_symbol=inv.variable_symbol)
    db.commit()
    return payment


def test_a_payment_that_settles_the_debt_unblocks_when_it_commits(db, outbox):
    customer, svc, inv, email = blocked_customer(db)
    paid(db, customer, inv)
    db.refresh(svc)
    assert svc.state == ServiceState.ACTIVE
    case = case_of(db, customer)
    assert case.state == CaseState.CLOSED and case.closed_on == date.today()
    assert [m["To"] for m in outbox() if m["Subject"] == "Your services are running again"] == [email]
    closed = db.scalar(select(AuditEntry).where(AuditEntry.action == "dunning.case_closed"))
    assert closed.actor_name == CLERK.name  # the payment's actor, not a later run


def test_a_partial_payment_leaves_the_block(db):
    customer, svc, inv, _ = blocked_customer(db)
    paid(db, customer, inv, amount=inv.gross_total / 2)
    db.refresh(svc)
    assert svc.state == ServiceState.BLOCKED and case_of(db, customer).state == CaseState.BLOCKED


def test_a_failure_to_unblock_keeps_the_payment(db, monkeypatch):
    customer, svc, inv, _ = blocked_customer(db)

    def broken(*args, **kwargs):
        raise RuntimeError("mail server on fire")

    monkeypatch.setattr("portal.domain.settlement.close_settled_cases", broken)
    payment = paid(db, customer, inv)
    db.expire_all()
    assert db.get(Payment, payment.id).unallocated == 0
    assert db.get(type(svc), svc.id).state == ServiceState.BLOCKED  # the next dunning run unblocks
    run_dunning(db, on=date.today(), actor=SYSTEM)
    assert db.get(type(svc), svc.id).state == ServiceState.ACTIVE


def test_the_rule_is_the_dunning_runs_rule(db):
    customer, svc, inv, _ = blocked_customer(db)
    inv.paid_amount = inv.gross_total
    db.flush()
    assert settlement.close_settled_cases(db, [customer.id], on=date.today(), actor=SYSTEM) == [case_of(db, customer).id]
    assert svc.state == ServiceState.ACTIVE
    assert settlement.close_settled_cases(db, [customer.id], on=date.today(), actor=SYSTEM) == []


def test_a_statement_line_that_pays_unblocks(db, outbox):
    customer, svc, inv, _ = blocked_customer(db)
    text = ("date;amount;currency;variable_symbol;counterparty_name;message;transaction_id\n"
            f"{date.today().isoformat()};{inv.gross_total};CZK;{inv.variable_symbol};Jana;faktura;S-1\n")
    import_statement(db, "today.csv", text.encode(), actor=CLERK)
    db.commit()
    db.refresh(svc)
    assert svc.state == ServiceState.ACTIVE and case_of(db, customer).state == CaseState.CLOSED


def test_a_payment_rolled_back_leaves_nothing_to_unblock(db):
    customer, svc, inv, _ = blocked_customer(db)
    pay_rules.record_payment(db, amount=inv.gross_total, currency=inv.currency, received_on=date.today(),
                             actor=CLERK, customer=customer, variable_symbol=inv.variable_symbol)
    db.rollback()
    assert "portal.paid_customers" not in db.info
    db.commit()
    db.refresh(svc)
    assert svc.state == ServiceState.BLOCKED
