"""Balance and account statement: one query path for both faces, bounded queries."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from portal.domain import DomainError
from portal.domain.balance import customer_balance, customer_statement
from portal.domain.payments import record_payment, settle_credit_note
from portal.models import Currency, InvoiceState
from tests.domain.payments_fixtures import SYSTEM, make_credit_note, make_invoice
from tests.factories import CustomerFactory

D = Decimal


def pay(db, customer, amount, on, currency="CZK", **kw):
    return record_payment(db, amount=D(str(amount)), currency=currency, received_on=on, customer=customer,
                          actor=SYSTEM, **kw)


@pytest.fixture
def history(db):
    """December: invoice 605 (opening debt). January: invoice 605, payment 1000, credit note
    −105 to the January invoice. February: invoice 605 and a EUR invoice 20, payment 300."""
    c = CustomerFactory(variable_symbol="7300001")
    dec = make_invoice(c, 605, issue_date=date(2024, 12, 1), due_date=date(2024, 12, 15))
    jan = make_invoice(c, 605, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 15))
    pay(db, c, 1000, date(2025, 1, 10), counterparty_name="Jana Nováková", message="Internet")
    cn = make_credit_note(jan, 105, issue_date=date(2025, 1, 20), reason="Outage 3 days")
    settle_credit_note(db, cn, actor=SYSTEM)
    feb = make_invoice(c, 605, issue_date=date(2025, 2, 1), due_date=date(2025, 2, 15))
    make_invoice(c, 20, issue_date=date(2025, 2, 1), currency=Currency.EUR)
    pay(db, c, 300, date(2025, 2, 1))
    cancelled = make_invoice(c, 999, issue_date=date(2025, 1, 5))
    make_credit_note(cancelled, 999, issue_date=date(2025, 1, 6))  # cancelling issues a full credit note
    cancelled.state = InvoiceState.CANCELLED
    # someone else's and an unidentified payment do not count
    make_invoice(CustomerFactory(), 500, issue_date=date(2025, 1, 1))
    record_payment(db, amount=D("77"), currency="CZK", received_on=date(2025, 1, 10), actor=SYSTEM)
    db.flush()
    return {"customer": c, "dec": dec, "jan": jan, "cn": cn, "feb": feb}


def test_balance_is_invoices_minus_credit_notes_minus_payments(db, history):
    c = history["customer"]
    # 605 + 605 − 105 + 605 − 1000 − 300 = 410 CZK; 20 EUR
    assert customer_balance(db, c.id) == {"CZK": D("410.00"), "EUR": D("20.00")}
    assert customer_balance(db, c.id, as_of=date(2024, 12, 31)) == {"CZK": D("605.00")}
    assert customer_balance(db, c.id, as_of=date(2025, 1, 31)) == {"CZK": D("105.00")}
    assert customer_balance(db, c.id, as_of=date(2024, 11, 30)) == {}


def test_negative_balance_is_credit(db):
    c = CustomerFactory()
    make_invoice(c, 100, issue_date=date(2025, 1, 1))
    pay(db, c, 150, date(2025, 1, 2))
    assert customer_balance(db, c.id) == {"CZK": D("-50.00")}


def test_statement_opening_entries_running_balance_and_closing(db, history):
    c = history["customer"]
    st = customer_statement(db, c.id, date(2025, 1, 1), date(2025, 1, 31))
    assert st.opening == {"CZK": D("605.00")}
    assert [(e.on, e.kind, e.debit, e.credit, e.balance) for e in st.entries] == [
        (date(2025, 1, 1), "invoice", D("605.00"), D("0.00"), D("1210.00")),
        (date(2025, 1, 10), "payment", D("0.00"), D("1000.00"), D("210.00")),
        (date(2025, 1, 20), "credit_note", D("0.00"), D("105.00"), D("105.00")),
    ]
    invoice, payment, credit_note = st.entries
    assert invoice.reference == history["jan"].number and invoice.due_date == date(2025, 1, 15)
    assert payment.reference == f"#{payment.payment_id}"  # recorded without a VS
    assert "Jana Nováková" in payment.description and "Internet" in payment.description
    assert history["jan"].number in credit_note.description and "Outage" in credit_note.description
    assert st.debit_total == {"CZK": D("605.00")} and st.credit_total == {"CZK": D("1105.00")}
    assert st.closing == {"CZK": D("105.00")}
    assert st.closing == customer_balance(db, c.id, as_of=date(2025, 1, 31))


def test_statement_over_several_currencies(db, history):
    c = history["customer"]
    st = customer_statement(db, c.id, date(2025, 2, 1), date(2025, 2, 28))
    assert st.currencies == ["CZK", "EUR"]
    assert st.opening == {"CZK": D("105.00"), "EUR": D("0.00")}
    # on one day, documents come before payments
    assert [e.kind for e in st.entries_in("CZK")] == ["invoice", "payment"]
    assert [e.balance for e in st.entries_in("CZK")] == [D("710.00"), D("410.00")]
    assert [e.balance for e in st.entries_in("EUR")] == [D("20.00")]
    assert st.closing == customer_balance(db, c.id)
    for cur in st.currencies:
        assert st.closing[cur] == st.opening[cur] + st.debit_total[cur] - st.credit_total[cur]


def test_statement_refuses_a_reversed_period(db):
    with pytest.raises(DomainError) as exc:
        customer_statement(db, 1, date(2025, 2, 1), date(2025, 1, 1))
    assert exc.value.field == "start"


@pytest.mark.parametrize("months", [1, 12])
def test_statement_and_balance_use_a_fixed_number_of_queries(db, count_queries, months):
    c = CustomerFactory()
    start = date(2024, 1, 1)
    for m in range(months):
        day = start + timedelta(days=31 * m)
        inv = make_invoice(c, 605, issue_date=day, due_date=day + timedelta(days=14))
        pay(db, c, 605, day + timedelta(days=3))
        if m % 3 == 0:
            make_credit_note(inv, 5, issue_date=day + timedelta(days=5))
    db.flush()
    customer_id = c.id
    db.expire_all()
    with count_queries() as q:
        st = customer_statement(db, customer_id, date(2024, 1, 1), date(2025, 12, 31))
        _ = [(e.description, e.reference, e.balance) for e in st.entries]
    assert q.count == 4, q.statements
    assert len(st.entries) == months * 2 + (months + 2) // 3
    with count_queries() as q:
        customer_balance(db, customer_id)
    assert q.count == 2


def test_statement_lines_are_worded_in_the_language_asked_for():
    from portal.domain.balance import StatementEntry, describe_entry

    zero = Decimal("0.00")
    note = StatementEntry(date(2026, 2, 1), "credit_note", "2026-000105", "", "CZK", zero, zero, zero,
                          parts={"corrected": "2026-000101", "reason": "Outage 3 days"})
    advance = StatementEntry(date(2026, 2, 1), "invoice", "Z2026-000001", "", "CZK", zero, zero, zero,
                             parts={"advance": True, "period": None})
    card = StatementEntry(date(2026, 2, 1), "payment", "123", "", "CZK", zero, zero, zero,
                          parts={"source": "Card payment", "details": "Jana Nováková"})
    assert describe_entry(note) == "Credit note 2026-000105 to invoice 2026-000101: Outage 3 days"
    assert describe_entry(advance) == "Advance invoice Z2026-000001"
    monthly = StatementEntry(date(2026, 4, 1), "invoice", "FV2026-1", "", "CZK", zero, zero, zero,
                             parts={"advance": False, "period": (date(2026, 4, 1), date(2026, 4, 30))})
    assert describe_entry(monthly) == "Invoice FV2026-1 for 01.04.2026–30.04.2026"
    assert describe_entry(card) == "Card payment: Jana Nováková"

    def shouting(message, **variables):
        return (message % variables if variables else message).upper()

    # The reason and the payer's details are the customer's words: never translated.
    assert describe_entry(note, shouting) == "CREDIT NOTE 2026-000105 TO INVOICE 2026-000101: Outage 3 days"
    assert describe_entry(card, shouting) == "CARD PAYMENT: Jana Nováková"
    # Entries made without parts keep their own text.
    plain = StatementEntry(date(2026, 2, 1), "payment", "1", "Manual", "CZK", zero, zero, zero)
    assert describe_entry(plain, shouting) == "Manual"
