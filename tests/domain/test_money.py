"""VAT and rounding helpers (portal/domain/money.py)."""
from decimal import Decimal as D

import pytest

from portal.domain.money import (
    Amounts,
    prorate,
    round_money,
    split_price,
    vat_from_gross,
    vat_from_net,
    vat_recapitulation,
)


@pytest.mark.parametrize("value,expected", [
    ("0.005", "0.01"), ("0.004", "0.00"), ("1.115", "1.12"), ("-0.005", "-0.01"), ("2.675", "2.68"), (3, "3.00"),
])
def test_round_money_half_up(value, expected):
    assert round_money(D(value) if isinstance(value, str) else value) == D(expected)


def test_split_price_including_vat_keeps_gross():
    a = split_price(D("605"), D("21"), includes_vat=True)
    assert a == Amounts(D("500.00"), D("105.00"), D("605.00"))
    b = split_price(D("99.90"), D("12"), includes_vat=True)
    assert b.gross == D("99.90") and b.vat == D("10.70") and b.net + b.vat == b.gross


def test_split_price_excluding_vat_keeps_net():
    a = split_price(D("500"), D("21"), includes_vat=False)
    assert a == Amounts(D("500.00"), D("105.00"), D("605.00"))
    assert split_price(D("10.01"), D("0"), includes_vat=False) == Amounts(D("10.01"), D("0.00"), D("10.01"))


def test_vat_helpers():
    assert vat_from_net(D("0.10"), D("21")) == D("0.02")  # 0.021 → 0.02
    assert vat_from_gross(D("121"), D("21")) == D("21.00")


def test_prorate():
    assert prorate(D("605"), 15, 30) == D("302.50")
    assert prorate(D("605"), 1, 31) == D("19.52")  # 19.516… half-up
    assert prorate(D("605"), 31, 31) == D("605.00")


def _check_sums(recap):
    for a in recap.lines:
        assert a.net + a.vat == a.gross
    total = Amounts(D(0), D(0), D(0))
    for row in recap.rates.values():
        total = total + row
    assert total == recap.total
    s = Amounts(D(0), D(0), D(0))
    for a in recap.lines:
        s = s + a
    assert s == recap.total


def test_recapitulation_mixed_rates_totals_exact():
    lines = [(D("19.52"), D("21"), True), (D("0.33"), D("21"), True), (D("0.33"), D("21"), True),
             (D("99.90"), D("12"), True), (D("10.01"), D("12"), False), (D("50"), D("0"), False),
             (D("-6.05"), D("21"), True)]
    recap = vat_recapitulation(lines)
    _check_sums(recap)
    assert set(recap.rates) == {D("0.00"), D("12.00"), D("21.00")}
    # VAT per rate is computed once on the rate's base, rounded half-up
    gross21 = D("19.52") + D("0.33") + D("0.33") - D("6.05")
    assert recap.rates[D("21.00")].gross == gross21
    assert recap.rates[D("21.00")].vat == vat_from_gross(gross21, D("21"))
    assert recap.rates[D("0.00")] == Amounts(D("50.00"), D("0.00"), D("50.00"))
    # gross-priced lines keep their gross, net-priced lines their net
    assert recap.lines[0].gross == D("19.52")
    assert recap.lines[4].net == D("10.01")


def test_recapitulation_per_rate_differs_from_sum_of_lines():
    # Three lines of 0.10 net at 21 %: per line VAT 0.02 each (0.06), per rate 0.063 → 0.06;
    # seven lines: per line 0.14, per rate 0.147 → 0.15 — the rate's rounding wins.
    recap = vat_recapitulation([(D("0.10"), D("21"), False)] * 7)
    assert recap.rates[D("21.00")].vat == D("0.15")
    assert sum(a.vat for a in recap.lines) == D("0.15")
    _check_sums(recap)


def test_recapitulation_net_only_rate():
    recap = vat_recapitulation([(D("333.33"), D("21"), False), (D("333.33"), D("21"), False)])
    assert recap.rates[D("21.00")] == Amounts(D("666.66"), D("140.00"), D("806.66"))
    _check_sums(recap)


def test_recapitulation_negative_document():
    recap = vat_recapitulation([(D("-605"), D("21"), True), (D("-19.52"), D("21"), True)])
    assert recap.total.gross == D("-624.52")
    _check_sums(recap)


def test_recapitulation_random_documents_always_add_up():
    import random

    rnd = random.Random(7)
    for _ in range(300):
        lines = [(D(rnd.randint(-5000, 200000)) / 100, rnd.choice([D(0), D(10), D(12), D(15), D(21)]),
                  rnd.random() < 0.6) for _ in range(rnd.randint(1, 12))]
        _check_sums(vat_recapitulation(lines))
