"""Payments: recording, pairing by variable symbol, credit, staff corrections, credit notes."""
from __future__ import annotations

import random
import threading
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.payments import (
    AllocationNotAllowed,
    CreditNoteNotSettleable,
    InvalidPayment,
    allocate,
    apply_customer_credit,
    assign_customer,
    customer_credit,
    identify_customer,
    invoice_due,
    open_invoices_query,
    pair_payment,
    record_payment,
    settle_credit_note,
    unmatched_payments_query,
    unpair,
)
from portal.models import (
    AuditEntry,
    Currency,
    Invoice,
    InvoiceType,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
)
from tests.domain.payments_fixtures import STAFF, SYSTEM, make_credit_note, make_invoice, money
from tests.factories import CustomerFactory, CustomerServiceFactory

D = Decimal


def pay(db, amount, vs=None, *, on=date(2025, 2, 1), currency="CZK", **kw) -> Payment:
    return record_payment(db, amount=D(str(amount)), currency=currency, received_on=on, variable_symbol=vs,
                          actor=SYSTEM, **kw)


def audit_actions(db, entity_id=None) -> list[str]:
    stmt = select(AuditEntry.action).order_by(AuditEntry.id)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    return list(db.scalars(stmt))


def assert_invariants(db):
    """Σ allocations ≤ amount and = amount − unallocated; paid_amount = Σ allocations."""
    for p in db.scalars(select(Payment)):
        allocated = db.scalar(select(func.coalesce(func.sum(PaymentAllocation.amount), 0))
                              .where(PaymentAllocation.payment_id == p.id))
        assert money(allocated) <= p.amount
        assert money(allocated) == p.amount - p.unallocated
        if p.customer_id is None:
            assert p.state == PaymentState.UNMATCHED
    for inv in db.scalars(select(Invoice).where(Invoice.type != InvoiceType.CREDIT_NOTE)):
        allocated = db.scalar(select(func.coalesce(func.sum(PaymentAllocation.amount), 0))
                              .where(PaymentAllocation.invoice_id == inv.id))
        assert money(allocated) == inv.paid_amount, inv.number


# ---------------------------------------------------------------- recording and validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": D("0")}, "amount"),
        ({"amount": D("-5")}, "amount"),
        ({"amount": D("10.001")}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"variable_symbol": "12AB"}, "variable_symbol"),
        ({"variable_symbol": "12345678901"}, "variable_symbol"),
        ({"constant_symbol": "03080"}, "constant_symbol"),
    ],
)
def test_record_payment_refuses_bad_data_naming_the_field(db, kwargs, field):
    args = {"amount": D("100.00"), "currency": "CZK", "received_on": date(2025, 1, 1), "actor": SYSTEM, **kwargs}
    with pytest.raises(InvalidPayment) as exc:
        record_payment(db, **args)
    assert exc.value.field == field
    assert isinstance(exc.value, DomainError)
    assert db.scalar(select(func.count(Payment.id))) == 0


def test_record_payment_refuses_a_bank_reference_seen_before(db):
    pay(db, 100, source=PaymentSource.CARD, bank_reference="CARD-1")
    with pytest.raises(InvalidPayment) as exc:
        pay(db, 100, source=PaymentSource.CARD, bank_reference="CARD-1")
    assert exc.value.field == "bank_reference"
    pay(db, 100, source=PaymentSource.CASH, bank_reference="CARD-1")  # another source: fine


def test_recorded_payment_is_audited(db):
    p = pay(db, "250.50", "999")
    assert p.state == PaymentState.UNMATCHED and p.unallocated == D("250.50")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "payment.recorded"))
    assert entry.entity_id == p.id and entry.changes["amount"] == "250.50"


# ---------------------------------------------------------------- pairing order


def test_pays_the_invoice_carrying_the_vs_first_then_the_oldest(db):
    c = CustomerFactory()
    older = make_invoice(c, 605, due_date=date(2025, 1, 15))
    newer = make_invoice(c, 605, due_date=date(2025, 2, 15))
    p = pay(db, 1000, newer.variable_symbol, on=date(2025, 2, 10))
    assert p.customer_id == c.id
    assert newer.paid_amount == D("605.00") and newer.paid_at == date(2025, 2, 10)
    assert older.paid_amount == D("395.00") and older.paid_at is None
    assert p.state == PaymentState.MATCHED and p.unallocated == 0
    assert [a.invoice_id for a in p.allocations] == [newer.id, older.id]
    assert_invariants(db)


def test_customer_vs_pays_oldest_open_invoices_by_due_date_then_id(db):
    c = CustomerFactory(variable_symbol="7100001")
    march = make_invoice(c, 300, due_date=date(2025, 3, 15))
    jan_b = make_invoice(c, 200, due_date=date(2025, 1, 15))
    jan_a = make_invoice(c, 100, due_date=date(2025, 1, 15))  # same due date, higher id
    paid = make_invoice(c, 50, due_date=date(2024, 12, 15))
    paid.paid_amount = D("50.00")  # already paid (no allocation needed for this test)
    p = pay(db, 450, "7100001")
    assert jan_b.paid_amount == D("200.00")
    assert jan_a.paid_amount == D("100.00")
    assert march.paid_amount == D("150.00")
    assert [a.invoice_id for a in p.allocations] == [jan_b.id, jan_a.id, march.id]
    assert p.state == PaymentState.MATCHED


def test_service_vs_identifies_the_customer(db):
    svc = CustomerServiceFactory(variable_symbol="8800001")
    inv = make_invoice(svc.customer, 605)
    p = pay(db, 605, "8800001")
    assert p.customer_id == svc.customer_id and inv.paid_at == p.received_on


def test_identification_order_invoice_then_customer_then_service(db):
    a = CustomerFactory()
    b = CustomerFactory(variable_symbol="5550001")
    inv_a = make_invoice(a, 100, variable_symbol="5550001")  # an invoice VS equal to B's customer VS
    assert identify_customer(db, "5550001") == a.id
    c = CustomerFactory(variable_symbol="5550002")
    CustomerServiceFactory(variable_symbol="5550002")  # another customer's service
    assert identify_customer(db, "5550002") == c.id
    svc = CustomerServiceFactory(variable_symbol="5550003")
    assert identify_customer(db, "5550003") == svc.customer_id
    assert identify_customer(db, "5550004") is None
    p = pay(db, 100, "5550001")
    assert p.customer_id == a.id and inv_a.paid_amount == D("100.00")
    assert b.id != a.id


def test_leading_zeros_in_the_vs_do_not_matter(db):
    c = CustomerFactory(variable_symbol="7100002")
    inv = make_invoice(c, 100)
    p = pay(db, 100, "0007100002")
    assert p.customer_id == c.id and inv.paid_amount == D("100.00")


def test_a_vs_of_several_customers_identifies_nobody(db):
    CustomerServiceFactory(variable_symbol="4440001")
    CustomerServiceFactory(variable_symbol="4440001")
    p = pay(db, 100, "4440001")
    assert p.customer_id is None and p.state == PaymentState.UNMATCHED


def test_partial_payment_leaves_the_invoice_open(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    p = pay(db, 200, inv.variable_symbol)
    assert p.state == PaymentState.MATCHED
    assert inv.paid_amount == D("200.00") and inv.paid_at is None
    rows = db.execute(open_invoices_query(c.id)).all()
    assert [(r[0].id, invoice_due(r[0], r[1])) for r in rows] == [(inv.id, D("405.00"))]
    pay(db, 405, inv.variable_symbol, on=date(2025, 2, 20))
    assert inv.paid_amount == D("605.00") and inv.paid_at == date(2025, 2, 20)
    assert db.execute(open_invoices_query(c.id)).all() == []


def test_only_invoices_in_the_payments_currency_are_paid(db):
    c = CustomerFactory(variable_symbol="7100003")
    czk = make_invoice(c, 100)
    p = pay(db, 40, "7100003", currency="EUR")
    assert czk.paid_amount == 0
    assert p.state == PaymentState.OVERPAID and p.unallocated == D("40.00")
    assert customer_credit(db, c.id) == {"EUR": D("40.00")}


# ---------------------------------------------------------------- credit


def test_overpayment_becomes_credit_consumed_by_the_next_invoice(db):
    c = CustomerFactory(variable_symbol="7100004")
    first = make_invoice(c, 605, due_date=date(2025, 1, 15))
    p = pay(db, 1000, first.variable_symbol)
    assert p.state == PaymentState.OVERPAID and p.unallocated == D("395.00")
    assert customer_credit(db, c.id) == {"CZK": D("395.00")}
    second = make_invoice(c, 605, due_date=date(2025, 2, 15), issue_date=date(2025, 2, 1))
    applied = apply_customer_credit(db, c.id, actor=SYSTEM, on=date(2025, 2, 1))
    assert applied == D("395.00")
    assert second.paid_amount == D("395.00") and second.paid_at is None
    assert p.state == PaymentState.MATCHED and p.unallocated == 0
    assert "customer.credit_applied" in audit_actions(db)
    assert apply_customer_credit(db, c.id, actor=SYSTEM, on=date(2025, 2, 1)) == 0
    assert_invariants(db)


def test_credit_fully_pays_a_new_invoice_and_sets_paid_at(db):
    c = CustomerFactory(variable_symbol="7100005")
    pay(db, 300, "7100005", on=date(2025, 1, 5))
    pay(db, 400, "7100005", on=date(2025, 1, 6))
    inv = make_invoice(c, 605, due_date=date(2025, 2, 15), issue_date=date(2025, 2, 1))
    assert apply_customer_credit(db, c.id, actor=SYSTEM, on=date(2025, 2, 1)) == D("605.00")
    assert inv.paid_at == date(2025, 2, 1)
    p1, p2 = db.scalars(select(Payment).order_by(Payment.id)).all()
    assert (p1.state, p1.unallocated) == (PaymentState.MATCHED, 0)  # oldest credit used first
    assert (p2.state, p2.unallocated) == (PaymentState.OVERPAID, D("95.00"))


def test_apply_customer_credit_without_credit_costs_one_query(db, count_queries):
    c = CustomerFactory()
    make_invoice(c, 605)
    db.flush()
    with count_queries() as q:
        assert apply_customer_credit(db, c.id, actor=SYSTEM, on=date(2025, 2, 1)) == 0
    assert q.count == 1


# ---------------------------------------------------------------- the unmatched queue and staff actions


def test_unidentified_payment_waits_in_the_queue_until_staff_assign_it(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    p = pay(db, 605, "123")
    other = pay(db, 50)
    assert p.state == PaymentState.UNMATCHED and p.customer_id is None
    assert list(db.scalars(unmatched_payments_query())) == [p, other]
    assign_customer(db, p, c, actor=STAFF)
    assert p.customer_id == c.id and p.state == PaymentState.MATCHED and inv.paid_amount == D("605.00")
    assert list(db.scalars(unmatched_payments_query())) == [other]
    assert "payment.customer_assigned" in audit_actions(db, p.id)


def test_staff_allocate_an_unmatched_payment_by_hand(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    p = pay(db, 1000)
    allocation = allocate(db, p, inv, D("605.00"), actor=STAFF)
    assert allocation.amount == D("605.00") and allocation.actor_id == STAFF.id
    assert p.customer_id == c.id and inv.paid_amount == D("605.00") and inv.paid_at == p.received_on
    # the rest still waits for staff: partly paired
    assert p.state == PaymentState.PARTIAL and p.unallocated == D("395.00")
    assert p in db.scalars(unmatched_payments_query()).all()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "payment.allocated"))
    assert entry.actor_id == STAFF.id and entry.changes["amount"] == "605.00" and entry.customer_id == c.id
    # staff let the automatic pairing take the rest: no open invoice, so it becomes credit
    pair_payment(db, p, actor=STAFF)
    assert p.state == PaymentState.OVERPAID
    assert_invariants(db)


def test_allocate_refuses_what_the_rules_forbid(db):
    c = CustomerFactory()
    other = CustomerFactory()
    inv = make_invoice(c, 100)
    eur = make_invoice(c, 100, currency=Currency.EUR)
    p = pay(db, 500, customer=other)
    with pytest.raises(AllocationNotAllowed) as exc:
        allocate(db, p, inv, D("50"), actor=STAFF)
    assert exc.value.field == "invoice"
    q = pay(db, 500)
    with pytest.raises(AllocationNotAllowed) as exc:
        allocate(db, q, inv, D("150"), actor=STAFF)  # more than due
    assert exc.value.field == "amount"
    with pytest.raises(AllocationNotAllowed):
        allocate(db, q, eur, D("50"), actor=STAFF)  # another currency
    with pytest.raises(AllocationNotAllowed) as exc:
        allocate(db, pay(db, 10), inv, D("20"), actor=STAFF)  # more than the payment has
    assert exc.value.field == "amount"
    cn = make_credit_note(inv, 10)
    with pytest.raises(AllocationNotAllowed):
        allocate(db, q, cn, D("5"), actor=STAFF)
    assert_invariants(db)


def test_unpair_one_allocation_then_all(db):
    c = CustomerFactory(variable_symbol="7100006")
    a = make_invoice(c, 300, due_date=date(2025, 1, 15))
    b = make_invoice(c, 300, due_date=date(2025, 2, 15))
    p = pay(db, 600, "7100006")
    assert a.paid_at and b.paid_at
    first, second = p.allocations
    unpair(db, p, actor=STAFF, allocation=second)
    assert b.paid_amount == 0 and b.paid_at is None
    assert p.state == PaymentState.PARTIAL and p.unallocated == D("300.00")
    assert [x.id for x in p.allocations] == [first.id]
    unpair(db, p, actor=STAFF)
    assert a.paid_amount == 0 and a.paid_at is None
    assert p.state == PaymentState.UNMATCHED and p.unallocated == D("600.00") and p.allocations == []
    assert p.customer_id == c.id  # still theirs; staff decide
    assert audit_actions(db, p.id).count("payment.unpaired") == 2
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "payment.unpaired")).first()
    assert entry.changes["removed"][0]["invoice"] == b.number
    with pytest.raises(AllocationNotAllowed):
        unpair(db, p, actor=STAFF)
    assert_invariants(db)


def test_unpaired_invoice_can_be_paid_by_another_payment(db):
    c = CustomerFactory()
    inv = make_invoice(c, 100)
    p = pay(db, 100, inv.variable_symbol)
    unpair(db, p, actor=STAFF)
    q = pay(db, 100, inv.variable_symbol)
    assert q.state == PaymentState.MATCHED and inv.paid_amount == D("100.00")
    assert_invariants(db)


def test_assign_customer_refused_while_paired_with_another_customer(db):
    c = CustomerFactory()
    inv = make_invoice(c, 100)
    p = pay(db, 100, inv.variable_symbol)
    with pytest.raises(AllocationNotAllowed):
        assign_customer(db, p, CustomerFactory(), actor=STAFF)


# ---------------------------------------------------------------- credit notes


def test_credit_note_reduces_what_an_unpaid_invoice_asks_for(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    cn = make_credit_note(inv, 105)
    assert settle_credit_note(db, cn, actor=SYSTEM) == 0
    (row,) = db.execute(open_invoices_query(c.id)).all()
    assert invoice_due(row[0], row[1]) == D("500.00")
    p = pay(db, 605, inv.variable_symbol)
    assert inv.paid_amount == D("500.00") and inv.paid_at == p.received_on
    assert p.state == PaymentState.OVERPAID and p.unallocated == D("105.00")
    assert cn.paid_amount == D("105.00")  # the credit note records what it settled
    assert "credit_note.settled" in audit_actions(db, cn.id)
    assert_invariants(db)


def test_full_credit_note_settles_an_unpaid_invoice(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    cn = make_credit_note(inv, 605, issue_date=date(2025, 1, 20))
    settle_credit_note(db, cn, actor=SYSTEM)
    assert db.execute(open_invoices_query(c.id)).all() == []
    assert inv.paid_at == date(2025, 1, 20) and inv.paid_amount == 0


def test_credit_note_on_a_paid_invoice_becomes_credit_used_for_other_invoices(db):
    c = CustomerFactory()
    paid = make_invoice(c, 605, due_date=date(2025, 1, 15))
    p = pay(db, 605, paid.variable_symbol)
    other = make_invoice(c, 605, due_date=date(2025, 2, 15))
    cn = make_credit_note(paid, 205, issue_date=date(2025, 2, 3))
    released = settle_credit_note(db, cn, actor=SYSTEM)
    assert released == D("205.00")
    assert paid.paid_amount == D("400.00") and paid.paid_at is not None  # 605 − 205 covered
    assert other.paid_amount == D("205.00")  # the credit paid the open invoice
    assert p.state == PaymentState.MATCHED and p.unallocated == 0
    assert sorted(a.amount for a in p.allocations) == [D("205.00"), D("400.00")]
    # settling again changes nothing
    assert settle_credit_note(db, cn, actor=SYSTEM) == 0
    assert_invariants(db)


def test_credit_note_on_a_paid_invoice_without_other_debt_stays_credit(db):
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    p = pay(db, 605, inv.variable_symbol)
    cn = make_credit_note(inv, 605)
    assert settle_credit_note(db, cn, actor=SYSTEM) == D("605.00")
    assert inv.paid_amount == 0 and inv.paid_at is not None  # settled by the credit note
    assert p.state == PaymentState.OVERPAID and p.unallocated == D("605.00") and p.allocations == []
    assert customer_credit(db, c.id) == {"CZK": D("605.00")}
    assert_invariants(db)


def test_settle_refuses_what_is_not_a_credit_note(db):
    inv = make_invoice(CustomerFactory(), 100)
    with pytest.raises(CreditNoteNotSettleable):
        settle_credit_note(db, inv, actor=SYSTEM)


# ---------------------------------------------------------------- the invariant under many operations


def test_allocations_never_exceed_payments_under_random_operations(db):
    rng = random.Random(7)
    customers = [CustomerFactory(variable_symbol=f"91000{i}") for i in range(3)]
    invoices = [make_invoice(rng.choice(customers), rng.choice([100, 250, 605, 1210]),
                             due_date=date(2025, 1, 1 + i)) for i in range(12)]
    payments: list[Payment] = []
    for step in range(60):
        action = rng.random()
        if action < 0.45:
            c = rng.choice(customers)
            vs = rng.choice([c.variable_symbol, rng.choice(invoices).variable_symbol, "1"])
            payments.append(pay(db, rng.choice(["50.00", "99.99", "300.00", "605.00", "1500.00"]), vs))
        elif action < 0.6 and payments:
            p = rng.choice(payments)
            if p.allocations:
                unpair(db, p, actor=STAFF, allocation=rng.choice(p.allocations))
        elif action < 0.75 and payments:
            p, inv = rng.choice(payments), rng.choice(invoices)
            try:
                allocate(db, p, inv, D("10.00"), actor=STAFF)
            except AllocationNotAllowed:
                pass
        elif action < 0.85:
            inv = rng.choice(invoices)
            settle_credit_note(db, make_credit_note(inv, "20.00"), actor=SYSTEM)
        else:
            apply_customer_credit(db, rng.choice(customers).id, actor=SYSTEM, on=date(2025, 3, 1))
        if step % 10 == 0:
            assert_invariants(db)
    assert_invariants(db)
    for inv in invoices:
        credited = -sum((cn.gross_total for cn in db.scalars(select(Invoice).where(Invoice.corrects_id == inv.id))),
                        D("0"))
        assert inv.paid_amount <= inv.gross_total - credited


# ---------------------------------------------------------------- concurrency (PostgreSQL)


@pytest.mark.postgres_only
def test_concurrent_pairing_never_pays_an_invoice_twice(db, app):
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    c = CustomerFactory()
    inv = make_invoice(c, 605)
    vs, inv_id = inv.variable_symbol, inv.id
    db.commit()
    engine = db.get_bind()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker():
        try:
            with Session(engine) as s:
                barrier.wait()
                record_payment(s, amount=D("605.00"), currency="CZK", received_on=date(2025, 2, 1),
                               variable_symbol=vs, actor=SYSTEM)
                s.commit()
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    db.expire_all()
    assert db.get(Invoice, inv_id).paid_amount == D("605.00")
    states = sorted(p.state for p in db.scalars(select(Payment)))
    assert states == [PaymentState.MATCHED] + [PaymentState.OVERPAID] * 3
    assert_invariants(db)


def test_overview_figures_count_credit_notes(db):
    from portal.domain.overview import business_overview, customer_overview
    from portal.domain.overview import open_invoices_query as plain_query

    c = CustomerFactory()
    credited = make_invoice(c, 605, due_date=date(2025, 1, 15))
    settle_credit_note(db, make_credit_note(credited, 105), actor=SYSTEM)
    fully = make_invoice(c, 100, due_date=date(2025, 1, 20))
    settle_credit_note(db, make_credit_note(fully, 100), actor=SYSTEM)
    overview = customer_overview(db, c.id, today=date(2025, 2, 1))
    assert overview.open_invoices == [credited]
    assert overview.amount_due == {"CZK": D("500.00")} and overview.overdue == {"CZK": D("500.00")}
    assert list(db.scalars(plain_query(c.id))) == [credited]
    business = business_overview(db, None, today=date(2025, 2, 1))
    assert business.receivables == {"CZK": D("500.00")} and business.overdue == {"CZK": D("500.00")}


# ---------------------------------------------------------------- reversals


def test_reversing_a_paired_payment_reopens_what_it_paid(db):
    """The bank takes a payment back: its allocations go, the invoices are due again, it is
    nobody's credit and waits in no queue, the balance owes again; audited once."""
    from portal.domain.balance import customer_balance
    from portal.domain.payments import reverse_payment

    customer = CustomerFactory(variable_symbol="5550001")
    first = make_invoice(customer, 400, due_date=date(2025, 1, 15))
    second = make_invoice(customer, 300, due_date=date(2025, 2, 15))
    payment = pay(db, 800, "5550001")  # pays both, 100 is credit
    assert payment.state == PaymentState.OVERPAID and first.paid_at and second.paid_at
    assert customer_balance(db, customer.id) == {"CZK": D("-100.00")}
    reverse_payment(db, payment, actor=SYSTEM, reason="bank reversal", reversed_on=date(2025, 2, 3),
                    reference="RVSL-1")
    assert payment.state == PaymentState.REVERSED and payment.unallocated == D("0.00")
    assert (payment.reversed_on, payment.reversed_by_reference) == (date(2025, 2, 3), "RVSL-1")
    assert not payment.allocations
    assert (first.paid_amount, first.paid_at, second.paid_amount, second.paid_at) == (D("0.00"), None, D("0.00"), None)
    assert invoice_due(first) == D("400.00") and invoice_due(second) == D("300.00")
    assert customer_balance(db, customer.id) == {"CZK": D("700.00")}
    assert customer_credit(db, customer.id) == {}
    assert payment not in db.scalars(unmatched_payments_query()).all()
    assert audit_actions(db, payment.id)[-1] == "payment.reversed"
    assert_invariants_except_reversed(db)

    # A reversed payment pays nothing any more and is not reversed twice.
    with pytest.raises(DomainError):
        reverse_payment(db, payment, actor=SYSTEM, reason="again", reversed_on=date(2025, 2, 4))
    with pytest.raises(AllocationNotAllowed):
        allocate(db, payment, first, "100", actor=STAFF)
    with pytest.raises(AllocationNotAllowed):
        pair_payment(db, payment, actor=STAFF)
    with pytest.raises(AllocationNotAllowed):
        assign_customer(db, payment, customer, actor=STAFF)
    assert apply_customer_credit(db, customer.id, actor=SYSTEM, on=date(2025, 2, 5)) == D("0")
    # The next payment pays the reopened invoices as usual.
    pay(db, 400, "5550001", on=date(2025, 2, 10))
    assert first.paid_at == date(2025, 2, 10) and invoice_due(second) == D("300.00")


def assert_invariants_except_reversed(db):
    for p in db.scalars(select(Payment)):
        allocated = sum((a.amount for a in p.allocations), D("0"))
        if p.state == PaymentState.REVERSED:
            assert allocated == 0 and p.unallocated == 0
        else:
            assert allocated == p.amount - p.unallocated
    for inv in db.scalars(select(Invoice)):
        assert inv.paid_amount == sum((a.amount for a in inv.allocations), D("0"))
