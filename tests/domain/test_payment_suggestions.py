"""suggest_matches: which open invoices the staff queue offers for an unmatched payment."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.domain.payments import record_payment, similar_symbols, suggest_matches
from portal.models import Currency
from tests.domain.payments_fixtures import SYSTEM, make_credit_note, make_invoice
from tests.factories import CustomerFactory, LocationFactory


def pay(db, amount, vs=None, customer=None, currency="CZK"):
    return record_payment(db, amount=Decimal(amount), currency=currency, received_on=date(2025, 3, 1), actor=SYSTEM,
                          variable_symbol=vs, customer=customer, pair=False)


def test_similar_symbols():
    s = similar_symbols("2025000101")
    assert "2025000101" in s  # itself
    assert "2025000110" in s  # neighbours swapped
    assert "2025000102" in s  # one digit changed
    assert "205000101" in s  # one left out
    assert "20250000101" not in s  # 11 digits: not a VS
    assert similar_symbols("123") == [] and similar_symbols(None) == [] and similar_symbols("12a4") == []
    assert similar_symbols("0000012345") == similar_symbols("12345")


def test_amount_vs_and_customer_are_scored(db):
    c1, c2 = CustomerFactory(variable_symbol="5550001"), CustomerFactory()
    typo = make_invoice(c1, "605.00", number="2025000101")
    same_amount = make_invoice(c2, "605.00", number="2025000999")
    other = make_invoice(c2, "10.00", number="2025000555")
    make_invoice(c2, "605.00", number="2025000888", currency=Currency.EUR)  # another currency: never
    payment = pay(db, "605.00", vs="2025000110")
    found = suggest_matches(db, payment)
    numbers = [s.invoice.number for s in found]
    assert numbers[0] == typo.number  # amount (3) + similar VS (2)
    assert same_amount.number in numbers and other.number not in numbers
    assert "2025000888" not in numbers
    assert found[0].reasons == ["amount", "similar_variable_symbol"] and found[0].due == Decimal("605.00")


def test_customer_symbol_and_known_customer(db):
    c = CustomerFactory(variable_symbol="7100001")
    inv = make_invoice(c, "300.00")
    by_customer_vs = suggest_matches(db, pay(db, "50.00", vs="7100010"))
    assert [s.invoice.id for s in by_customer_vs] == [inv.id]
    assert by_customer_vs[0].reasons == ["similar_customer_symbol"]
    known = pay(db, "50.00", customer=c)
    assert [s.reasons for s in suggest_matches(db, known)] == [["customer"]]


def test_paid_credited_and_other_locations_are_not_suggested(db):
    a, b = LocationFactory(), LocationFactory()
    ca, cb = CustomerFactory(location=a), CustomerFactory(location=b)
    paid = make_invoice(ca, "100.00")
    paid.paid_amount = Decimal("100.00")
    credited = make_invoice(ca, "100.00")
    make_credit_note(credited, "100.00")
    theirs = make_invoice(cb, "100.00")
    mine = make_invoice(ca, "100.00")
    payment = pay(db, "100.00")
    assert {s.invoice.id for s in suggest_matches(db, payment)} == {theirs.id, mine.id}
    assert [s.invoice.id for s in suggest_matches(db, payment, location_ids={a.id})] == [mine.id]


def test_nothing_left_suggests_nothing(db):
    c = CustomerFactory()
    make_invoice(c, "100.00")
    payment = pay(db, "100.00", customer=c)
    payment.unallocated = Decimal("0")
    assert suggest_matches(db, payment) == []


def test_limit_and_bounded_queries(db, count_queries):
    c = CustomerFactory()
    for _ in range(15):
        make_invoice(c, "100.00")
    payment = pay(db, "100.00", vs="2025999999", customer=c)
    with count_queries() as q:
        found = suggest_matches(db, payment, limit=5)
    assert len(found) == 5 and q.count <= 6
