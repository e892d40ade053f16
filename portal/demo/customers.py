"""The demo's customers: the plan of their services and payments, and the customer rows."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from faker import Faker
from stdnum.cz import dic as cz_dic
from stdnum.sk import dph as sk_dph

from portal.demo import names
from portal.demo.common import (
    ONE,
    CustomerPlan,
    ServicePlan,
    add_months,
    ascii_slug,
    company_id_with_checksum,
    money,
    name_key,
)
from portal.domain.actors import Actor
from portal.models import (
    AddressKind,
    Contact,
    ContactKind,
    ContactPurpose,
    Customer,
    CustomerAddress,
    CustomerKind,
    Language,
)


class CustomerStory:
    """Who the customers are and what will happen to them: the plan is drawn first (services,
    their dates, plan changes, cancellations, payer profiles), then the customers are written
    with their contacts and second addresses."""

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
            override = money(self.defs[speed].price * Decimal("0.85")).quantize(ONE, rounding=ROUND_HALF_UP)
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
            email = self._unique_email("fakturace." + ascii_slug(customer.company_name, "-")[:40], domain)
        else:
            email = self._unique_email(ascii_slug(f"{customer.first_name} {customer.last_name}"), domain)
        if cp.location_code == "BTS":
            phone = f"+421 9{rng.randint(0, 4)}{rng.randint(0, 9)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
        else:
            phone = f"+420 {rng.choice(['601', '602', '603', '605', '608', '702', '720', '724', '731', '736', '739', '773', '777'])} {rng.randint(100, 999)} {rng.randint(100, 999)}"
        rows = [(ContactKind.EMAIL, email, ContactPurpose.BILLING, True),
                (ContactKind.PHONE, phone, ContactPurpose.GENERAL, True)]
        if cp.kind == CustomerKind.COMPANY and rng.random() < 0.6:
            rows.append((ContactKind.EMAIL, self._unique_email("it." + ascii_slug(customer.company_name, "-")[:40],
                                                               domain), ContactPurpose.TECHNICAL, False))
        for kind, value, purpose, primary in rows:
            stored, key = normalise_contact(kind, value)
            customer.contacts.append(Contact(kind=kind, value=stored, value_key=key, purpose=purpose, primary=primary))
