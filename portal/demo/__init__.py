"""Realistic, deterministic demo data (`flask portal demo-data`, domain.md §6).

The same seed and the same `today` give the same data, row for row: every random choice is
drawn from one `random.Random(seed)` and Fakers seeded from it, in a fixed order, and dates
are computed from `today`.

Master data (partner, locations, catalogue, billing plans, reminder ladders, agreement types,
operators, customers) is written directly. The 24 months of history are *lived*, not faked:
month by month, services are ordered, activated, changed and cancelled through
`domain.lifecycle`, invoices are issued by `domain.billing.run_billing`, payments recorded and
paired by `domain.payments.record_payment`, and `domain.dunning.run_dunning` reminds and
blocks on the 1st, 8th, 15th and 22nd. What the demo shows is therefore what the rules do.

One simplification: lifecycle steps of a past month are carried out before that month's
billing run (dated as they happened), so a service that started mid-month gets its prorated
first month on that month's invoice. In the current month only steps up to the run date go
first; later ones wait for the next run.

The package follows the story: `catalogue` (the provider's master data and operators),
`customers` (the plan drawn for every customer, then the customer rows), `history` (the
months lived: lifecycle, billing, payments, dunning), `agreements` (agreements, requests, the
demo login); `common` holds the plan's dataclasses and small helpers, `names` the fixed
texts. Each is a mixin of the one demo world below, which tells them in order.
"""
from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import date

from faker import Faker
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.demo.agreements import PaperworkStory
from portal.demo.catalogue import CatalogueStory
from portal.demo.common import (
    DEMO_BILLING_EMAIL,
    DEMO_BILLING_PASSWORD,
    DEMO_CUSTOMER_EMAIL,
    DEMO_CUSTOMER_PASSWORD,
    DEMO_OPERATOR_EMAIL,
    DEMO_OPERATOR_PASSWORD,
    DUNNING_DAYS,
    HISTORY_MONTHS,
    CustomerPlan,
    PaymentIntent,
    Progress,
    ServicePlan,
    add_months,
    company_id_with_checksum,
    iban,
    month_end,
    name_key,
)
from portal.demo.customers import CustomerStory
from portal.demo.history import HistoryStory
from portal.domain.actors import Actor
from portal.models import (
    Agreement,
    AgreementState,
    Customer,
    CustomerKind,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentState,
    Reminder,
    ServiceState,
)

# ------------------------------------------------------------------------------ entry point


def load_demo_data(session: Session, *, customers: int = 200, seed: int = 42, today: date | None = None,
                   progress: Progress | None = None, history: bool = True,
                   months: int = HISTORY_MONTHS) -> str:
    """Create the demo world in `session` and return a summary. Deterministic for
    (customers, seed, today). The billing runs inside commit as they go (so does the caller
    at the end). `months` of history are lived (the current one included); `history=False`
    writes master data and services only (no invoices, payments or reminders). Both make
    quick worlds for tests."""
    if customers < 5:
        raise ValueError("The demo needs at least 5 customers.")
    if months < 3:
        raise ValueError("The demo needs at least 3 months of history.")
    demo = _Demo(session, customers=customers, seed=seed, today=today or date.today(), progress=progress,
                 months=months)
    demo.with_history = history
    with _mail_to_outbox():
        return demo.run()


@contextmanager
def _mail_to_outbox():
    """The history sends reminders and blocking notices to made-up addresses: keep them in
    the outbox folder even where an SMTP server is configured."""
    from flask import current_app, has_app_context

    if not has_app_context():
        yield
        return
    server = current_app.config.get("MAIL_SERVER")
    current_app.config["MAIL_SERVER"] = None
    try:
        yield
    finally:
        current_app.config["MAIL_SERVER"] = server


class _Demo(CatalogueStory, CustomerStory, HistoryStory, PaperworkStory):
    """The demo world: its state, and `run` telling the stories in order (the mixins
    share this state; each module is one part of the story)."""

    def __init__(self, session: Session, *, customers: int, seed: int, today: date, progress: Progress | None,
                 months: int = HISTORY_MONTHS):
        self.s = session
        self.n = customers
        self.seed = seed
        self.today = today
        self.say = progress or (lambda _msg: None)
        self.rng = random.Random(seed)
        self.fake_cz = Faker("cs_CZ")
        self.fake_cz.seed_instance(seed)
        self.fake_sk = Faker("sk_SK")
        self.fake_sk.seed_instance(seed + 1)
        self.actor = Actor.system("demo")
        self.current_month = today.replace(day=1)
        self.window_start = add_months(self.current_month, -(months - 1))
        self.months = [add_months(self.window_start, k) for k in range(months)]
        self.used_emails: set[str] = set()
        self.plans: list[CustomerPlan] = []
        self.payment_seq = 0
        self.payment_counter = 0
        self.pending: list[PaymentIntent] = []
        self.demo_unpaid_month: date | None = None
        self.timings: dict[str, float] = defaultdict(float)
        self.demo_postponed = False
        self.with_history = True

    # -------------------------------------------------------------- orchestration

    def run(self) -> str:
        started = time.monotonic()
        self.say(f"Demo data: {self.n} customers, seed {self.seed}, today {self.today.isoformat()}")
        self._master_data()
        self._operators()
        self._draw_plans()
        self._customers()
        self.s.flush()
        self._history()
        self._agreements()
        self._requests()
        self.s.flush()
        self.say(f"Demo data ready in {time.monotonic() - started:.1f} s")
        return self._summary()

    # -------------------------------------------------------------- summary

    def _summary(self) -> str:
        s = self.s
        count = lambda model, *where: s.scalar(select(func.count()).select_from(model).where(*where))  # noqa: E731
        states = Counter(dict(s.execute(select(CustomerService.state, func.count())
                                         .group_by(CustomerService.state)).all()))
        kinds = Counter(dict(s.execute(select(Customer.kind, func.count()).group_by(Customer.kind)).all()))
        levels = dict(s.execute(select(Reminder.level, func.count()).group_by(Reminder.level)
                                .order_by(Reminder.level)).all())
        payments = Counter(dict(s.execute(select(Payment.state, func.count()).group_by(Payment.state)).all()))
        overdue = count(Invoice, Invoice.due_date < self.today, Invoice.paid_amount < Invoice.gross_total)
        open_cases = Counter(dict(s.execute(select(DebtRecoveryCase.state, func.count())
                                             .where(DebtRecoveryCase.state != "closed")
                                             .group_by(DebtRecoveryCase.state)).all()))
        lines = [
            "Demo data loaded.",
            f"  customers: {kinds[CustomerKind.PERSON] + kinds[CustomerKind.COMPANY]} "
            f"({kinds[CustomerKind.PERSON]} persons, {kinds[CustomerKind.COMPANY]} companies) in 3 locations",
            "  services: " + ", ".join(f"{st.value} {states.get(st, 0)}" for st in ServiceState),
            f"  invoices: {count(Invoice)} ({count(InvoiceLine)} lines), {overdue} overdue",
            f"  payments: {sum(payments.values())} ("
            + ", ".join(f"{st.value} {payments.get(st, 0)}" for st in PaymentState) + ")",
            "  reminders: " + (", ".join(f"level {lv}: {c}" for lv, c in levels.items()) or "none")
            + f"; open debt cases: {sum(open_cases.values())}",
            f"  blocked services now: {states.get(ServiceState.BLOCKED, 0)}",
            f"  agreements: {count(Agreement)} ({count(Agreement, Agreement.state == AgreementState.ISSUED)} "
            "awaiting acceptance)",
            f"  open requests: {count(CustomerRequest, CustomerRequest.state.in_(['new', 'in_progress', 'waiting_for_customer']))}",
            "Demo logins:",
            f"  selfcare  {DEMO_CUSTOMER_EMAIL} / {DEMO_CUSTOMER_PASSWORD}",
            f"  staff     {DEMO_OPERATOR_EMAIL} / {DEMO_OPERATOR_PASSWORD} (all rights)",
            f"  staff     {DEMO_BILLING_EMAIL} / {DEMO_BILLING_PASSWORD} (billing, Brno only)",
        ]
        return "\n".join(lines)

__all__ = [
    "DEMO_BILLING_EMAIL",
    "DEMO_BILLING_PASSWORD",
    "DEMO_CUSTOMER_EMAIL",
    "DEMO_CUSTOMER_PASSWORD",
    "DEMO_OPERATOR_EMAIL",
    "DEMO_OPERATOR_PASSWORD",
    "DUNNING_DAYS",
    "HISTORY_MONTHS",
    "CustomerPlan",
    "PaymentIntent",
    "Progress",
    "ServicePlan",
    "add_months",
    "company_id_with_checksum",
    "iban",
    "load_demo_data",
    "month_end",
    "name_key",
]
