"""The demo's past, lived month by month through the domain rules: services ordered,
activated, changed and cancelled; billing runs; payments recorded and paired; dunning."""
from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from sqlalchemy import insert, select

from portal.demo import names
from portal.demo.common import (
    DUNNING_DAYS,
    ONE,
    CustomerPlan,
    PaymentIntent,
    ServicePlan,
    add_months,
    at_hour,
    iban,
    money,
    month_end,
)
from portal.domain.actors import Actor
from portal.models import (
    ActorType,
    Currency,
    Customer,
    CustomerService,
    Discount,
    DiscountKind,
    Invoice,
    PaymentMethod,
    PaymentSource,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
    UsageInstance,
    UsageReading,
)
from portal.models.base import utcnow


class HistoryStory:
    """The months lived through the rules: lifecycle steps, usage readings, billing runs,
    payments by payer profile and dunning on its days."""

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
                at = at_hour(day, 23, 0)
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
            amount = money(left / 2).quantize(ONE, rounding=ROUND_HALF_UP) or left
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
            self.s, amount=money(amount), currency=invoice.currency, received_on=intent.on, actor=self.actor,
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
