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
"""
from __future__ import annotations

import calendar
import hashlib
import random
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from faker import Faker
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from stdnum import iban as stdnum_iban
from stdnum.cz import dic as cz_dic
from stdnum.sk import dph as sk_dph

from portal import demo_names as names
from portal.domain.actors import Actor
from portal.models import (
    AcceptanceMethod,
    ActorType,
    AddressKind,
    Aggregation,
    Agreement,
    AgreementAcceptance,
    AgreementState,
    AgreementType,
    BillingPlan,
    Contact,
    ContactKind,
    ContactPurpose,
    Currency,
    Customer,
    CustomerAddress,
    CustomerGroup,
    CustomerKind,
    CustomerRequest,
    CustomerService,
    DebtRecoveryCase,
    Delivery,
    Discount,
    DiscountKind,
    Invoice,
    InvoiceLine,
    Language,
    Location,
    Numbering,
    Partner,
    Payment,
    PaymentMethod,
    PaymentSource,
    PaymentState,
    Period,
    PriceChange,
    Reminder,
    ReminderLevel,
    RequestComment,
    RequestState,
    Role,
    Rounding,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceGroup,
    ServiceGroupKind,
    ServiceState,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from portal.models.base import utcnow

Progress = Callable[[str], None]

DEMO_CUSTOMER_EMAIL = "customer@example.com"
DEMO_CUSTOMER_PASSWORD = "Customer-demo-1"
DEMO_OPERATOR_EMAIL = "operator@example.com"
DEMO_OPERATOR_PASSWORD = "Operator-demo-1"
DEMO_BILLING_EMAIL = "billing@example.com"
DEMO_BILLING_PASSWORD = "Billing-demo-1"

HISTORY_MONTHS = 24
DUNNING_DAYS = (1, 8, 15, 22)
ONE = Decimal(1)


# ------------------------------------------------------------------------------ small helpers


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


def name_key(text: str | None) -> str:
    """Lower-cased and accent-free ("Nováková" → "novakova"), as the search index wants it."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _ascii_slug(text: str, sep: str = ".") -> str:
    out, prev_sep = [], True
    for ch in name_key(text):
        if ch.isalnum() and ch.isascii():
            out.append(ch)
            prev_sep = False
        elif not prev_sep:
            out.append(sep)
            prev_sep = True
    return "".join(out).strip(sep)


def company_id_with_checksum(seven_digits: str) -> str:
    """A Czech (and Slovak) IČO: seven digits and the mod-11 check digit."""
    total = sum(int(d) * w for d, w in zip(seven_digits, range(8, 1, -1), strict=True))
    check = (11 - total % 11) % 10
    return seven_digits + str(check)


def iban(country: str, bank_code: str, number: str, prefix: str = "") -> str:
    """A Czech or Slovak IBAN (same layout: bank code, 6-digit prefix, 10-digit number)."""
    bban = bank_code + prefix.rjust(6, "0") + number.rjust(10, "0")
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _at(d: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=UTC)


def _money(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# ------------------------------------------------------------------------------ the plan


@dataclass
class ServicePlan:
    """What happens to one service over the demo's time: drawn first, lived month by month."""

    customer_index: int
    code: str
    ordered_on: date
    activated_on: date | None = None
    cancel_request_on: date | None = None
    cancel_on: date | None = None
    cancel_reason: str = ""
    change_on: date | None = None
    change_to: str | None = None
    price_override: Decimal | None = None
    installation: tuple[str, str, str] | None = None
    loyalty_discount: bool = False
    service: CustomerService | None = None  # the live row (the successor after a plan change)
    first_service: CustomerService | None = None


@dataclass
class CustomerPlan:
    index: int
    location_code: str
    kind: CustomerKind
    profile: str = "on_time"  # on_time | late | very_late | stopper
    stop_from: date | None = None  # stoppers: no payments for invoices issued from this month on
    unmatched: str | None = None  # "missing_vs" | "wrong_vs" for last month's payment
    services: list[ServicePlan] = field(default_factory=list)
    customer: Customer | None = None
    exempt: bool = False  # "never block"
    name: str = ""  # kept here: the billing run commits, which expires the ORM rows
    payment_method: PaymentMethod | None = None


@dataclass
class PaymentIntent:
    on: date
    order: int
    invoice_id: int
    customer_index: int
    kind: str = "full"  # full | half | rest | over | missing_vs | wrong_vs
    source: PaymentSource = PaymentSource.BANK_IMPORT


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


class _Demo:
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

    # -------------------------------------------------------------- master data

    def _master_data(self) -> None:
        s = self.s
        partner_ico = company_id_with_checksum("2874651")
        assert cz_dic.is_valid(partner_ico)
        account = iban("CZ", "2010", "2801234567")
        assert stdnum_iban.is_valid(account)
        self.partner = Partner(
            name="Vltava Net s.r.o.",
            company_id=partner_ico,
            vat_id=f"CZ{partner_ico}",
            street="Na Poříčí 1047/26",
            city="Praha 1",
            postal_code="110 00",
            country="CZ",
            iban=account,
            bank_account="2801234567/2010",
            bic="FIOBCZPPXXX",
            email="fakturace@example.com",
            phone="+420 222 333 444",
            web="https://www.example.com",
        )
        s.add(self.partner)
        self.locations = {
            "PRG": Location(name="Praha", code="PRG", partner=self.partner, currency=Currency.CZK,
                            invoice_series_prefix="1"),
            "BRN": Location(name="Brno", code="BRN", partner=self.partner, currency=Currency.CZK,
                            invoice_series_prefix="2"),
            "BTS": Location(name="Bratislava", code="BTS", partner=self.partner, currency=Currency.EUR,
                            invoice_series_prefix="3"),
        }
        s.add_all(self.locations.values())

        self.groups = {
            "internet": ServiceGroup(name="Internet", kind=ServiceGroupKind.INTERNET, position=1),
            "tv": ServiceGroup(name="Television", kind=ServiceGroupKind.TV, position=2),
            "voice": ServiceGroup(name="Voice", kind=ServiceGroupKind.VOICE, position=3),
            "other": ServiceGroup(name="Add-ons", kind=ServiceGroupKind.OTHER, position=4),
        }
        s.add_all(self.groups.values())

        self.calls = UsageTracker(name="Calls", description="Outgoing calls and text messages of the phone line",
                                  vat_rate=Decimal("21.00"))
        self.calls_minutes = UsageItem(tracker=self.calls, metric="minutes", name="Calls", unit="min",
                                       aggregation=Aggregation.SUM, step=ONE, rounding=Rounding.UP,
                                       amount_per_step=Decimal("1.50"))
        self.calls_sms = UsageItem(tracker=self.calls, metric="sms", name="Text messages", unit="pcs",
                                   aggregation=Aggregation.SUM, step=ONE, rounding=Rounding.UP,
                                   amount_per_step=Decimal("1.20"))
        s.add_all([self.calls, self.calls_minutes, self.calls_sms])

        catalogue_from = date(self.window_start.year - 6, 1, 1)
        self.defs: dict[str, ServiceDefinition] = {}
        for code, group, name, customer_name, price, vat, period, commitment, notice, changeable in names.CATALOGUE:
            self.defs[code] = ServiceDefinition(
                group=self.groups[group], code=code, name=name, customer_name=customer_name,
                description=f"{customer_name}.", price=price, price_includes_vat=True, vat_rate=vat,
                period=Period(period), commitment_months=commitment, notice_days=notice,
                selfcare_changeable=changeable, valid_from=catalogue_from, active=True,
                usage_tracker=self.calls if code == "VOICEFLEX" else None,
            )
        s.add_all(self.defs.values())
        speeds = ["NET100", "NET300", "NET500", "NET1000"]
        for code in speeds:
            self.defs[code].allowed_targets = [self.defs[c] for c in speeds if c != code]
        tvs = ["TVBASIC", "TVPLUS", "TVNEWS"]
        for code in tvs:
            self.defs[code].allowed_targets = [self.defs[c] for c in tvs if c != code]
        # One price rise in the past: Internet 300 went from 449 to 499 a year ago. The row
        # keeps the old price until the history reaches that date (as the catalogue did).
        self.price_rise_on = add_months(self.current_month, -11)
        self.price_rise = PriceChange(definition=self.defs["NET300"], new_price=Decimal("499.00"),
                                      effective_from=self.price_rise_on, note="Yearly price review")
        s.add(self.price_rise)

        self.plans_by_name = {
            "email": BillingPlan(name="Monthly e-mail invoice, transfer, 14 days",
                                 customer_name="Monthly invoice by e-mail, bank transfer within 14 days",
                                 invoice_day=1, due_days=14, delivery=Delivery.EMAIL,
                                 payment_method=PaymentMethod.TRANSFER, block_enabled=True, series="FV1",
                                 constant_symbol="0308"),
            "post": BillingPlan(name="Monthly post, direct debit, 10 days",
                                customer_name="Monthly invoice by post, direct debit after 10 days",
                                invoice_day=1, due_days=10, delivery=Delivery.POST,
                                payment_method=PaymentMethod.DIRECT_DEBIT, block_enabled=True, series="FP2",
                                constant_symbol="0308"),
            # Reminder fees are plain amounts in the customer's currency, so the EUR location
            # needs its own plan and ladder (a 100 CZK fee is not a 100 EUR fee).
            "eur": BillingPlan(name="Monthly e-mail invoice, EUR, 14 days",
                               customer_name="Monthly invoice by e-mail, bank transfer within 14 days",
                               invoice_day=1, due_days=14, delivery=Delivery.EMAIL,
                               payment_method=PaymentMethod.TRANSFER, block_enabled=True, series="FE3",
                               constant_symbol="0308"),
        }
        s.add_all(self.plans_by_name.values())
        s.flush()
        for plan_id, fee in ((None, Decimal("100.00")), (self.plans_by_name["eur"].id, Decimal("4.00"))):
            s.add_all([
                ReminderLevel(billing_plan_id=plan_id, level=1, days_overdue=7, fee=Decimal("0.00"), blocks=False,
                              letter_template="reminder.html", pay_within_days=7),
                ReminderLevel(billing_plan_id=plan_id, level=2, days_overdue=14, fee=fee, blocks=False,
                              letter_template="reminder.html", pay_within_days=7),
                ReminderLevel(billing_plan_id=plan_id, level=3, days_overdue=30, fee=Decimal("0.00"), blocks=True,
                              letter_template="reminder.html", pay_within_days=5),
            ])

        self.agreement_type = AgreementType(
            name="Service agreement", code="SA", numbering=Numbering.PER_TYPE, number_format="{year}/{seq:05d}",
            template="standard.html", requires_confirmation=True, remind_days=14, block_days=None,
            valid_from=catalogue_from,
            terms="General terms of service of Vltava Net s.r.o., valid from 1 January "
                  f"{catalogue_from.year}; price list as published on the day of conclusion.",
        )
        self.annex_type = AgreementType(
            name="Annex", code="ANX", numbering=Numbering.PER_TYPE, number_format="D{year}/{seq:05d}",
            template="annex.html", is_annex=True, requires_confirmation=True, remind_days=14, block_days=None,
            valid_from=catalogue_from,
        )
        s.add_all([self.agreement_type, self.annex_type])

        self.customer_groups = {
            "vip": CustomerGroup(name="VIP", description="Personal care: call before any intervention."),
            "business": CustomerGroup(name="Business", description="Companies and sole traders."),
            "seniors": CustomerGroup(name="Seniors", description="Customers over 65 (senior discount campaign)."),
        }
        s.add_all(self.customer_groups.values())
        s.flush()
        self.say("  catalogue: 12 service definitions in 4 groups, 3 billing plans, reminder ladders")

    def _operators(self) -> None:
        from portal.domain.accounts import create_operator, ensure_admin_role, ensure_rights

        admin = ensure_admin_role(self.s)
        rights = ensure_rights(self.s)
        clerk = Role(name="Billing clerk",
                     rights=[rights[c] for c in ("billing.run", "payments.write", "customers.read")])
        self.s.add(clerk)
        self.s.flush()
        self.operator = create_operator(self.s, DEMO_OPERATOR_EMAIL, "Demo Operator", DEMO_OPERATOR_PASSWORD,
                                        [admin], self.actor)
        self.billing_clerk = create_operator(self.s, DEMO_BILLING_EMAIL, "Bára Účetní", DEMO_BILLING_PASSWORD,
                                             [clerk], self.actor)
        self.billing_clerk.locations = [self.locations["BRN"]]
        self.s.flush()

    # -------------------------------------------------------------- drawing the plan

    def _draw_plans(self) -> None:
        rng = self.rng
        locs = ["PRG"] * 55 + ["BRN"] * 30 + ["BTS"] * 15
        for i in range(self.n):
            if i == 0:
                cp = CustomerPlan(0, "PRG", CustomerKind.PERSON)
            else:
                kind = CustomerKind.COMPANY if rng.random() < 0.2 else CustomerKind.PERSON
                cp = CustomerPlan(i, rng.choice(locs), kind)
            self.plans.append(cp)

        self._draw_demo_services(self.plans[0])
        newcomers = {self.n - 1, self.n - 2}
        leaver = self.n - 3
        for cp in self.plans[1:]:
            self._draw_services(cp, newcomer=cp.index in newcomers, leaver=cp.index == leaver)
        self._draw_payers()

    def _span_date(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, max((end - start).days, 0)))

    def _eur(self, cp: CustomerPlan, code: str, override: Decimal | None) -> Decimal | None:
        if cp.location_code == "BTS":
            return names.EUR_PRICES[code]
        return override

    def _draw_services(self, cp: CustomerPlan, *, newcomer: bool, leaver: bool) -> None:
        rng, today = self.rng, self.today
        company = cp.kind == CustomerKind.COMPANY
        if newcomer:
            ordered = today - timedelta(days=rng.randint(1, 6))
            activated = None
        elif rng.random() < 0.55:
            ordered = self.window_start - timedelta(days=rng.randint(20, 4 * 365))
            activated = ordered + timedelta(days=rng.randint(3, 14))
        else:
            ordered = self._span_date(self.window_start, today - timedelta(days=2))
            activated = ordered + timedelta(days=rng.randint(3, 14))
        if activated is not None and activated >= today:
            activated = None

        weights = [("NET100", 20), ("NET300", 35), ("NET500", 27), ("NET1000", 18)]
        if company:
            weights = [("NET300", 25), ("NET500", 35), ("NET1000", 40)]
        speed = rng.choices([c for c, _ in weights], [w for _, w in weights])[0]
        installation = None
        if rng.random() < 0.12:
            city, pc = rng.choice(names.NEARBY[cp.location_code])
            fake = self.fake_sk if cp.location_code == "BTS" else self.fake_cz
            installation = (f"{fake.street_name()} {rng.randint(1, 400)}", city, pc)
        override = None
        if cp.location_code != "BTS" and rng.random() < 0.04:
            override = _money(self.defs[speed].price * Decimal("0.85")).quantize(ONE, rounding=ROUND_HALF_UP)
        internet = ServicePlan(cp.index, speed, ordered, activated, price_override=self._eur(cp, speed, override),
                               installation=installation, loyalty_discount=rng.random() < 0.06)
        cp.services.append(internet)
        if rng.random() < 0.35 or newcomer:
            cp.services.append(ServicePlan(cp.index, "ROUTER", ordered, activated,
                                           price_override=self._eur(cp, "ROUTER", None), installation=installation))
        if ordered >= self.window_start and activated is not None and rng.random() < 0.6:
            cp.services.append(ServicePlan(cp.index, "INSTALL", ordered, activated,
                                           price_override=self._eur(cp, "INSTALL", None), installation=installation))
        if newcomer or activated is None:
            return

        def later_start() -> tuple[date, date] | None:
            start = activated if rng.random() < 0.5 else activated + timedelta(days=rng.randint(30, 500))
            if start >= today - timedelta(days=4):
                return None
            return start, start + timedelta(days=rng.randint(1, 3))

        if rng.random() < (0.15 if company else 0.32):
            dates = later_start()
            if dates:
                tv = rng.choices(["TVBASIC", "TVPLUS", "TVNEWS"], [50, 35, 15])[0]
                plan = ServicePlan(cp.index, tv, dates[0], dates[1], price_override=self._eur(cp, tv, None),
                                   installation=installation)
                if rng.random() < 0.12:
                    self._cancel(plan, self._span_date(dates[1] + timedelta(days=60), today + timedelta(days=40)),
                                 rng.choice(["No longer needed", "Price", "Watches streaming services instead"]))
                cp.services.append(plan)
        if cp.location_code != "BTS" and rng.random() < (0.3 if company else 0.1):
            dates = later_start()
            if dates:
                voice = "VOICEFLEX" if rng.random() < 0.65 else "VOICEUNL"
                cp.services.append(ServicePlan(cp.index, voice, dates[0], dates[1], installation=installation))
        if rng.random() < (0.5 if company else 0.04):
            dates = later_start()
            if dates:
                cp.services.append(ServicePlan(cp.index, "PUBLICIP", dates[0], dates[1],
                                               price_override=self._eur(cp, "PUBLICIP", None),
                                               installation=installation))
        # Upgrades: a faster line some time after the start (a plan change, not a new order).
        if speed != "NET1000" and rng.random() < 0.08:
            change_on = add_months(activated, rng.randint(6, 20)).replace(day=1)
            if activated < change_on < today - timedelta(days=5):
                faster = ["NET100", "NET300", "NET500", "NET1000"]
                internet.change_on = change_on
                internet.change_to = rng.choice(faster[faster.index(speed) + 1:])
        # Leavers cancel everything on one day, after the commitment where they can.
        if leaver or rng.random() < 0.07:
            earliest = activated + timedelta(days=150)
            if internet.change_on:
                earliest = max(earliest, internet.change_on + timedelta(days=60))
            if earliest < today - timedelta(days=10):
                leave_on = self._span_date(earliest, today - timedelta(days=5))
                reason = rng.choice(names.CANCEL_REASONS)
                for plan in cp.services:
                    if plan.code == "INSTALL" or plan.activated_on is None or plan.activated_on >= leave_on:
                        continue
                    if plan.cancel_on is None or plan.cancel_on > leave_on:
                        self._cancel(plan, leave_on, reason)
        # A few pending cancellations: notice given, the end date still ahead.
        if not any(p.cancel_on for p in cp.services) and rng.random() < 0.03:
            self._cancel(internet, today + timedelta(days=rng.randint(5, 25)), rng.choice(names.CANCEL_REASONS))
            for plan in cp.services:
                if plan.code == "ROUTER":
                    self._cancel(plan, internet.cancel_on, internet.cancel_reason)

    def _cancel(self, plan: ServicePlan, on: date, reason: str) -> None:
        notice = self.defs[plan.code].notice_days
        plan.cancel_on = on
        plan.cancel_request_on = max(on - timedelta(days=notice + self.rng.randint(0, 10)),
                                     (plan.activated_on or plan.ordered_on) + timedelta(days=1))
        plan.cancel_reason = reason

    def _draw_demo_services(self, cp: CustomerPlan) -> None:
        today, cm = self.today, self.current_month
        # A customer since before the history starts: 300 Mbit, upgraded to 500 Mbit 14
        # months ago (or 2 months in, with a short history), TV, a phone line with metered
        # calls, a news package she tried and cancelled, and a public IP ordered this week.
        start = add_months(self.window_start, -7)
        act = start + timedelta(days=6)
        change_on = max(add_months(cm, -14), add_months(self.window_start, 2))
        tv_on = max(add_months(cm, -18), add_months(self.window_start, 1)) + timedelta(days=8)
        voice_on = max(add_months(cm, -5), add_months(self.window_start, 1)) + timedelta(days=2)
        cp.services = [
            ServicePlan(0, "NET300", start, act, change_on=change_on, change_to="NET500"),
            ServicePlan(0, "ROUTER", start, act),
            ServicePlan(0, "TVPLUS", tv_on, tv_on + timedelta(days=2)),
            ServicePlan(0, "VOICEFLEX", voice_on, voice_on + timedelta(days=4)),
        ]
        news_on = self.window_start + timedelta(days=12)
        news = ServicePlan(0, "TVNEWS", news_on, news_on + timedelta(days=1))
        self._cancel(news, min(add_months(news_on, 8), self.today - timedelta(days=20)), "Not watching it enough")
        cp.services.append(news)
        ip_ordered = today - timedelta(days=3)
        cp.services.append(ServicePlan(0, "PUBLICIP", ip_ordered, today - timedelta(days=1)))
        # The one overdue invoice: the newest whose due date (14 days after the 1st) is at
        # least 8 days past, so a reminder has been issued for it.
        m = cm
        while m + timedelta(days=14 + 8) > today:
            m = add_months(m, -1)
        self.demo_unpaid_month = m

    def _draw_payers(self) -> None:
        rng = self.rng
        others = [cp for cp in self.plans[1:]]
        settled = [cp for cp in others
                   if any(p.activated_on and p.activated_on <= self.today - timedelta(days=130) and not p.cancel_on
                          and p.code.startswith("NET") for p in cp.services)]
        rng.shuffle(settled)
        stoppers = settled[: max(2, round(self.n * 0.05))]
        for k, cp in enumerate(stoppers):
            cp.profile = "stopper"
            cp.stop_from = add_months(self.current_month, -[2, 0, 1, 3][k % 4])
        rest = [cp for cp in others if cp.profile == "on_time"]
        for cp in rest:
            r = rng.random()
            cp.profile = "late" if r < 0.08 else "very_late" if r < 0.12 else "on_time"
        on_time = [cp for cp in rest if cp.profile == "on_time" and cp in settled]
        for cp, kind in zip(on_time[:2], ("missing_vs", "wrong_vs"), strict=False):
            cp.unmatched = kind

    # -------------------------------------------------------------- customers

    def _customers(self) -> None:
        for cp in self.plans:
            cp.customer = self._customer(cp)
            cp.name = cp.customer.display_name
            cp.payment_method = cp.customer.billing_plan.payment_method
        self.s.flush()
        from portal.domain.dunning import exempt_from_blocking

        for cp in self.plans:
            if cp.exempt:
                exempt_from_blocking(self.s, cp.customer, actor=Actor.operator(self.operator),
                                     reason="Emergency line of a care home: never block, call the director.")
        self.say(f"  customers: {self.n}")

    def _customer(self, cp: CustomerPlan) -> Customer:
        rng = self.rng
        sk = cp.location_code == "BTS"
        fake = self.fake_sk if sk else self.fake_cz
        district = rng.choice({"PRG": names.PRAHA, "BRN": names.BRNO, "BTS": names.BRATISLAVA}[cp.location_code])
        street = (f"{fake.street_name()} {rng.randint(1, 140)}" if sk
                  else f"{fake.street_name()} {rng.randint(100, 2999)}/{rng.randint(1, 60)}")
        number = f"{100001 + cp.index}"
        customer = Customer(
            location=self.locations[cp.location_code],
            customer_number=number,
            kind=cp.kind,
            street=street,
            city=district[0],
            postal_code=district[1],
            country="SK" if sk else "CZ",
            language=Language.EN if rng.random() < 0.1 else Language.CS,
            variable_symbol=f"8{number}",
            note=rng.choice(names.CUSTOMER_NOTES) if rng.random() < 0.06 else "",
        )
        groups = []
        if cp.index == 0:
            customer.first_name, customer.last_name = "Jana", "Dvořáková"
            customer.birth_date = date(1986, 4, 17)
            customer.language = Language.EN
            customer.street, customer.city, customer.postal_code = "Korunní 2569/108", "Praha 10", "101 00"
            customer.note = "Demo customer: selfcare login customer@example.com."
        elif cp.kind == CustomerKind.PERSON:
            female = rng.random() < 0.5
            customer.first_name = fake.first_name_female() if female else fake.first_name_male()
            customer.last_name = fake.last_name_female() if female else fake.last_name_male()
            customer.birth_date = self.today - timedelta(days=rng.randint(19 * 365, 86 * 365))
            if (self.today - customer.birth_date).days > 65 * 365 and rng.random() < 0.3:
                groups.append(self.customer_groups["seniors"])
        else:
            customer.company_name = fake.company()
            ico = company_id_with_checksum(f"{rng.randint(1, 8)}{rng.randint(0, 999999):06d}")
            assert cz_dic.is_valid(ico)
            customer.company_id = ico
            if sk:
                customer.vat_id = "SK" + self._sk_vat_number()
            else:
                customer.vat_id = f"CZ{ico}"
            groups.append(self.customer_groups["business"])
        if cp.index != 0 and rng.random() < 0.04:
            groups.append(self.customer_groups["vip"])
        customer.groups = groups
        customer.name_key = name_key(customer.last_name or customer.company_name)
        if sk:
            customer.billing_plan = self.plans_by_name["eur"]
        elif cp.index != 0 and rng.random() < (0.1 if cp.kind == CustomerKind.COMPANY else 0.25):
            customer.billing_plan = self.plans_by_name["post"]
        else:
            customer.billing_plan = self.plans_by_name["email"]
        cp.exempt = cp.index != 0 and cp.profile == "on_time" and rng.random() < 0.015
        self._contacts(customer, cp, fake)
        for plan in cp.services:
            if plan.installation:
                street, city, pc = plan.installation
                if not any(a.street == street for a in customer.addresses):
                    customer.addresses.append(CustomerAddress(kind=AddressKind.INSTALLATION, street=street, city=city,
                                                              postal_code=pc, country=customer.country,
                                                              note="Second connection place"))
        self.s.add(customer)
        return customer

    def _sk_vat_number(self) -> str:
        while True:
            n = self.rng.randint(10**9 // 11 + 1, (10**10 - 1) // 11) * 11
            candidate = str(n)
            if sk_dph.is_valid(candidate):
                return candidate

    def _unique_email(self, local: str, domain: str) -> str:
        local = local or "customer"
        email, k = f"{local}@{domain}", 1
        while email in self.used_emails:
            k += 1
            email = f"{local}{k}@{domain}"
        self.used_emails.add(email)
        return email

    def _contacts(self, customer: Customer, cp: CustomerPlan, fake: Faker) -> None:
        from portal.domain.profile import normalise_contact

        rng = self.rng
        domain = rng.choice(["example.com", "example.net", "example.org"])
        if cp.index == 0:
            email = self._unique_email("customer", "example.com")
        elif cp.kind == CustomerKind.COMPANY:
            email = self._unique_email("fakturace." + _ascii_slug(customer.company_name, "-")[:40], domain)
        else:
            email = self._unique_email(_ascii_slug(f"{customer.first_name} {customer.last_name}"), domain)
        if cp.location_code == "BTS":
            phone = f"+421 9{rng.randint(0, 4)}{rng.randint(0, 9)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
        else:
            phone = f"+420 {rng.choice(['601', '602', '603', '605', '608', '702', '720', '724', '731', '736', '739', '773', '777'])} {rng.randint(100, 999)} {rng.randint(100, 999)}"
        rows = [(ContactKind.EMAIL, email, ContactPurpose.BILLING, True),
                (ContactKind.PHONE, phone, ContactPurpose.GENERAL, True)]
        if cp.kind == CustomerKind.COMPANY and rng.random() < 0.6:
            rows.append((ContactKind.EMAIL, self._unique_email("it." + _ascii_slug(customer.company_name, "-")[:40],
                                                               domain), ContactPurpose.TECHNICAL, False))
        for kind, value, purpose, primary in rows:
            stored, key = normalise_contact(kind, value)
            customer.contacts.append(Contact(kind=kind, value=stored, value_key=key, purpose=purpose, primary=primary))

    # -------------------------------------------------------------- history

    def _history(self) -> None:
        if not self.with_history:
            self._steps_without_history()
            return
        from portal.domain import billing, dunning, lifecycle, payments, plan_change

        self.lifecycle, self.billing, self.payments, self.dunning = lifecycle, billing, payments, dunning
        self.plan_change = plan_change
        steps = self._steps()
        price_rise_done = False
        for month in self.months:
            started = time.monotonic()
            end = min(month_end(month), self.today)
            current = month == self.current_month
            first_cut = month if current else end
            with self._timed("lifecycle"):
                self._do_steps(steps, until=first_cut)
            if not price_rise_done and self.price_rise_on <= month:
                self._apply_price_rise()
                price_rise_done = True
            self._readings(month, end)
            with self._timed("billing"):
                run = billing.run_billing(self.s, month, actor=self.actor, issue_date=month)
            invoices = self.s.scalars(select(Invoice).where(Invoice.billing_run_id == run.id)
                                      .order_by(Invoice.id)).all()
            for invoice in invoices:
                self._schedule_payment(invoice)
            if current:
                with self._timed("lifecycle"):
                    self._do_steps(steps, until=self.today)
            days = [month.replace(day=d) for d in DUNNING_DAYS if month.replace(day=d) <= end]
            if current and self.today not in days:
                days.append(self.today)
            reminders = 0
            for day in days:
                with self._timed("payments"):
                    self._pay_until(day)
                with self._timed("dunning"):
                    result = dunning.run_dunning(self.s, on=day, actor=self.actor)
                reminders += result.reminders
                self._postpone_demo_blocking(day)
            with self._timed("payments"):
                self._pay_until(end)
            self.s.flush()
            self.say(f"  {month:%Y-%m}: {len(invoices)} invoices, {reminders} reminders "
                     f"({time.monotonic() - started:.1f} s)")
        self.say("  time spent in the rules: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))

    @contextmanager
    def _timed(self, what: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[what] += time.monotonic() - started

    def _postpone_demo_blocking(self, day: date) -> None:
        """The demo customer's one overdue invoice must not get her lines blocked: when it is
        (or will be) 30 days overdue by `today`, staff postponed blocking after the second
        reminder, as they would for a long-standing customer who promised to pay."""
        due = self.demo_unpaid_month + timedelta(days=14)
        if self.demo_postponed or (self.today - due).days < 30 or day < due + timedelta(days=14):
            return
        until = self.today + timedelta(days=10)
        self.dunning.postpone_blocking(
            self.s, self.plans[0].customer, until=until, actor=Actor.operator(self.operator), today=day,
            reason=f"Promised on the phone to pay by {until:%d.%m.%Y}; customer since {self.window_start.year - 1}.",
        )
        self.demo_postponed = True

    def _steps(self) -> list[tuple[date, int, int, str, ServicePlan]]:
        """Every lifecycle step of every plan, in the order they happen."""
        order = {"order": 0, "activate": 1, "change": 2, "cancel_request": 3, "cancel": 4}
        steps = []
        for cp in self.plans:
            for k, plan in enumerate(cp.services):
                seq = cp.index * 100 + k
                steps.append((plan.ordered_on, order["order"], seq, "order", plan))
                if plan.activated_on:
                    steps.append((plan.activated_on, order["activate"], seq, "activate", plan))
                if plan.change_on:
                    steps.append((plan.change_on, order["change"], seq, "change", plan))
                if plan.cancel_on:
                    steps.append((plan.cancel_request_on, order["cancel_request"], seq, "cancel_request", plan))
                    steps.append((plan.cancel_on, order["cancel"], seq, "cancel", plan))
        steps.sort(key=lambda st: st[:3])
        return steps

    def _do_steps(self, steps: list, *, until: date) -> None:
        lc = self.lifecycle
        while steps and steps[0][0] <= until:
            on, _, _, what, plan = steps.pop(0)
            cp = self.plans[plan.customer_index]
            if what == "order":
                plan.service = lc.order_service(
                    self.s, cp.customer, self.defs[plan.code], actor=self.actor, ordered_on=on,
                    price_override=plan.price_override,
                    installation_street=plan.installation[0] if plan.installation else cp.customer.street,
                    installation_city=plan.installation[1] if plan.installation else cp.customer.city,
                    installation_postal_code=plan.installation[2] if plan.installation else cp.customer.postal_code,
                )
                plan.first_service = plan.service
                self._after_order(plan)
            elif what == "activate":
                lc.activate(self.s, plan.service, actor=self.actor, on=on, today=on)
                if plan.loyalty_discount:
                    self.s.add(Discount(name="Loyalty discount 10 %", kind=DiscountKind.PERCENT,
                                        value=Decimal("10"), customer_service_id=plan.service.id,
                                        valid_from=on, valid_to=add_months(on, 12) - timedelta(days=1),
                                        min_commitment_months=12, shown_on_invoice=True))
            elif what == "change":
                old = plan.service
                plan.service = self.plan_change.change_plan(self.s, old, self.defs[plan.change_to], actor=self.actor,
                                                            on=on, reason="Customer asked for a faster line", today=on)
                if cp.location_code == "BTS":
                    plan.service.price_override = names.EUR_PRICES[plan.change_to]
                if cp.index == 0:  # the upgrade came with a year of loyalty discount (see her annex)
                    self.s.add(Discount(name="Loyalty discount 10 %", kind=DiscountKind.PERCENT, value=Decimal("10"),
                                        customer_service_id=plan.service.id, valid_from=on,
                                        valid_to=add_months(on, 12) - timedelta(days=1), min_commitment_months=12,
                                        shown_on_invoice=True))
            elif what == "cancel_request":
                if plan.service.state == ServiceState.CANCELLED:
                    continue
                earliest = lc.earliest_end_date(plan.service, on)
                lc.cancel(self.s, plan.service, actor=self.actor, on=plan.cancel_on, reason=plan.cancel_reason,
                          waive_notice=plan.cancel_on < earliest, today=on)
            elif what == "cancel":
                lc.apply_scheduled(self.s, today=on, actor=self.actor)

    def _steps_without_history(self) -> None:
        """Without history (`history=False`): services as rows with their first events."""
        for cp in self.plans:
            for plan in cp.services:
                if plan.ordered_on > self.today:
                    continue
                svc = CustomerService(customer=cp.customer, definition=self.defs[plan.code], state=ServiceState.ORDERED,
                                      ordered_on=plan.ordered_on, price_override=plan.price_override)
                events = [ServiceEvent(kind=ServiceEventKind.ORDERED, to_state=ServiceState.ORDERED,
                                       effective_on=plan.ordered_on, done_at=utcnow(), actor_type=ActorType.SYSTEM,
                                       actor_name="demo")]
                if plan.activated_on and plan.activated_on <= self.today:
                    svc.state, svc.activated_on, svc.billing_from = ServiceState.ACTIVE, plan.activated_on, plan.activated_on
                    events.append(ServiceEvent(kind=ServiceEventKind.ACTIVATED, from_state=ServiceState.ORDERED,
                                               to_state=ServiceState.ACTIVE, effective_on=plan.activated_on,
                                               done_at=utcnow(), actor_type=ActorType.SYSTEM, actor_name="demo"))
                if plan.cancel_on and plan.cancel_on <= self.today:
                    svc.state, svc.cancelled_on, svc.billing_to = ServiceState.CANCELLED, plan.cancel_on, plan.cancel_on
                svc.events = events
                self.s.add(svc)
                plan.service = plan.first_service = svc
        self.s.flush()

    def _after_order(self, plan: ServicePlan) -> None:
        if plan.code == "VOICEFLEX":
            self.s.add(UsageInstance(tracker=self.calls, customer_service=plan.service))

    def _apply_price_rise(self) -> None:
        """The price list changes on the effective date: the definition's price follows and
        every affected service gets a visible `price_changed` event."""
        definition = self.defs["NET300"]
        old, new = definition.price, self.price_rise.new_price
        definition.price = new
        services = self.s.scalars(
            select(CustomerService).where(CustomerService.definition_id == definition.id,
                                          CustomerService.state.in_([ServiceState.ACTIVE, ServiceState.BLOCKED]),
                                          CustomerService.price_override.is_(None))
            .order_by(CustomerService.id)
        ).all()
        for svc in services:
            self.s.add(ServiceEvent(customer_service=svc, kind=ServiceEventKind.PRICE_CHANGED, from_state=svc.state,
                                    to_state=svc.state, effective_on=self.price_rise_on, done_at=utcnow(),
                                    reason="Yearly price review", actor_type=ActorType.SYSTEM, actor_name="demo",
                                    details={"old_price": str(old), "new_price": str(new)}, visible_to_customer=True))

    def _readings(self, month: date, end: date) -> None:
        """Daily call minutes and text messages of the metered phone lines for the month."""
        rows = []
        last_day = min(end, self.today - timedelta(days=1))
        instances = self.s.execute(
            select(UsageInstance.id, CustomerService.activated_on, CustomerService.billing_to)
            .join(CustomerService, UsageInstance.customer_service_id == CustomerService.id)
            .where(CustomerService.activated_on.is_not(None)).order_by(UsageInstance.id)
        ).all()
        for instance_id, activated_on, billing_to in instances:
            day = max(month, activated_on)
            stop = min(last_day, billing_to) if billing_to else last_day
            while day <= stop:
                minutes = Decimal(str(round(self.rng.expovariate(1 / 4.0), 1))) if self.rng.random() < 0.7 else Decimal(0)
                texts = Decimal(self.rng.choice([0, 0, 0, 1, 1, 2, 3]))
                at = _at(day, 23, 0)
                rows.append({"instance_id": instance_id, "item_id": self.calls_minutes.id, "measured_at": at,
                             "value": minutes})
                rows.append({"instance_id": instance_id, "item_id": self.calls_sms.id, "measured_at": at,
                             "value": texts})
                day += timedelta(days=1)
        if rows:
            now = utcnow()
            for row in rows:
                row["created_at"] = row["updated_at"] = now
            self.s.execute(insert(UsageReading), rows)

    # -------------------------------------------------------------- payments

    def _schedule_payment(self, invoice: Invoice) -> None:
        """Decide when (and how) the customer pays this invoice, by their payer profile."""
        rng = self.rng
        cp = self._plan_of_customer(invoice.customer_id)
        due, issued = invoice.due_date, invoice.issue_date
        plan_method = cp.payment_method
        kind, source = "full", PaymentSource.BANK_IMPORT
        if cp.index == 0:
            if invoice.issue_date.replace(day=1) == self.demo_unpaid_month:
                return
            on = due - timedelta(days=rng.randint(1, 5))
        elif cp.profile == "stopper" and issued >= cp.stop_from:
            return
        elif plan_method == PaymentMethod.DIRECT_DEBIT:
            on = due
        elif cp.profile == "late":
            on = due + timedelta(days=rng.randint(5, 20))
        elif cp.profile == "very_late":
            on = due + timedelta(days=rng.randint(30, 60) if rng.random() < 0.5 else rng.randint(3, 15))
        else:
            on = due - timedelta(days=rng.randint(0, 8)) if rng.random() > 0.025 else due + timedelta(days=rng.randint(8, 16))
        on = max(on, issued + timedelta(days=1))
        if cp.index != 0:
            r = rng.random()
            if cp.unmatched and issued.replace(day=1) == add_months(self.current_month, -1):
                kind = cp.unmatched
            elif r < 0.02:
                kind = "half"
            elif r < 0.03:
                kind = "over"
            elif r < 0.06 and plan_method != PaymentMethod.DIRECT_DEBIT:
                source = PaymentSource.MANUAL
        self._queue(PaymentIntent(on, 0, invoice.id, cp.index, kind, source))

    def _queue(self, intent: PaymentIntent) -> None:
        self.payment_seq += 1
        intent.order = self.payment_seq
        self.pending.append(intent)

    def _plan_of_customer(self, customer_id: int) -> CustomerPlan:
        if not hasattr(self, "_by_customer_id"):
            self._by_customer_id = {cp.customer.id: cp for cp in self.plans}
        return self._by_customer_id[customer_id]

    def _pay_until(self, day: date) -> None:
        due = sorted((p for p in self.pending if p.on <= day and p.on <= self.today), key=lambda p: (p.on, p.order))
        if not due:
            return
        self.pending = [p for p in self.pending if not (p.on <= day and p.on <= self.today)]
        for intent in due:
            self._pay(intent)

    def _pay(self, intent: PaymentIntent) -> None:
        invoice = self.s.get(Invoice, intent.invoice_id)
        cp = self.plans[intent.customer_index]
        left = invoice.gross_total - invoice.paid_amount
        if left <= 0:
            return
        vs = invoice.variable_symbol
        message = f"Faktura {invoice.number}"
        amount = left
        eur = invoice.currency == Currency.EUR
        if intent.kind == "half":
            amount = _money(left / 2).quantize(ONE, rounding=ROUND_HALF_UP) or left
            amount = min(max(amount, ONE), left)
            if amount < left:
                self._queue(PaymentIntent(intent.on + timedelta(days=self.rng.randint(7, 20)), 0, invoice.id,
                                          intent.customer_index, "rest"))
        elif intent.kind == "over":
            unit = Decimal(10) if eur else Decimal(100)
            amount = (left / unit).quantize(ONE, rounding=ROUND_CEILING) * unit
            if amount == left:
                amount += unit
        elif intent.kind == "missing_vs":
            vs, message = None, f"{cp.name}, internet"
        elif intent.kind == "wrong_vs":
            vs = self._unknown_vs()
            message = f"Platba {cp.name}"
        self.payment_counter += 1
        source = intent.source
        self.payments.record_payment(
            self.s, amount=_money(amount), currency=invoice.currency, received_on=intent.on, actor=self.actor,
            variable_symbol=vs, source=source,
            bank_reference=f"DEMO-{self.payment_counter:07d}" if source == PaymentSource.BANK_IMPORT else None,
            counterparty_name=cp.name,
            counterparty_account=self._account_of(cp) if source == PaymentSource.BANK_IMPORT else None,
            message=message if source == PaymentSource.BANK_IMPORT else "Paid at the branch office",
        )

    def _account_of(self, cp: CustomerPlan) -> str:
        digest = hashlib.sha256(f"{self.seed}:{cp.index}".encode()).hexdigest()
        number = str(int(digest[:12], 16))[-10:].lstrip("0") or "1"
        if cp.location_code == "BTS":
            return iban("SK", ["0900", "1100", "0200", "7500"][int(digest[14:16], 16) % 4], number)
        bank = ["0800", "0100", "0300", "2010", "0600", "5500", "3030"][int(digest[14:16], 16) % 7]
        return f"{number}/{bank}"

    def _unknown_vs(self) -> str:
        while True:
            vs = f"9{self.rng.randint(10_000_000, 99_999_999)}"
            taken = (self.s.scalar(select(Invoice.id).where(Invoice.variable_symbol == vs))
                     or self.s.scalar(select(Customer.id).where(Customer.variable_symbol == vs)))
            if not taken:
                return vs

    # -------------------------------------------------------------- agreements and requests

    def _agreements(self) -> None:
        """One service agreement per customer (accepted, or issued and awaiting acceptance
        for customers whose services have not started), numbered per type and year in the
        order of conclusion; the demo customer also has annexes."""
        from portal.domain.numbering import format_number, reserve_numbers

        drafts: list[tuple[date, int, AgreementType, Agreement]] = []
        for cp in self.plans:
            services = [p for p in cp.services if p.first_service is not None and p.code != "INSTALL"]
            if not services:
                continue
            concluded = min(p.ordered_on for p in services)
            started = any(p.activated_on and p.activated_on <= self.today for p in services)
            if cp.index == 0:
                covered = [p.first_service for p in services if p.code in ("NET300", "ROUTER", "TVPLUS", "TVNEWS",
                                                                            "VOICEFLEX")]
            else:
                covered = [p.first_service for p in services if p.ordered_on == concluded] or [services[0].first_service]
                covered += [p.service for p in services if p.service is not p.first_service]
            agreement = Agreement(type=self.agreement_type, customer=cp.customer, conclusion_date=concluded,
                                  valid_from=concluded, customer_services=covered)
            if started and not (cp.index != 0 and concluded > self.today - timedelta(days=7)):
                self._accept(agreement, concluded + timedelta(days=self.rng.randint(0, 3)))
            else:
                agreement.state = AgreementState.ISSUED
            agreement.issued_at = _at(concluded, 9, 30)
            drafts.append((concluded, cp.index, self.agreement_type, agreement))

        demo = self.plans[0]
        by_code = {p.code: p for p in demo.services}
        net = by_code["NET300"]
        main = next(a for _, i, _, a in drafts if i == 0)
        change = Agreement(type=self.annex_type, customer=demo.customer, parent=main,
                           conclusion_date=net.change_on - timedelta(days=4), valid_from=net.change_on,
                           customer_services=[net.service],
                           summary=f"Change of Internet 300 Mbit/s to Internet 500 Mbit/s from "
                                   f"{net.change_on:%d.%m.%Y}; 24-month commitment; loyalty discount 10 % "
                                   f"for 12 months.")
        change.issued_at = _at(change.conclusion_date, 9, 0)
        self._accept(change, change.conclusion_date + timedelta(days=1))
        ip = by_code["PUBLICIP"]
        pending = Agreement(type=self.annex_type, customer=demo.customer, parent=main, conclusion_date=ip.ordered_on,
                            valid_from=ip.activated_on, customer_services=[ip.service],
                            summary="Public IPv4 address for the home connection, 99 CZK a month, notice 30 days.",
                            state=AgreementState.ISSUED)
        pending.issued_at = _at(ip.ordered_on, 14, 5)
        drafts += [(change.conclusion_date, 0, self.annex_type, change), (ip.ordered_on, 0, self.annex_type, pending)]

        drafts.sort(key=lambda d: (d[2].code, d[0], d[1]))
        by_scope: dict[tuple[int, int], list[Agreement]] = defaultdict(list)
        for concluded, _, atype, agreement in drafts:
            by_scope[(atype.id, concluded.year)].append(agreement)
        for (type_id, year), agreements in sorted(by_scope.items()):
            atype = self.agreement_type if type_id == self.agreement_type.id else self.annex_type
            numbers = reserve_numbers(self.s, self._agreement_scope(atype), year, len(agreements))
            for seq, agreement in zip(numbers, agreements, strict=True):
                agreement.sequence = seq
                agreement.number = format_number(atype.number_format, year=year, seq=seq)
                self.s.add(agreement)
        self.s.flush()

    def _agreement_scope(self, atype: AgreementType) -> str:
        try:
            from portal.domain import agreements
        except ImportError:
            agreements = None
        scope_of = getattr(agreements, "numbering_scope", None)
        if scope_of is not None:
            return scope_of(atype)
        return f"agreement:{atype.id}"

    def _accept(self, agreement: Agreement, on: date) -> None:
        agreement.state = AgreementState.ACCEPTED
        agreement.accepted_at = _at(on, 15, self.rng.randint(0, 59))
        # Signed on paper at the branch, recorded by staff; the hash is of the signed text.
        agreement.acceptances.append(AgreementAcceptance(
            operator_id=self.operator.id, at=agreement.accepted_at, method=AcceptanceMethod.STAFF,
            document_sha256=hashlib.sha256(f"{agreement.customer.customer_number}:{on}".encode()).hexdigest(),
        ))

    def _requests(self) -> None:
        from portal.domain.customer_requests import create_request

        def as_customer(cp: CustomerPlan) -> Actor:
            return Actor(ActorType.CUSTOMER, cp.customer.id, cp.customer.display_name)

        def staff_comment(request: CustomerRequest, body: str, internal: bool) -> None:
            self.s.add(RequestComment(request_id=request.id, author_type=ActorType.OPERATOR,
                                      author_id=self.operator.id, author_name=self.operator.name, body=body,
                                      internal=internal))

        demo = self.plans[0]
        voice = next(p for p in demo.services if p.code == "VOICEFLEX")
        r1 = create_request(self.s, demo.customer, as_customer(demo), kind="question",
                            subject="Phone charges on my last invoice",
                            message="Hello, my last invoice has more call minutes than I remember making. "
                                    "Could you send me the list of calls, please?",
                            service=voice.service)
        staff_comment(r1, "Dear Ms Dvořáková, the minutes are totals of the daily readings of your line. "
                          "We have sent the list of calls to your e-mail; please tell us which calls you do "
                          "not recognise.", internal=False)
        staff_comment(r1, "Readings look normal (daily 0–15 min). If she disputes specific calls, check "
                          "with the voice platform before crediting anything.", internal=True)
        r1.state, r1.assignee_id = RequestState.WAITING_FOR_CUSTOMER, self.operator.id

        unmatched = next((cp for cp in self.plans if cp.unmatched == "missing_vs"), None)
        if unmatched is not None:
            r2 = create_request(self.s, unmatched.customer, as_customer(unmatched), kind="complaint",
                                subject="I paid, but got a payment reminder",
                                message="I paid last month's invoice on time by bank transfer, yet the portal "
                                        "says it is overdue. Please check.")
            staff_comment(r2, "Thank you, we are looking for your payment and will get back to you.", internal=False)
            staff_comment(r2, "The payment came without a variable symbol: it is in the unmatched queue "
                              "under the customer's name. Pair it and waive the reminder fee.", internal=True)
            r2.state, r2.assignee_id = RequestState.IN_PROGRESS, self.operator.id

        candidate = next((cp for cp in self.plans[1:] for p in cp.services
                          if p.service is not None and p.service.state == ServiceState.ACTIVE
                          and p.service.definition.code == "NET100"), None)
        if candidate is not None:
            service = next(p.service for p in candidate.services if p.service is not None
                           and p.service.state == ServiceState.ACTIVE and p.service.definition.code == "NET100")
            create_request(self.s, candidate.customer, as_customer(candidate), kind="plan_change",
                           subject="Faster internet", service=service,
                           target_definition_id=self.defs["NET300"].id,
                           message="We work from home now; could we get 300 Mbit from next month?")
        from portal.domain.accounts import create_customer_login

        create_customer_login(self.s, demo.customer, DEMO_CUSTOMER_EMAIL, DEMO_CUSTOMER_PASSWORD, self.actor)
        self.s.flush()

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


__all__ = ["load_demo_data", "name_key", "company_id_with_checksum"]
