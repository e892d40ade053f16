"""The billing engine (portal/domain/billing/): periods, charges, runs, invoices, credit
notes and the immutability of issued invoices."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from portal.domain import DomainError
from portal.domain.billing import (
    CancellationRefused,
    CreditNoteRefused,
    InvalidPeriod,
    InvoiceImmutable,
    VariableSymbolClash,
    amount_due,
    billing_period,
    cancel_invoice,
    credited_amount,
    issue_credit_note,
    preview_billing,
    protect_issued_invoices,
    run_billing,
    unprotect_issued_invoices,
    variable_symbol,
)
from portal.models import (
    Aggregation,
    AuditEntry,
    Base,
    BillingRun,
    BillingRunState,
    Charge,
    ChargeKind,
    Currency,
    DiscountKind,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
    Period,
    PriceChange,
    Rounding,
    ServiceState,
)
from tests.domain.billing_fixtures import (  # noqa: F401
    ACTOR,
    World,
    count,
    invoices,
    service_charges,
    world_fixture,
)
from tests.factories import BillingPlanFactory, ServiceGroupFactory

NOV = "2026-11"


@pytest.fixture(autouse=True)
def guard():
    """The immutability guard, as create_app installs it; removed afterwards if this module
    installed it, so other modules' tests see the process as they left it."""
    installed = protect_issued_invoices()
    yield
    if installed:
        unprotect_issued_invoices()
ISSUE = date(2026, 12, 1)


def bill(db, period=NOV, issue_date=ISSUE, **kw):
    return run_billing(db, period, actor=ACTOR, issue_date=issue_date, **kw)


def only_charge(service, kind=ChargeKind.SERVICE):
    charges = service_charges(service.id, kind)
    assert len(charges) == 1, charges
    return charges[0]


def assert_consistent(inv: Invoice):
    """Σ lines = totals; Σ VAT rows = totals; every line net + vat = gross."""
    for ln in inv.lines:
        assert ln.net + ln.vat == ln.gross
    assert sum(ln.net for ln in inv.lines) == inv.net_total
    assert sum(ln.vat for ln in inv.lines) == inv.vat_total
    assert sum(ln.gross for ln in inv.lines) == inv.gross_total
    assert sum(v.net for v in inv.vat_breakdown) == inv.net_total
    assert sum(v.vat for v in inv.vat_breakdown) == inv.vat_total
    assert sum(v.gross for v in inv.vat_breakdown) == inv.gross_total
    assert inv.net_total + inv.vat_total == inv.gross_total


# ---------------------------------------------------------------- periods


def test_billing_period():
    assert billing_period("2026-11") == (date(2026, 11, 1), date(2026, 11, 30))
    assert billing_period("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    assert billing_period("2027-02") == (date(2027, 2, 1), date(2027, 2, 28))
    assert billing_period("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "11/2026", "", "2026", "abcd-ef", None])
def test_billing_period_invalid(text):
    with pytest.raises(InvalidPeriod) as exc:
        billing_period(text)
    assert isinstance(exc.value, DomainError)
    assert exc.value.field == "period"


# ---------------------------------------------------------------- proration


@pytest.mark.parametrize("period,billing_from,billing_to,state,expected", [
    ("2026-11", date(2024, 1, 1), None, ServiceState.ACTIVE, "3100.00"),  # whole month
    ("2026-11", date(2026, 11, 1), None, ServiceState.ACTIVE, "3100.00"),  # starts on the first day
    ("2026-11", date(2026, 11, 30), None, ServiceState.ACTIVE, "103.33"),  # last day: 1/30
    ("2027-01", date(2027, 1, 31), None, ServiceState.ACTIVE, "100.00"),  # 1/31
    ("2027-02", date(2027, 2, 15), None, ServiceState.ACTIVE, "1550.00"),  # 14/28
    ("2028-02", date(2028, 2, 29), None, ServiceState.ACTIVE, "106.90"),  # leap day: 1/29
    ("2028-02", date(2028, 2, 1), date(2028, 2, 15), ServiceState.CANCELLED, "1603.45"),  # 15/29
    ("2026-11", date(2026, 11, 10), date(2026, 11, 19), ServiceState.CANCELLED, "1033.33"),  # same month: 10/30
    ("2026-11", date(2024, 1, 1), date(2026, 11, 1), ServiceState.CANCELLED, "103.33"),  # ends on the first day
    ("2027-04", date(2024, 1, 1), date(2027, 4, 30), ServiceState.CANCELLED, "3100.00"),  # ends on the last day
])
def test_proration_by_days(db, world, period, billing_from, billing_to, state, expected):
    svc = world.service(definition=world.definition(price="3100"), billing_from=billing_from,
                        billing_to=billing_to, state=state)
    db.commit()
    bill(db, period, issue_date=billing_period(period)[1])
    charge = only_charge(svc)
    assert charge.gross == D(expected)
    assert charge.net + charge.vat == charge.gross


def test_net_priced_service_keeps_net(db, world):
    svc = world.service(definition=world.definition(price="1000", includes_vat=False))
    db.commit()
    bill(db)
    c = only_charge(svc)
    assert (c.net, c.vat, c.gross) == (D("1000.00"), D("210.00"), D("1210.00"))


def test_quarterly_charged_in_quarters_first_month(db, world):
    q = world.definition(price="900", period=Period.QUARTERLY)
    old = world.service(definition=q)
    late = world.service(definition=q, billing_from=date(2026, 11, 16))
    db.commit()
    bill(db, "2026-10", issue_date=date(2026, 10, 1))
    c = only_charge(old)
    assert (c.period_start, c.period_end, c.gross) == (date(2026, 10, 1), date(2026, 12, 31), D("900.00"))
    assert service_charges(late.id) == []  # not started yet
    bill(db, "2026-11")
    assert len(service_charges(old.id)) == 1  # Q4 already charged
    c = only_charge(late)  # prorated to the quarter's end: 46 of 92 days
    assert (c.period_start, c.gross) == (date(2026, 10, 1), D("450.00"))
    bill(db, "2026-12", issue_date=date(2026, 12, 31))
    assert len(service_charges(old.id)) == 1 and len(service_charges(late.id)) == 1
    bill(db, "2027-01", issue_date=date(2027, 1, 1))
    assert [c.period_start for c in service_charges(old.id)] == [date(2026, 10, 1), date(2027, 1, 1)]


def test_yearly_charged_in_january_or_prorated_from_start(db, world):
    y = world.definition(price="3650", period=Period.YEARLY, includes_vat=False)
    old = world.service(definition=y)
    mid = world.service(definition=y, billing_from=date(2027, 7, 1))
    db.commit()
    bill(db, "2027-01", issue_date=date(2027, 1, 1))
    c = only_charge(old)
    assert (c.period_start, c.period_end, c.net) == (date(2027, 1, 1), date(2027, 12, 31), D("3650.00"))
    for month in ("2027-02", "2027-06"):
        bill(db, month, issue_date=billing_period(month)[0])
    assert service_charges(mid.id) == []
    bill(db, "2027-07", issue_date=date(2027, 7, 1))
    assert only_charge(mid).net == D("1840.00")  # 184/365 days
    assert len(service_charges(old.id)) == 1


def test_one_off_charged_once(db, world):
    install = world.definition(price="1210", period=Period.ONE_OFF)
    svc = world.service(definition=install, billing_from=date(2026, 11, 20))
    db.commit()
    bill(db, "2026-10", issue_date=date(2026, 10, 31))
    assert service_charges(svc.id, ChargeKind.ONE_OFF) == []
    bill(db)
    c = only_charge(svc, ChargeKind.ONE_OFF)
    assert c.gross == D("1210.00")  # never prorated
    bill(db, "2026-12", issue_date=date(2027, 1, 1))
    assert len(service_charges(svc.id, ChargeKind.ONE_OFF)) == 1


# ---------------------------------------------------------------- states


def test_blocked_service_is_charged(db, world):
    svc = world.service(state=ServiceState.BLOCKED)
    db.commit()
    bill(db)
    assert only_charge(svc).gross == D("605.00")


def test_cancelled_not_charged_after_billing_to(db, world):
    svc = world.service(billing_to=date(2026, 10, 31), state=ServiceState.CANCELLED)
    db.commit()
    bill(db, "2026-10", issue_date=date(2026, 10, 31))
    bill(db)
    bill(db, "2026-12", issue_date=date(2027, 1, 1))
    assert [c.period_start for c in service_charges(svc.id)] == [date(2026, 10, 1)]


def test_ordered_service_not_charged(db, world):
    svc = world.service(state=ServiceState.ORDERED, billing_from=None, activated_on=None)
    db.commit()
    run = bill(db)
    assert service_charges(svc.id) == [] and run.invoices_count == 0


# ---------------------------------------------------------------- prices


def test_price_override(db, world):
    svc = world.service(price_override=D("400"))
    db.commit()
    bill(db)
    assert only_charge(svc).gross == D("400.00")


def test_price_change_from_a_date_never_retroactive(db, world):
    definition = world.definition(price="605")
    db.add(PriceChange(definition_id=definition.id, new_price=D("700"), effective_from=date(2026, 12, 1)))
    db.add(PriceChange(definition_id=definition.id, new_price=D("800"), effective_from=date(2027, 1, 15)))
    svc = world.service(definition=definition)
    db.commit()
    bill(db)
    bill(db, "2026-12", issue_date=date(2026, 12, 31))
    bill(db, "2027-01", issue_date=date(2027, 1, 31))
    bill(db, "2027-02", issue_date=date(2027, 2, 28))
    assert [c.gross for c in service_charges(svc.id)] == [D("605.00"), D("700.00"), D("700.00"), D("800.00")]
    # the November invoice still says 605 after the price changed
    assert invoices(period_start=date(2026, 11, 1))[0].gross_total == D("605.00")


# ---------------------------------------------------------------- discounts


def test_percent_discount_shown_as_negative_charge(db, world):
    svc = world.service()
    d = world.discount(service=svc, kind=DiscountKind.PERCENT, value="10")
    db.commit()
    bill(db)
    disc = only_charge(svc, ChargeKind.DISCOUNT)
    assert disc.discriminator == str(d.id) and disc.gross == D("-60.50")
    inv = invoices()[0]
    assert inv.gross_total == D("544.50") and len(inv.lines) == 2
    assert_consistent(inv)


def test_amount_discount_prorated_by_validity(db, world):
    svc = world.service()
    world.discount(service=svc, kind=DiscountKind.AMOUNT, value="100", valid_from=date(2026, 11, 16))
    world.discount(service=svc, kind=DiscountKind.AMOUNT, value="100", valid_from=date(2025, 1, 1),
                   valid_to=date(2026, 10, 31))  # expired: not applied
    db.commit()
    bill(db)
    assert [c.gross for c in service_charges(svc.id, ChargeKind.DISCOUNT)] == [D("-50.00")]


def test_hidden_discount_folded_into_price(db, world):
    svc = world.service()
    world.discount(service=svc, kind=DiscountKind.PERCENT, value="10", shown=False)
    db.commit()
    bill(db)
    assert only_charge(svc).gross == D("544.50")
    assert service_charges(svc.id, ChargeKind.DISCOUNT) == []


def test_customer_discount_limited_to_group_and_capped(db, world):
    customer = world.customer()
    tv = ServiceGroupFactory(name="TV")
    net_svc = world.service(customer=customer)
    tv_svc = world.service(customer=customer, definition=world.definition(price="200", group=tv))
    world.discount(customer=customer, group=tv, kind=DiscountKind.AMOUNT, value="500")
    db.commit()
    bill(db)
    assert service_charges(net_svc.id, ChargeKind.DISCOUNT) == []
    assert only_charge(tv_svc, ChargeKind.DISCOUNT).gross == D("-200.00")  # never more than the charge


def test_discount_needs_commitment(db, world):
    svc = world.service()
    world.discount(service=svc, min_commitment=12)
    db.commit()
    bill(db)
    assert service_charges(svc.id, ChargeKind.DISCOUNT) == []


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize("aggregation,rounding,step,included,values,expected_steps", [
    (Aggregation.SUM, Rounding.UP, "1", 0, ["1.2", "2.3"], 4),  # 3.5 → 4
    (Aggregation.SUM, Rounding.DOWN, "1", 0, ["1.2", "2.3"], 3),
    (Aggregation.SUM, Rounding.NEAREST, "1", 0, ["1.2", "2.3"], 4),  # 3.5 half-up
    (Aggregation.SUM, Rounding.NEAREST, "1", 0, ["1.2", "2.2"], 3),
    (Aggregation.MAX, Rounding.UP, "10", 0, ["15", "42", "7"], 5),  # 42 → 5 steps of 10
    (Aggregation.LAST, Rounding.UP, "1", 0, ["50", "20", "7"], 7),  # latest reading
    (Aggregation.AVERAGE, Rounding.UP, "1", 0, ["1", "2", "4"], 3),  # 2.33 → 3
    (Aggregation.SUM, Rounding.UP, "1", 5, ["3", "4"], 2),  # 7 − 5 included
    (Aggregation.SUM, Rounding.UP, "1", 10, ["3", "4"], 0),  # within the allowance: no charge
])
def test_usage_aggregation_and_rounding(db, world, aggregation, rounding, step, included, values, expected_steps):
    tracker, item = world.tracker(aggregation=aggregation, rounding=rounding, step=step, included_steps=included,
                                  amount_per_step="2.50", vat="21")
    svc, inst = world.metered_service(tracker)
    for day, v in enumerate(values, start=2):
        world.reading(inst, item, datetime(2026, 11, day, 12), v)
    world.reading(inst, item, datetime(2026, 10, 31, 23, 59), "1000")  # outside the period
    world.reading(inst, item, datetime(2026, 12, 1, 0, 0), "1000")
    db.commit()
    bill(db)
    charges = service_charges(svc.id, ChargeKind.USAGE)
    if expected_steps == 0:
        assert charges == []
        return
    (c,) = charges
    assert c.quantity == expected_steps and c.discriminator == str(item.id)
    assert c.net == D("2.50") * expected_steps and c.vat_rate == D("21.00") and not c.price_includes_vat
    assert (c.period_start, c.period_end) == (date(2026, 11, 1), date(2026, 11, 30))


# ---------------------------------------------------------------- invoices


def test_vat_per_rate_mixed_rates_totals_exact(db, world):
    customer = world.customer()
    for price, vat, inc in [("19.99", "21", True), ("0.33", "21", True), ("0.33", "21", True),
                            ("99.90", "12", True), ("10.01", "12", False), ("50", "0", False),
                            ("333.33", "21", False)]:
        world.service(customer=customer, definition=world.definition(price=price, vat=vat, includes_vat=inc))
    db.commit()
    bill(db)
    (inv,) = invoices()
    assert_consistent(inv)
    assert [v.vat_rate for v in inv.vat_breakdown] == [D("0.00"), D("12.00"), D("21.00")]
    row21 = inv.vat_breakdown[2]
    assert row21.vat == (row21.gross * 21 / 121).quantize(D("0.01"))  # computed once on the rate's base


def test_invoice_fields_and_snapshots(db, world):
    customer = world.customer(kind="company", company_name="ACME s.r.o.", company_id="27074358",
                              vat_id="CZ27074358", first_name=None, last_name=None)
    world.service(customer=customer)
    db.commit()
    run = bill(db)
    (inv,) = invoices()
    assert inv.number == "1FV-2026-000001" and inv.series == "1FV" and inv.sequence == 1 and inv.year == 2026
    assert inv.variable_symbol == "261000001" == variable_symbol("1FV", 2026, 1)
    assert inv.constant_symbol == "0308"
    assert inv.issue_date == ISSUE and inv.due_date == date(2026, 12, 15)
    assert inv.taxable_supply_date == date(2026, 11, 30)
    assert inv.billing_run_id == run.id and inv.state == InvoiceState.ISSUED and inv.type == InvoiceType.INVOICE
    assert inv.customer_name == "ACME s.r.o." and inv.customer_company_id == "27074358"
    assert inv.customer_vat_id == "CZ27074358" and inv.customer_number == customer.customer_number
    assert "Brno" in inv.customer_address
    assert inv.supplier["name"] == "Example Net s.r.o." and inv.supplier["iban"].startswith("CZ")
    assert inv.supplier["vat_id"] == "CZ12345679" and inv.supplier["bank_account"]
    line = inv.lines[0]
    assert line.position == 1 and line.quantity == 1 and line.unit_price == line.net
    charge = db.scalar(select(Charge))
    assert charge.invoice_line_id == line.id and charge.billing_run_id == run.id
    # editing the customer later changes nothing on the invoice
    customer.company_name = "Renamed a.s."
    customer.street = "Jiná 9"
    db.commit()
    db.expire_all()
    assert inv.customer_name == "ACME s.r.o." and "Jiná" not in inv.customer_address


def test_one_invoice_per_customer_and_billing_plan(db, world):
    a, b = world.customer(), world.customer()
    other_plan = BillingPlanFactory(series="FV")
    world.service(customer=a)
    world.service(customer=a)
    world.service(customer=a, billing_plan=other_plan)
    world.service(customer=b)
    db.commit()
    run = bill(db)
    assert run.invoices_count == 3 and run.customers_count == 2 and run.charges_count == 4
    per = {(i.customer_id, i.billing_plan_id): len(i.lines) for i in invoices()}
    assert per == {(a.id, world.plan.id): 2, (a.id, other_plan.id): 1, (b.id, world.plan.id): 1}


def test_gapless_numbering_per_series_and_year(db, world):
    for _ in range(3):
        world.service()
    other = World(prefix="2")
    other.service()
    db.commit()
    bill(db, batch_size=2)
    assert [(i.series, i.sequence) for i in invoices()] == [("1FV", 1), ("1FV", 2), ("1FV", 3), ("2FV", 1)]
    bill(db, "2026-12", issue_date=date(2027, 1, 4))
    later = invoices(year=2027)
    assert sorted((i.series, i.sequence) for i in later) == [("1FV", 1), ("1FV", 2), ("1FV", 3), ("2FV", 1)]
    assert {i.number for i in later} >= {"1FV-2027-000001", "2FV-2027-000001"}


def test_second_run_adds_nothing(db, world):
    for _ in range(3):
        world.service()
    db.commit()
    first = bill(db)
    before = (count(Charge), count(Invoice), count(InvoiceLine))
    second = bill(db)
    assert (first.charges_count, first.invoices_count) == (3, 3)
    assert (second.charges_count, second.invoices_count, second.state) == (0, 0, BillingRunState.DONE)
    assert (count(Charge), count(Invoice), count(InvoiceLine)) == before


def test_run_records_state_totals_progress_and_audit(db, world):
    for _ in range(5):
        world.service()
    db.commit()
    calls = []
    run = bill(db, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert run.state == BillingRunState.DONE and run.finished_at is not None
    assert run.started_by_name == "test" and run.period_end == date(2026, 11, 30)
    assert run.gross_total == D("3025.00") and run.totals_by_currency["CZK"]["gross"] == "3025.00"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "billing.run"))
    assert entry.entity_id == run.id and entry.changes["invoices"] == 5


def test_totals_by_currency(db, world):
    world.service()
    eur = World(prefix="3", currency=Currency.EUR)
    eur.service(definition=eur.definition(price="24.20"))
    db.commit()
    run = bill(db)
    assert run.totals_by_currency["EUR"]["gross"] == "24.20"
    assert run.totals_by_currency["CZK"]["gross"] == "605.00"
    assert {i.currency for i in invoices()} == {Currency.CZK, Currency.EUR}


def test_fees_are_picked_up(db, world):
    svc = world.service()
    db.add(Charge(customer_id=svc.customer_id, customer_service_id=None, period_start=date(2026, 11, 20),
                  period_end=date(2026, 11, 20), kind=ChargeKind.FEE, discriminator="reminder-1",
                  description="Reminder fee", quantity=D(1), unit_price=D(100), vat_rate=D(0), net=D(100),
                  vat=D(0), gross=D(100), currency=Currency.CZK))
    db.add(Charge(customer_id=svc.customer_id, customer_service_id=None, period_start=date(2026, 12, 20),
                  period_end=date(2026, 12, 20), kind=ChargeKind.FEE, discriminator="reminder-2",
                  description="Later fee", quantity=D(1), unit_price=D(100), vat_rate=D(0), net=D(100),
                  vat=D(0), gross=D(100), currency=Currency.CZK))
    db.commit()
    bill(db)
    (inv,) = invoices()
    assert inv.gross_total == D("705.00") and [ln.description for ln in inv.lines][-1] == "Reminder fee"
    assert_consistent(inv)


def test_variable_symbol_clash_refused(db, world):
    world.service()
    other_plan = BillingPlanFactory(series="FZ")  # "1FZ" has the same digits as "1FV"
    world.service(customer=world.customer(billing_plan=other_plan))
    db.commit()
    with pytest.raises(VariableSymbolClash):
        bill(db)
    run = db.scalar(select(BillingRun))
    assert run.state == BillingRunState.FAILED and "VariableSymbolClash" in run.error
    assert count(Invoice) == 0


def test_failed_batch_rolls_back_its_numbers(db, world, monkeypatch):
    import portal.domain.billing.run as billing  # _apply_credit is used where it lives

    for _ in range(4):
        world.service()
    db.commit()
    real, calls = billing._apply_credit, []

    def flaky(session, customer_ids, **kw):
        calls.append(customer_ids)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(session, customer_ids, **kw)

    monkeypatch.setattr(billing, "_apply_credit", flaky)
    with pytest.raises(RuntimeError):
        bill(db, batch_size=2)
    assert [i.sequence for i in invoices()] == [1, 2]  # the first batch stays, the second's numbers are back
    failed = db.scalar(select(BillingRun))
    assert failed.state == BillingRunState.FAILED and failed.invoices_count == 2
    monkeypatch.setattr(billing, "_apply_credit", real)
    again = bill(db, batch_size=2)
    assert again.invoices_count == 2
    assert [i.sequence for i in invoices()] == [1, 2, 3, 4]


# ---------------------------------------------------------------- preview


def _row_counts(db):
    return {t.name: db.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_preview_writes_nothing_and_matches_the_run(db, world):
    customer = world.customer()
    world.service(customer=customer)
    world.service(customer=customer, definition=world.definition(price="99.90", vat="12"))
    world.service()
    db.commit()
    before = _row_counts(db)
    p = preview_billing(db, NOV)
    db.commit()
    assert _row_counts(db) == before
    assert (p.services, p.charges, p.invoices, p.customers) == (3, 3, 2, 2)
    run = bill(db)
    assert p.totals["CZK"]["gross"] == D(run.totals_by_currency["CZK"]["gross"]) == D("1309.90")
    row = next(r for r in p.per_customer if r.customer_id == customer.id)
    assert (row.gross, row.lines, row.number) == (D("704.90"), 2, customer.customer_number)
    after = preview_billing(db, NOV)
    assert (after.charges, after.invoices) == (0, 0)


# ---------------------------------------------------------------- credit notes


@pytest.fixture
def issued(db, world):
    customer = world.customer()
    world.service(customer=customer)
    world.service(customer=customer, definition=world.definition(price="99.90", vat="12"))
    db.commit()
    bill(db)
    return invoices()[0]


def test_full_credit_note(db, issued):
    note = issue_credit_note(db, issued, actor=ACTOR, reason="Wrong tariff", issue_date=date(2026, 12, 10))
    db.commit()
    assert note.type == InvoiceType.CREDIT_NOTE and note.corrects_id == issued.id
    assert note.number == "1FVD-2026-000001" and note.variable_symbol == issued.variable_symbol
    assert note.gross_total == -issued.gross_total and note.net_total == -issued.net_total
    assert all(ln.quantity < 0 and ln.gross < 0 for ln in note.lines)
    assert [ln.corrects_line_id for ln in note.lines] == [ln.id for ln in issued.lines]
    assert_consistent(note)
    assert credited_amount(db, issued) == issued.gross_total
    assert amount_due(db, issued) == 0
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "invoice.credit_note_issued")).entity_id == note.id
    with pytest.raises(CreditNoteRefused):
        issue_credit_note(db, issued, actor=ACTOR, reason="again")


def test_partial_credit_note_and_over_crediting(db, issued):
    first, second = issued.lines
    note = issue_credit_note(db, issued, actor=ACTOR, reason="TV not delivered", line_ids=[second.id])
    db.commit()
    assert [ln.corrects_line_id for ln in note.lines] == [second.id]
    assert note.gross_total == -second.gross
    assert amount_due(db, issued) == first.gross
    with pytest.raises(CreditNoteRefused):
        issue_credit_note(db, issued, actor=ACTOR, reason="again", line_ids=[second.id])
    with pytest.raises(CreditNoteRefused):
        issue_credit_note(db, issued, actor=ACTOR, reason="unknown", line_ids=[999999])
    rest = issue_credit_note(db, issued, actor=ACTOR, reason="the rest")
    assert [ln.corrects_line_id for ln in rest.lines] == [first.id]
    assert rest.sequence == 2
    assert credited_amount(db, issued) == issued.gross_total


def test_credit_note_needs_reason_and_cannot_credit_a_credit_note(db, issued):
    with pytest.raises(CreditNoteRefused) as exc:
        issue_credit_note(db, issued, actor=ACTOR, reason="  ")
    assert exc.value.field == "reason"
    note = issue_credit_note(db, issued, actor=ACTOR, reason="ok")
    with pytest.raises(CreditNoteRefused):
        issue_credit_note(db, note, actor=ACTOR, reason="credit the credit")


def test_cancel_unpaid_invoice(db, issued):
    note = cancel_invoice(db, issued, actor=ACTOR, reason="Customer never ordered")
    db.commit()
    assert issued.state == InvoiceState.CANCELLED
    assert note.gross_total == -issued.gross_total and note.correction_reason == "Customer never ordered"
    assert amount_due(db, issued) == 0
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "invoice.cancelled")).entity_id == issued.id
    with pytest.raises(CancellationRefused):
        cancel_invoice(db, issued, actor=ACTOR, reason="twice")


def test_cancel_paid_invoice_refused(db, issued):
    issued.paid_amount = D("100.00")
    db.commit()
    with pytest.raises(CancellationRefused):
        cancel_invoice(db, issued, actor=ACTOR, reason="too late")
    with pytest.raises(CancellationRefused):
        cancel_invoice(db, issued, actor=ACTOR, reason="")
    assert issued.state == InvoiceState.ISSUED


# ---------------------------------------------------------------- immutability


def test_issued_invoice_totals_and_number_cannot_change(db, issued):
    issued.gross_total = D("1.00")
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()
    issued.number = "X-1"
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()


def test_issued_invoice_lines_and_vat_rows_cannot_change(db, issued):
    issued.lines[0].net = D("1.00")
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()
    issued.vat_breakdown[0].vat = D("0.00")
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()
    db.delete(issued.lines[0])
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()
    db.add(InvoiceLine(invoice_id=issued.id, position=9, description="extra", quantity=D(1), unit_price=D(1),
                       vat_rate=D(0), net=D(1), vat=D(0), gross=D(1)))
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()
    db.delete(db.get(InvoiceVat, issued.vat_breakdown[0].id))
    with pytest.raises(InvoiceImmutable):
        db.flush()
    db.rollback()


def test_payment_fields_may_change(db, issued):
    issued.paid_amount = D("10.00")
    issued.paid_at = date(2026, 12, 5)
    db.commit()
    assert issued.paid_amount == D("10.00")


# ---------------------------------------------------------------- CLI


def test_cli_preview_run_credit_note_cancel(app, db, world):
    for _ in range(3):
        world.service()
    db.commit()
    runner = app.test_cli_runner()
    out = runner.invoke(args=["billing", "preview", "--period", NOV])
    assert out.exit_code == 0, out.output
    assert "Invoices: 3" in out.output and "1 815.00" in out.output
    assert count(Invoice) == 0
    out = runner.invoke(args=["billing", "preview", "--period", "2026-13"])
    assert out.exit_code != 0 and "not a valid month" in out.output
    out = runner.invoke(args=["billing", "run", "--period", NOV, "--issue-date", "2026-12-01"])
    assert out.exit_code == 0, out.output
    assert "Invoices issued: 3" in out.output
    db.expire_all()
    first, second, third = invoices()
    out = runner.invoke(args=["billing", "credit-note", first.number, "--reason", "Goodwill",
                              "--line", str(first.lines[0].id)])
    assert out.exit_code == 0, out.output
    assert "1FVD-" in out.output
    out = runner.invoke(args=["billing", "credit-note", first.number, "--reason", "again"])
    assert out.exit_code != 0 and "already" in out.output
    out = runner.invoke(args=["billing", "cancel", second.number, "--reason", "Duplicate"])
    assert out.exit_code == 0, out.output
    db.expire_all()
    assert db.get(Invoice, second.id).state == InvoiceState.CANCELLED
    out = runner.invoke(args=["billing", "cancel", "NOPE-1", "--reason", "x"])
    assert out.exit_code != 0 and "No invoice" in out.output
