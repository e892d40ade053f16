"""Money: rounding, net/VAT/gross from a price, and the VAT recapitulation of a document.

The rules:

- Amounts are Decimals rounded to the cent, half-up (0.005 → 0.01, −0.005 → −0.01).
- A price either includes VAT (consumer tariffs: the gross is what the customer was promised
  and stays fixed; VAT = gross × rate / (100 + rate)) or excludes it (business tariffs,
  usage: the net stays fixed; VAT = net × rate / 100).
- An invoice's VAT is computed **per rate** over its lines (the recapitulation), not summed
  from per-line roundings; the line amounts are then derived from it so that Σ lines = the
  rate's row and Σ rate rows = the invoice totals, exactly (see `vat_recapitulation`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)


def to_decimal(value) -> Decimal:
    """A Decimal from a Decimal, int, str or float (floats via their shortest repr, which is
    what SQLite hands back for NUMERIC sums)."""
    if isinstance(value, Decimal):
        return value
    if value is None:
        return ZERO
    return Decimal(str(value))


def round_money(value) -> Decimal:
    """Round to the cent, half away from zero ("half-up" as accountants say it)."""
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def rate_key(rate) -> Decimal:
    """A VAT rate normalised to two decimals, so 21 and 21.00 are one recapitulation row."""
    return to_decimal(rate).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Amounts:
    net: Decimal
    vat: Decimal
    gross: Decimal

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.net + other.net, self.vat + other.vat, self.gross + other.gross)

    def __neg__(self) -> Amounts:
        return Amounts(-self.net, -self.vat, -self.gross)

    @classmethod
    def zero(cls) -> Amounts:
        return cls(ZERO, ZERO, ZERO)


def vat_from_net(net, rate) -> Decimal:
    """VAT on a net amount: net × rate / 100, rounded half-up."""
    return round_money(to_decimal(net) * to_decimal(rate) / HUNDRED)


def vat_from_gross(gross, rate) -> Decimal:
    """VAT contained in a gross amount: gross × rate / (100 + rate), rounded half-up."""
    rate = to_decimal(rate)
    return round_money(to_decimal(gross) * rate / (HUNDRED + rate))


def split_price(amount, vat_rate, *, includes_vat: bool) -> Amounts:
    """Net, VAT and gross of one amount. A price including VAT keeps its gross (rounded to
    the cent) and VAT is taken out of it; a price excluding VAT keeps its net and VAT is
    added on top."""
    amount = round_money(amount)
    if includes_vat:
        vat = vat_from_gross(amount, vat_rate)
        return Amounts(amount - vat, vat, amount)
    vat = vat_from_net(amount, vat_rate)
    return Amounts(amount, vat, amount + vat)


def net_from_price(amount, vat_rate, *, includes_vat: bool) -> Decimal:
    return split_price(amount, vat_rate, includes_vat=includes_vat).net


def gross_from_price(amount, vat_rate, *, includes_vat: bool) -> Decimal:
    return split_price(amount, vat_rate, includes_vat=includes_vat).gross


def prorate(amount, days: int, period_days: int) -> Decimal:
    """amount × days / period_days, rounded to the cent half-up (a whole period is the
    amount itself, to the cent)."""
    if days >= period_days:
        return round_money(amount)
    return round_money(to_decimal(amount) * days / period_days)


@dataclass(frozen=True)
class Recapitulation:
    lines: list[Amounts]  # in the order of the input
    rates: dict[Decimal, Amounts]  # rate → row, ascending by rate
    total: Amounts


def _distribute(target: Decimal, exact: list[Decimal]) -> list[Decimal]:
    """Cents of `target` shared out in proportion to `exact` (largest remainder): each
    share is its exact value rounded half-up, then the few cents that the roundings missed
    go one by one to the shares whose rounding lost the most."""
    shares = [round_money(e) for e in exact]
    diff = target - sum(shares, ZERO)
    if not shares or diff == 0:
        return shares
    step = CENT if diff > 0 else -CENT
    # Sort by how much the rounding took away (for +) or added (for −).
    order = sorted(range(len(shares)), key=lambda i: (exact[i] - shares[i]) * (1 if diff > 0 else -1), reverse=True)
    i = 0
    while diff != 0:
        shares[order[i % len(order)]] += step
        diff -= step
        i += 1
    return shares


def vat_recapitulation(lines: Iterable[tuple]) -> Recapitulation:
    """VAT per rate over a document's lines, and the line amounts that add up to it.

    Each input line is `(amount, vat_rate, includes_vat)`: the amount is the line's fixed
    side — its gross when the price includes VAT, its net otherwise (negative for discounts
    and credits). Per rate:

    - only net-priced lines: base = Σ nets; VAT = base × rate / 100 rounded half-up once;
      gross = base + VAT.
    - any gross-priced line: the net-priced lines are first turned into gross (their own
      VAT rounded half-up), then VAT = Σ gross × rate / (100 + rate) rounded half-up once
      (the Czech "coefficient" method); net = gross − VAT.

    The rate's VAT is then shared among its lines by largest remainder (`_distribute`), so
    a gross-priced line keeps the gross the customer was promised and a net-priced line
    keeps its net; only the other side moves, by at most a cent or two. By construction
    Σ line net/vat/gross = the rate row and Σ rate rows = the total, exactly.
    """
    items = [(round_money(a), rate_key(r), bool(inc)) for a, r, inc in lines]
    if len(items) == 1:  # the common single-line invoice: the same result, quicker
        amount, rate, inc = items[0]
        one = split_price(amount, rate, includes_vat=inc)
        return Recapitulation([one], {rate: one}, one)
    result: list[Amounts | None] = [None] * len(items)
    rows: dict[Decimal, Amounts] = {}
    for rate in sorted({r for _, r, _ in items}):
        idx = [i for i, (_, r, _) in enumerate(items) if r == rate]
        net_idx = [i for i in idx if not items[i][2]]
        gross_idx = [i for i in idx if items[i][2]]
        if not gross_idx:
            base = sum((items[i][0] for i in idx), ZERO)
            vat = vat_from_net(base, rate)
            shares = _distribute(vat, [items[i][0] * rate / HUNDRED for i in idx])
            for i, v in zip(idx, shares, strict=True):
                result[i] = Amounts(items[i][0], v, items[i][0] + v)
        else:
            fixed_vat = {i: vat_from_net(items[i][0], rate) for i in net_idx}
            for i in net_idx:
                result[i] = Amounts(items[i][0], fixed_vat[i], items[i][0] + fixed_vat[i])
            gross = sum((items[i][0] for i in gross_idx), ZERO) + sum(
                (items[i][0] + fixed_vat[i] for i in net_idx), ZERO
            )
            vat = vat_from_gross(gross, rate)
            rest = vat - sum(fixed_vat.values(), ZERO)
            coef = rate / (HUNDRED + rate)
            shares = _distribute(rest, [items[i][0] * coef for i in gross_idx])
            for i, v in zip(gross_idx, shares, strict=True):
                result[i] = Amounts(items[i][0] - v, v, items[i][0])
        row = Amounts.zero()
        for i in idx:
            row = row + result[i]
        rows[rate] = row
    total = Amounts.zero()
    for row in rows.values():
        total = total + row
    return Recapitulation([r for r in result if r is not None], rows, total)
