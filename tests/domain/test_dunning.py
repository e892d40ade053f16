"""Dunning (portal/domain/dunning.py; domain.md §3 "Dunning run", §5 the unblock invariant).
Invoices are made directly as rows and "paid" by setting paid_amount."""
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain import DomainError
from portal.domain import lifecycle as lc
from portal.domain.dunning import (
    billing_email,
    exempt_from_blocking,
    postpone_blocking,
    revoke_exception,
    run_dunning,
)
from portal.models import (
    AuditEntry,
    CaseState,
    Charge,
    ChargeKind,
    ContactPurpose,
    DebtRecoveryCase,
    InvoiceType,
    OutboundEmail,
    Reminder,
    ReminderLevel,
    ServiceEvent,
    ServiceState,
)
from tests.domain.lifecycle_fixtures import (
    SYSTEM,
    customer_with_email,
    default_ladder,
    invoice,
    pay,
    service,
)
from tests.factories import (
    BillingPlanFactory,
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
)

D = date(2025, 1, 15)  # the due date most tests use


def days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def run(db, on, **kwargs):
    return run_dunning(db, on=on, actor=SYSTEM, **kwargs)


def run_daily(db, start, end):
    for d in days(start, end):
        run(db, d)


def climb(db, on, **kwargs):
    """Runs on the days the default ladder's levels come (7, 14 days overdue), then on `on`:
    dunning climbs one level per run, so a debt reaches level 3 through 1 and 2."""
    for step in (7, 14):
        if D + timedelta(days=step) < on:
            run(db, D + timedelta(days=step))
    return run(db, on, **kwargs)


def reminders(db, customer):
    return db.scalars(select(Reminder).where(Reminder.customer_id == customer.id).order_by(Reminder.id)).all()


def case_of(db, customer):
    return db.scalar(select(DebtRecoveryCase).where(DebtRecoveryCase.customer_id == customer.id)
                     .order_by(DebtRecoveryCase.id.desc()))


def overdue_customer(db, *, plan=None, services=1, gross="605.00"):
    kwargs = {"billing_plan": plan} if plan else {}
    customer, email = customer_with_email(**kwargs)
    svcs = [service(customer) for _ in range(services)]
    inv = invoice(customer, issue_date=D - timedelta(days=14), due_date=D, gross=gross)
    return customer, svcs, inv, email


# -- a simulated year ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_simulated_year(db, outbox):
    """Five customers over 2025: invoices on the 1st, due on the 15th, dunning every day."""
    default_ladder()
    people = {}
    for name in ("punctual", "late10", "late20", "stopper", "never"):
        customer, email = customer_with_email()
        people[name] = (customer, service(customer), email)
    to_pay: dict[date, list] = {}

    def schedule(inv, on):
        to_pay.setdefault(on, []).append(inv)

    unpaid_stopper = []
    for day in days(date(2025, 1, 1), date(2025, 12, 31)):
        if day.day == 1:
            for name, (customer, _, _) in people.items():
                inv = invoice(customer, issue_date=day, due_date=day.replace(day=15))
                due = inv.due_date
                if name == "punctual":
                    schedule(inv, due)
                elif name == "late10":
                    schedule(inv, due + timedelta(days=10))
                elif name == "late20":
                    schedule(inv, due + timedelta(days=20))
                elif name == "stopper":
                    # stops paying in June and July, pays everything on 5 August
                    if day.month in (6, 7, 8):
                        unpaid_stopper.append(inv)
                    else:
                        schedule(inv, due)
                elif name == "never" and day.month < 10:
                    schedule(inv, due)
        if day == date(2025, 8, 5):
            for inv in unpaid_stopper:
                schedule(inv, day)
        for inv in to_pay.pop(day, []):
            pay(inv, day)
        run(db, day)

    def levels(name):
        return [r.level for r in reminders(db, people[name][0])]

    assert levels("punctual") == []
    assert levels("late10") == [1] * 12
    assert levels("late20") == [1, 2] * 12
    assert levels("stopper") == [1, 2, 3]
    assert levels("never") == [1, 2, 3]  # never twice per level, even with more invoices overdue

    # Reminders reach their levels at 7, 14 and 30 days overdue.
    never = reminders(db, people["never"][0])
    assert [r.issued_on for r in never] == [date(2025, 10, 22), date(2025, 10, 29), date(2025, 11, 14)]
    assert never[0].block_on == date(2025, 11, 14) and never[0].pay_by == date(2025, 10, 29)
    assert never[2].amount_due == Decimal("605.00")  # October's; November's is due on the 15th
    assert len(never[2].invoices) == 1

    # Level 2 costs a 100 CZK fee: a charge per reminder, waiting for the next invoice.
    fees = db.scalars(select(Charge).where(Charge.kind == ChargeKind.FEE)).all()
    assert len(fees) == 12 + 1 + 1
    assert all(f.gross == Decimal("100.00") and f.vat == 0 and f.customer_service_id is None for f in fees)
    assert {f.discriminator for f in fees} == {f"reminder:{r.id}" for r in db.scalars(select(Reminder))
                                              if r.level == 2}
    assert all(r.fee_charge_id for r in db.scalars(select(Reminder).where(Reminder.level == 2)))

    # The stopper was blocked at 30 days, then unblocked by the run after paying.
    stopper, stopper_service, stopper_email = people["stopper"]
    assert stopper_service.state == ServiceState.ACTIVE
    kinds = [(e.kind.value, e.effective_on) for e in stopper_service.events]
    assert kinds == [("blocked", date(2025, 7, 15)), ("unblocked", date(2025, 8, 5))]
    case = case_of(db, stopper)
    assert case.state == CaseState.CLOSED and case.blocked_on == date(2025, 7, 15)
    assert case.closed_on == date(2025, 8, 5) and case.level == 3
    assert all(e.debt_recovery_case_id == case.id for e in stopper_service.events)

    # The one who never pays again stays blocked.
    never_customer, never_service, never_email = people["never"]
    assert never_service.state == ServiceState.BLOCKED
    assert case_of(db, never_customer).state == CaseState.BLOCKED

    # late10: a case per month, each closed when paid; late20's December case is still open.
    late10_cases = db.scalars(select(DebtRecoveryCase).where(DebtRecoveryCase.customer_id == people["late10"][0].id)).all()
    assert len(late10_cases) == 12 and all(c.state == CaseState.CLOSED for c in late10_cases)
    assert case_of(db, people["late20"][0]).state == CaseState.REMINDED
    assert people["late20"][1].state == ServiceState.ACTIVE

    # E-mails: 42 reminders, 2 blocks, 1 unblock, each to the billing contact.
    mails = outbox()
    assert len(mails) == 12 + 24 + 3 + 3 + 2 + 1
    subjects = [m["Subject"] for m in mails]
    assert subjects.count("Payment reminder") == 42
    blocked = [m for m in mails if m["Subject"] == "Your services have been blocked"]
    assert sorted(m["To"] for m in blocked) == sorted([stopper_email, never_email])
    unblocked = [m for m in mails if m["Subject"] == "Your services are running again"]
    assert [m["To"] for m in unblocked] == [stopper_email]
    first = next(m for m in mails if m["To"] == never_email)
    assert never[0].invoices[0].number in first.text and "Oct 29, 2025" in first.text  # e-mails: the page date style

    # Every run wrote its audit entry; every reminder, block and unblock too.
    assert db.scalar(select(func.count()).where(AuditEntry.action == "dunning.run")) == 365
    assert db.scalar(select(func.count()).where(AuditEntry.action == "dunning.reminder_issued")) == 42
    assert db.scalar(select(func.count()).where(AuditEntry.action == "service.blocked")) == 2
    assert db.scalar(select(func.count()).where(AuditEntry.action == "service.unblocked")) == 1


# -- levels, reminders ------------------------------------------------------------------------------------

def test_levels_at_7_14_30_days_with_one_reminder_each(db):
    default_ladder()
    customer, (svc,), inv, _ = overdue_customer(db)
    result = run(db, D + timedelta(days=6))
    assert result.customers_considered == 1 and result.reminders == 0
    assert case_of(db, customer) is None
    r = run(db, D + timedelta(days=7))
    assert r.reminders_by_level == {1: 1}
    run(db, D + timedelta(days=8))
    r = run(db, D + timedelta(days=14))
    assert r.reminders_by_level == {2: 1} and r.fees_charged == 1 and r.fees_total == {"CZK": Decimal("100.00")}
    r = run(db, D + timedelta(days=30))
    assert r.reminders_by_level == {3: 1} and r.blocked_services == 1 and r.cases_blocked == 1
    r = run(db, D + timedelta(days=31))
    assert r.reminders == 0 and r.blocked_services == 0
    assert [x.level for x in reminders(db, customer)] == [1, 2, 3]
    assert svc.state == ServiceState.BLOCKED
    second = reminders(db, customer)[1]
    assert second.fee == Decimal("100.00") and second.block_on == D + timedelta(days=30)
    assert second.pay_by == D + timedelta(days=21) and second.sent_at is not None


def test_a_late_first_run_starts_at_level_1(db):
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    r = run(db, D + timedelta(days=20))
    assert r.reminders_by_level == {1: 1}
    assert [x.level for x in reminders(db, customer)] == [1]


def test_a_very_old_debt_climbs_one_level_per_interval_before_blocking(db):
    """Level 1 first, level 2 only once level 1 is 7 days old (14 − 7), level 3 — the blocking
    one — only once level 2 is 16 days old (30 − 14); daily runs in between add nothing."""
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    start = D + timedelta(days=200)
    r = run(db, start)
    assert r.reminders_by_level == {1: 1} and r.blocked_services == 0 and r.cases_blocked == 0
    first = reminders(db, customer)[0]
    assert first.block_on == start + timedelta(days=7 + 16)
    for d in days(start + timedelta(days=1), start + timedelta(days=6)):
        r = run(db, d)
        assert r.reminders == 0 and r.blocked_services == 0
    r = run(db, start + timedelta(days=7))
    assert r.reminders_by_level == {2: 1} and r.blocked_services == 0
    assert reminders(db, customer)[1].block_on == start + timedelta(days=7 + 16)
    for d in days(start + timedelta(days=8), start + timedelta(days=22)):
        r = run(db, d)
        assert r.reminders == 0 and r.blocked_services == 0
    assert svc.state == ServiceState.ACTIVE
    r = run(db, start + timedelta(days=23))
    assert r.reminders_by_level == {3: 1} and r.blocked_services == 1
    assert svc.state == ServiceState.BLOCKED
    assert [(x.level, x.issued_on) for x in reminders(db, customer)] == [
        (1, start), (2, start + timedelta(days=7)), (3, start + timedelta(days=23))]


def test_many_old_debts_get_level_1_first_and_nobody_is_blocked(db):
    """The reported run: every customer far past level 3 on the first run."""
    default_ladder()
    people = [overdue_customer(db) for _ in range(3)]
    dry = run(db, D + timedelta(days=400), dry_run=True)
    assert dry.reminders_by_level == {1: 3} and dry.blocked_services == 0
    r = run(db, D + timedelta(days=400))
    assert r.reminders_by_level == {1: 3} and r.blocked_services == 0 and r.cases_blocked == 0
    r = run(db, D + timedelta(days=401))
    assert r.reminders == 0
    assert all(svc.state == ServiceState.ACTIVE for _, (svc,), _, _ in people)


def test_a_ladder_with_a_later_first_level_starts_there(db):
    plan = BillingPlanFactory()
    db.add_all([ReminderLevel(billing_plan_id=plan.id, level=2, days_overdue=10, blocks=False),
                ReminderLevel(billing_plan_id=plan.id, level=5, days_overdue=20, blocks=True)])
    db.flush()
    customer, (svc,), _, _ = overdue_customer(db, plan=plan)
    assert run(db, D + timedelta(days=90)).reminders_by_level == {2: 1}
    assert run(db, D + timedelta(days=99)).reminders == 0
    r = run(db, D + timedelta(days=100))
    assert r.reminders_by_level == {5: 1} and r.blocked_services == 1


def test_the_plan_ladder_wins_over_the_default(db):
    default_ladder()
    plan = BillingPlanFactory()
    db.add(ReminderLevel(billing_plan_id=plan.id, level=1, days_overdue=3, fee=Decimal("50.00"), blocks=True))
    db.flush()
    special, (svc,), _, _ = overdue_customer(db, plan=plan)
    ordinary, (other,), _, _ = overdue_customer(db)
    r = run(db, D + timedelta(days=3))
    assert r.reminders_by_level == {1: 1} and r.blocked_services == 1
    assert svc.state == ServiceState.BLOCKED and other.state == ServiceState.ACTIVE
    assert reminders(db, special)[0].fee == Decimal("50.00")
    assert reminders(db, ordinary) == []


def test_credit_notes_and_paid_invoices_are_not_overdue(db):
    default_ladder()
    customer, _ = customer_with_email()
    paid = invoice(customer, issue_date=D - timedelta(days=14), due_date=D)
    pay(paid, D)
    r = run(db, D + timedelta(days=40))
    assert r.customers_considered == 0 and r.reminders == 0


def test_an_invoice_settled_by_a_credit_note_is_not_overdue(db):
    payments = pytest.importorskip("portal.domain.payments")
    if not hasattr(payments, "credited_expr"):
        pytest.skip("credit-note settlement not in the payment rules")
    default_ladder()
    customer, _ = customer_with_email()
    inv = invoice(customer, issue_date=D - timedelta(days=14), due_date=D)
    invoice(customer, issue_date=D, due_date=D, gross="-605.00", type=InvoiceType.CREDIT_NOTE, corrects=inv)
    r = run(db, D + timedelta(days=40))
    assert r.reminders == 0


# -- blocking and unblocking ----------------------------------------------------------------------------------

def test_payment_unblocks_only_what_dunning_blocked(db, outbox):
    default_ladder()
    customer, (svc, staff_blocked), inv, email = overdue_customer(db, services=2)
    lc.block(db, staff_blocked, actor=SYSTEM, on=date(2025, 1, 2), reason="router stolen", today=date(2025, 1, 2))
    cancelled = service(customer, ServiceState.CANCELLED)
    r = climb(db, D + timedelta(days=30))
    assert r.blocked_services == 1
    assert svc.state == ServiceState.BLOCKED and cancelled.state == ServiceState.CANCELLED
    case = case_of(db, customer)
    assert case.state == CaseState.BLOCKED and case.blocked_on == D + timedelta(days=30)
    assert svc.events[-1].debt_recovery_case_id == case.id
    assert staff_blocked.events[-1].debt_recovery_case_id is None

    pay(inv, D + timedelta(days=33))
    r = run(db, D + timedelta(days=33))
    assert r.unblocked_services == 1 and r.cases_closed == 1
    assert svc.state == ServiceState.ACTIVE
    assert staff_blocked.state == ServiceState.BLOCKED  # staff's own block stays
    assert case.state == CaseState.CLOSED and case.closed_on == D + timedelta(days=33)
    unblocked = [m for m in outbox() if m["Subject"] == "Your services are running again"]
    assert len(unblocked) == 1 and unblocked[0]["To"] == email
    assert svc.definition.customer_name in unblocked[0].text
    assert staff_blocked.definition.customer_name not in unblocked[0].text


def test_a_service_staff_reblocked_is_not_unblocked_by_dunning(db):
    default_ladder()
    customer, (svc,), inv, _ = overdue_customer(db)
    climb(db, D + timedelta(days=30))
    lc.unblock(db, svc, actor=SYSTEM, on=D + timedelta(days=31), reason="promised to pay", today=D + timedelta(days=31))
    lc.block(db, svc, actor=SYSTEM, on=D + timedelta(days=32), reason="abuse", today=D + timedelta(days=32))
    pay(inv, D + timedelta(days=35))
    r = run(db, D + timedelta(days=35))
    assert r.cases_closed == 1 and r.unblocked_services == 0
    assert svc.state == ServiceState.BLOCKED


def test_a_plan_change_while_blocked_carries_the_case_over(db):
    default_ladder()
    customer, (svc,), inv, _ = overdue_customer(db)
    target = type(svc.definition)(group=svc.definition.group, code="NEW", name="New", customer_name="New",
                                  price=Decimal("700"), vat_rate=Decimal("21"), valid_from=date(2020, 1, 1))
    svc.definition.allowed_targets.append(target)
    climb(db, D + timedelta(days=30))
    new = lc.change_plan(db, svc, target, actor=SYSTEM, on=D + timedelta(days=31), today=D + timedelta(days=31))
    assert new.state == ServiceState.BLOCKED
    pay(inv, D + timedelta(days=32))
    r = run(db, D + timedelta(days=32))
    assert r.unblocked_services == 1 and new.state == ServiceState.ACTIVE


def test_paying_the_reminded_invoices_unblocks_even_with_a_newer_one_just_overdue(db):
    default_ladder()
    customer, (svc,), jan, _ = overdue_customer(db)
    climb(db, D + timedelta(days=30))  # 14 Feb: blocked
    feb = invoice(customer, issue_date=date(2025, 2, 1), due_date=date(2025, 2, 15))
    pay(jan, date(2025, 2, 20))
    r = run(db, date(2025, 2, 20))  # February's is 5 days overdue: no level yet
    assert r.unblocked_services == 1 and svc.state == ServiceState.ACTIVE
    assert feb.amount_due > 0


def test_a_partial_payment_does_not_unblock(db):
    default_ladder()
    customer, (svc,), inv, _ = overdue_customer(db)
    climb(db, D + timedelta(days=30))
    pay(inv, D + timedelta(days=31), amount="300.00")
    r = run(db, D + timedelta(days=31))
    assert r.unblocked_services == 0 and svc.state == ServiceState.BLOCKED
    assert case_of(db, customer).state == CaseState.BLOCKED


def test_plan_without_blocking_never_blocks(db):
    default_ladder()
    plan = BillingPlanFactory(block_enabled=False)
    customer, (svc,), _, _ = overdue_customer(db, plan=plan)
    run_daily(db, D, D + timedelta(days=45))
    assert svc.state == ServiceState.ACTIVE
    assert [r.level for r in reminders(db, customer)] == [1, 2, 3]
    assert reminders(db, customer)[0].block_on is None
    assert case_of(db, customer).state == CaseState.REMINDED


# -- exceptions -----------------------------------------------------------------------------------------------------

def test_postpone_until_a_date_then_block(db):
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    run(db, D + timedelta(days=7))
    until = D + timedelta(days=40)
    exc = postpone_blocking(db, customer, until=until, reason="pays after surgery", actor=SYSTEM, today=D)
    assert exc.created_by_name == "test" and exc.reason == "pays after surgery"
    case = case_of(db, customer)
    assert case.state == CaseState.POSTPONED and case.postponed_until == until
    run_daily(db, D + timedelta(days=8), until)
    assert svc.state == ServiceState.ACTIVE
    assert case.state == CaseState.POSTPONED and case.postponed_until == until
    assert reminders(db, customer)[1].block_on == until + timedelta(days=1)  # level 2 says when
    r = run(db, until + timedelta(days=1))
    assert r.blocked_services == 1 and svc.state == ServiceState.BLOCKED
    assert case.state == CaseState.BLOCKED and case.postponed_until is None
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "dunning.blocking_postponed"))


def test_postpone_needs_a_reason_and_a_future_date(db):
    customer = CustomerFactory()
    with pytest.raises(DomainError):
        postpone_blocking(db, customer, until=D, reason=" ", actor=SYSTEM, today=D)
    with pytest.raises(DomainError):
        postpone_blocking(db, customer, until=D - timedelta(days=1), reason="x", actor=SYSTEM, today=D)
    with pytest.raises(DomainError):
        exempt_from_blocking(db, customer, reason="", actor=SYSTEM)


def test_never_block_and_its_revocation(db):
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    exc = exempt_from_blocking(db, customer, reason="hospital", actor=SYSTEM)
    assert customer.dunning_exempt is True
    run_daily(db, D, D + timedelta(days=35))
    assert svc.state == ServiceState.ACTIVE
    assert [r.level for r in reminders(db, customer)] == [1, 2, 3]  # reminders still go out
    revoke_exception(db, exc, actor=SYSTEM)
    assert customer.dunning_exempt is False and exc.revoked_at is not None
    with pytest.raises(DomainError):
        revoke_exception(db, exc, actor=SYSTEM)
    r = run(db, D + timedelta(days=36))
    assert r.blocked_services == 1 and svc.state == ServiceState.BLOCKED
    actions = set(db.scalars(select(AuditEntry.action)))
    assert {"dunning.exempted", "dunning.exception_revoked"} <= actions


def test_customer_flag_alone_exempts(db):
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    customer.dunning_exempt = True
    climb(db, D + timedelta(days=30))
    assert svc.state == ServiceState.ACTIVE


def test_revoking_a_postponement_lets_the_next_run_block(db):
    default_ladder()
    customer, (svc,), _, _ = overdue_customer(db)
    exc = postpone_blocking(db, customer, until=D + timedelta(days=60), reason="x", actor=SYSTEM, today=D)
    climb(db, D + timedelta(days=30))
    assert svc.state == ServiceState.ACTIVE and case_of(db, customer).state == CaseState.POSTPONED
    revoke_exception(db, exc, actor=SYSTEM, today=D + timedelta(days=31))
    assert case_of(db, customer).state == CaseState.REMINDED
    run(db, D + timedelta(days=31))
    assert svc.state == ServiceState.BLOCKED


# -- dry run, e-mail addresses, audit ---------------------------------------------------------------------------

def _counts(db):
    models = (Reminder, DebtRecoveryCase, Charge, ServiceEvent, AuditEntry, OutboundEmail)
    return {m.__name__: db.scalar(select(func.count()).select_from(m)) for m in models}


def test_dry_run_writes_nothing_and_predicts_the_real_run(db, outbox):
    default_ladder()
    a, (sa,), _, _ = overdue_customer(db)  # will reach level 3 and block
    b, _, _, _ = overdue_customer(db)
    c, (sc,), c_inv, _ = overdue_customer(db)
    climb(db, D + timedelta(days=30))  # a, b, c blocked now
    pay(c_inv, D + timedelta(days=40))  # c paid: unblock next run
    newer = invoice(b, issue_date=D, due_date=D + timedelta(days=25))  # b: more debt, no new level
    assert newer
    db.commit()
    before = _counts(db)
    states = {s.id: s.state for s in (sa, sc)}
    mails = len(outbox())

    dry = run(db, D + timedelta(days=40), dry_run=True)
    db.flush()
    assert _counts(db) == before and len(outbox()) == mails
    assert {s.id: s.state for s in (sa, sc)} == states
    assert dry.dry_run and dry.unblocked_services == 1 and dry.cases_closed == 1

    real = run(db, D + timedelta(days=40))
    assert real.as_dict() | {"dry_run": True} == dry.as_dict()
    assert sc.state == ServiceState.ACTIVE


def test_dry_run_predicts_reminders_blocks_and_fees(db):
    default_ladder()
    overdue_customer(db)
    overdue_customer(db)
    dry = run(db, D + timedelta(days=7), dry_run=True)
    assert dry.reminders_by_level == {1: 2} and dry.blocked_services == 0 and dry.cases_opened == 2
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == 0
    climb(db, D + timedelta(days=14))
    before = _counts(db)
    dry = run(db, D + timedelta(days=30), dry_run=True)
    assert dry.reminders_by_level == {3: 2} and dry.blocked_services == 2 and dry.cases_opened == 0
    assert _counts(db) == before
    real = run(db, D + timedelta(days=30))
    assert real.as_dict() | {"dry_run": True} == dry.as_dict()


def test_reminder_goes_to_billing_contact_else_primary_else_login(db, outbox):
    customer = CustomerFactory()
    assert billing_email(db, customer) is None
    CustomerLoginFactory(customer=customer, email="login@example.com")
    db.expire(customer)
    assert billing_email(db, customer) == "login@example.com"
    ContactFactory(customer=customer, value="general@example.com", purpose=ContactPurpose.GENERAL, primary=True)
    db.expire(customer)
    assert billing_email(db, customer) == "general@example.com"
    ContactFactory(customer=customer, value="billing@example.com", purpose=ContactPurpose.BILLING, primary=False)
    db.expire(customer)
    assert billing_email(db, customer) == "billing@example.com"

    default_ladder()
    invoice(customer, issue_date=D - timedelta(days=14), due_date=D)
    r = run(db, D + timedelta(days=7))
    assert r.emails_sent == 1
    (mail,) = outbox()
    assert mail["To"] == "billing@example.com" and mail["Subject"] == "Payment reminder"
    assert "605.00" in mail.text


def test_no_address_means_no_mail_but_still_a_reminder(db, outbox):
    default_ladder()
    customer = CustomerFactory()
    invoice(customer, issue_date=D - timedelta(days=14), due_date=D)
    r = run(db, D + timedelta(days=7))
    assert r.reminders == 1 and r.emails_sent == 0 and outbox() == []
    assert reminders(db, customer)[0].sent_at is None


def test_the_run_is_audited_with_its_counts(db):
    default_ladder()
    overdue_customer(db)
    climb(db, D + timedelta(days=14))
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "dunning.run").order_by(AuditEntry.id)).all()[-1]
    assert entry.changes["reminders_by_level"] == {"2": 1}
    assert entry.changes["fees_total"] == {"CZK": "100.00"}
    assert entry.actor_name == "test"


# -- the command line -------------------------------------------------------------------------------------------

def test_cli_run_postpone_and_never_block(app, db, outbox):
    default_ladder()
    blocked, (svc,), _, _ = overdue_customer(db)
    postponed, (svc2,), _, _ = overdue_customer(db)
    exempt, (svc3,), _, _ = overdue_customer(db)
    db.commit()
    cli = app.test_cli_runner()
    out = cli.invoke(args=["dunning", "postpone", postponed.customer_number, "--until", "2099-01-01",
                           "--reason", "agreed instalments"])
    assert out.exit_code == 0, out.output
    out = cli.invoke(args=["dunning", "never-block", exempt.customer_number, "--reason", "hospital"])
    assert out.exit_code == 0, out.output
    out = cli.invoke(args=["dunning", "postpone", "NOPE", "--until", "2099-01-01", "--reason", "x"])
    assert out.exit_code != 0 and "No customer" in out.output

    out = cli.invoke(args=["dunning", "run", "--date", "2025-02-14", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "dry run" in out.output and "(level 1: 3)" in out.output and "services blocked: 0" in out.output
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0

    for on in ("2025-01-22", "2025-01-29"):  # levels 1 and 2 first
        out = cli.invoke(args=["dunning", "run", "--date", on])
        assert out.exit_code == 0, out.output
    out = cli.invoke(args=["dunning", "run", "--date", "2025-02-14", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "dry run" in out.output and "services blocked: 1" in out.output
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Reminder)) == 6

    out = cli.invoke(args=["dunning", "run", "--date", "2025-02-14"])
    assert out.exit_code == 0, out.output
    assert "reminders: 3 (level 3: 3)" in out.output and "services blocked: 1" in out.output
    db.expire_all()
    assert [s.state for s in (db.get(type(svc), svc.id), db.get(type(svc), svc2.id), db.get(type(svc), svc3.id))] == [
        ServiceState.BLOCKED, ServiceState.ACTIVE, ServiceState.ACTIVE]


def test_a_paid_invoice_whose_payment_is_reversed_is_overdue_again(db):
    """The bank takes back the payment that paid an invoice: the dunning run's preview sees
    the debt again (and did not while it was paid)."""
    from portal.domain.payments import record_payment, reverse_payment
    from portal.models import Currency

    default_ladder()
    customer, _, inv, _ = overdue_customer(db)
    payment = record_payment(db, amount=inv.gross_total, currency=Currency.CZK, received_on=D,
                             variable_symbol=inv.variable_symbol, customer=customer, actor=SYSTEM)
    assert inv.paid_at is not None
    assert run(db, D + timedelta(days=7), dry_run=True).reminders_by_level == {}
    reverse_payment(db, payment, actor=SYSTEM, reason="bank reversal", reversed_on=D + timedelta(days=2),
                    reference="RVSL-1")
    assert run(db, D + timedelta(days=7), dry_run=True).reminders_by_level == {1: 1}
