"""Dunning: reminder levels, debt recovery cases, blocking and unblocking.

A run on a date (`run_dunning`) looks at every customer with overdue invoices or an open
case:

* **Overdue** = issued invoices (type `invoice`, not advances or credit notes) with an amount
  still due and a due date before the run date. Days overdue = days since the oldest overdue
  due date.
* **Levels**: the customer's billing plan's ladder (reminder_level rows of that plan), else the
  default ladder (rows without a plan). A level is *reached* when the days overdue reach its
  days_overdue. A level's *interval* is its days_overdue minus the previous level's (the first
  level has none).
* **Reminders climb one level at a time**: a debt recovery case follows the customer's debt.
  Its next level is the first level of the ladder above the case's level. A run issues a
  reminder at that next level — never higher, so at most one level per run — when (a) the
  next level is reached and (b) the case's last reminder is at least the next level's interval
  old (the first reminder has no such wait). A debt late enough for level 3 therefore starts at
  level 1, and a case never gets two reminders of one level. A fee becomes a `fee` charge
  (VAT 0: a reminder fee is compensation, not a taxable supply) that the next billing run
  invoices; the reminder is e-mailed. Its block_on is the earliest day the blocking level can
  come by these rules.
* **Blocking**: only once the case itself stands at a blocking level (so the customer has had
  every earlier reminder, each at least its interval apart), if the customer's billing plan
  allows blocking (no plan: allowed), the customer is not exempt ("never block" exception or
  the customer's dunning_exempt flag) and no postponement runs (until ≥ run date), every ACTIVE
  service is blocked through `lifecycle.block` with the event linked to the case.
* **Unblocking**: a case is settled when the customer has nothing overdue any more, or when
  every invoice its reminders covered is paid and what is still overdue has not reached a
  blocking level. A settled case unblocks exactly the services it blocked that are still
  blocked by it (a service staff blocked themselves stays blocked) and closes. The same rule
  runs between runs when a payment commits (domain/settlement.py):
  a customer who pays is unblocked at once, not the next morning.

What is overdue, the ladders, the open case and the exceptions in force are read in `overdue`
(importable from here too); this module writes: the run, and the exceptions staff grant.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from portal.domain import DomainError, lifecycle
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.overdue import (  # re-exported: moved to overdue
    active_exceptions,
    blocking_exception_state,
    interval,
    ladder_for,
    ladders,
    next_level,
    open_case,
    overdue_by_customer,
    overdue_invoices,
    services_blocked_by,
)
from portal.domain.recipients import billing_email
from portal.links import pay_url
from portal.mail import send_email
from portal.models import (
    ActorType,
    BlockingException,
    CaseState,
    Charge,
    ChargeKind,
    Customer,
    CustomerService,
    DebtRecoveryCase,
    EmailState,
    ExceptionKind,
    Invoice,
    InvoiceState,
    InvoiceType,
    Reminder,
    ReminderLevel,
    ServiceState,
)
from portal.models.base import ZERO, utcnow

__all__ = [
    "active_exceptions", "BATCH", "blocking_forecast", "check_run_scope", "dunning_overview",
    "DunningResult", "DunningRunRefused", "exempt_from_blocking", "interval", "ladder_for",
    "ladders", "LevelSummary", "next_level", "open_case", "overdue_by_customer",
    "overdue_invoices", "postpone_blocking", "Progress", "revoke_exception", "run_dunning",
    "services_blocked_by",
]

Progress = Callable[[int, int], None]  # (customers done, customers in total)


@dataclass
class DunningResult:
    """What a run did (or, with dry_run, would do)."""

    on: date
    dry_run: bool = False
    customers_considered: int = 0
    reminders_by_level: dict[int, int] = field(default_factory=dict)
    cases_opened: int = 0
    cases_blocked: int = 0
    blocked_services: int = 0
    blocking_postponed: int = 0
    unblocked_services: int = 0
    cases_closed: int = 0
    fees_charged: int = 0
    fees_total: dict[str, Decimal] = field(default_factory=dict)  # per currency
    emails_sent: int = 0

    @property
    def reminders(self) -> int:
        return sum(self.reminders_by_level.values())

    def as_dict(self) -> dict:
        return {
            "on": self.on.isoformat(),
            "dry_run": self.dry_run,
            "customers_considered": self.customers_considered,
            "reminders_by_level": {str(k): v for k, v in sorted(self.reminders_by_level.items())},
            "cases_opened": self.cases_opened,
            "cases_blocked": self.cases_blocked,
            "blocked_services": self.blocked_services,
            "blocking_postponed": self.blocking_postponed,
            "unblocked_services": self.unblocked_services,
            "cases_closed": self.cases_closed,
            "fees_charged": self.fees_charged,
            "fees_total": {k: str(v) for k, v in sorted(self.fees_total.items())},
            "emails_sent": self.emails_sent,
        }

    def summary(self) -> str:
        levels = ", ".join(f"level {k}: {v}" for k, v in sorted(self.reminders_by_level.items())) or "none"
        fees = ", ".join(f"{v} {k}" for k, v in sorted(self.fees_total.items())) or "0"
        return "\n".join([
            f"Dunning run on {self.on.isoformat()}{' (dry run: nothing written)' if self.dry_run else ''}",
            f"  customers considered: {self.customers_considered}",
            f"  reminders: {self.reminders} ({levels})",
            f"  fees charged: {self.fees_charged} ({fees})",
            f"  cases opened: {self.cases_opened}, blocked: {self.cases_blocked}, closed: {self.cases_closed}",
            f"  services blocked: {self.blocked_services}, unblocked: {self.unblocked_services}",
            f"  blocking postponed: {self.blocking_postponed}",
            f"  e-mails sent: {self.emails_sent}",
        ])


def _send(session: Session, customer: Customer, to: str | None, subject, template: str, **context) -> bool:
    """E-mail the customer in their language (`subject` is a lazy string); True when sent."""
    if not to:
        return False
    lang = customer.language.value if customer.language else None
    with force_locale(lang):
        row = send_email(to, str(subject), template, customer_id=customer.id, customer=customer, **context)
    return row.state == EmailState.SENT


# -- the run ---------------------------------------------------------------------------------------


def _candidates(session: Session, on: date) -> list[int]:
    overdue = select(Invoice.customer_id).where(
        Invoice.type == InvoiceType.INVOICE,
        Invoice.state == InvoiceState.ISSUED,
        Invoice.paid_amount < Invoice.gross_total,
        Invoice.due_date < on,
    )
    cases = select(DebtRecoveryCase.customer_id).where(DebtRecoveryCase.state != CaseState.CLOSED)
    ids = set(session.scalars(overdue)) | set(session.scalars(cases))
    return sorted(ids)


BATCH = 200  # customers loaded (with contacts, cases, exceptions) per round of queries


def run_dunning(session: Session, *, on: date, actor: Actor, progress: Progress | None = None,
                dry_run: bool = False) -> DunningResult:
    """One dunning run on `on` (rules in the module docstring). With `dry_run` nothing is
    written and no e-mail leaves: the result says what a real run would do. A real run
    writes one audit entry with the counts, besides the entries of each reminder, block and
    unblock."""
    result = DunningResult(on=on, dry_run=dry_run)
    all_ladders = ladders(session)
    ids = _candidates(session, on)
    total = len(ids)
    if progress:
        progress(0, total)
    done = 0
    for start in range(0, total, BATCH):
        chunk = ids[start:start + BATCH]
        customers = session.scalars(
            select(Customer)
            .options(selectinload(Customer.contacts), joinedload(Customer.location), joinedload(Customer.billing_plan))
            .where(Customer.id.in_(chunk))
            .order_by(Customer.id)
        ).unique().all()
        cases: dict[int, DebtRecoveryCase] = {}
        for case in session.scalars(
            select(DebtRecoveryCase)
            .options(selectinload(DebtRecoveryCase.reminders).selectinload(Reminder.invoices))
            .where(DebtRecoveryCase.customer_id.in_(chunk), DebtRecoveryCase.state != CaseState.CLOSED)
            .order_by(DebtRecoveryCase.id)
        ):
            cases[case.customer_id] = case  # the newest open case wins
        exceptions: dict[int, list[BlockingException]] = defaultdict(list)
        for exc in session.scalars(
            select(BlockingException)
            .where(BlockingException.customer_id.in_(chunk), BlockingException.revoked_at.is_(None))
        ):
            exceptions[exc.customer_id].append(exc)
        overdue = overdue_by_customer(session, chunk, on)
        for customer in customers:
            result.customers_considered += 1
            _dun_customer(session, customer, ladder_for(customer, all_ladders), overdue.get(customer.id, []),
                          cases.get(customer.id),
                          blocking_exception_state(exceptions[customer.id], on), on=on, actor=actor, result=result,
                          dry_run=dry_run)
            done += 1
            if progress:
                progress(done, total)
    if not dry_run:
        record(session, actor, "dunning.run", "dunning_run", None, result.as_dict())
        session.flush()
    return result


def _dun_customer(session: Session, customer: Customer, ladder: list[ReminderLevel],
                  overdue: list[tuple[Invoice, Decimal]], case: DebtRecoveryCase | None, exception_state: tuple[bool, date | None], *, on: date,
                  actor: Actor, result: DunningResult, dry_run: bool) -> None:
    overdue_amount = sum((due for _, due in overdue), ZERO)
    days = (on - overdue[0][0].due_date).days if overdue else 0
    reached = [lvl for lvl in ladder if overdue and days >= lvl.days_overdue]
    to = billing_email(session, customer) if (case is not None or reached) else None
    currency = customer.location.currency.value

    # 1. A settled case unblocks what it blocked and closes.
    if case is not None:
        if case_settled(case, overdue, ladder, on):
            services = services_blocked_by(session, case)
            result.unblocked_services += len(services)
            result.cases_closed += 1
            if services and to:
                result.emails_sent += 1
            if not dry_run:
                close_case(session, case, services, customer, to, on=on, actor=actor)
            case = None

    if not reached:
        return

    # 2. A reminder at the next level, once it is reached and the last reminder is old enough.
    never_block, postponed_until = exception_state
    plan = customer.billing_plan
    blockable = (plan is None or plan.block_enabled) and not customer.dunning_exempt and not never_block
    case_level = case.level if case is not None else 0
    last = case.reminders[-1] if case is not None and case.reminders else None
    nxt = next_level(ladder, case_level)
    level_now = next((lvl for lvl in ladder if lvl.level == case_level), None)
    if nxt is not None and days >= nxt.days_overdue and (
            last is None or on >= last.issued_on + timedelta(days=interval(ladder, nxt))):
        level_now = nxt
        result.reminders_by_level[nxt.level] = result.reminders_by_level.get(nxt.level, 0) + 1
        if nxt.fee > 0:
            result.fees_charged += 1
            result.fees_total[currency] = result.fees_total.get(currency, ZERO) + nxt.fee
        if to:
            result.emails_sent += 1
        if case is None:
            result.cases_opened += 1
        if not dry_run:
            if case is None:
                case = _open_case(session, customer, on=on, actor=actor)
            _issue_reminder(session, case, customer, nxt, ladder, overdue, days, to, on=on, actor=actor,
                            blockable=blockable, postponed_until=postponed_until)

    # 3. Blocking once the case stands at a blocking level (every earlier reminder was sent).
    at_blocking = level_now is not None and level_now.blocks
    if at_blocking and blockable and (case is None or case.state != CaseState.BLOCKED):
        if postponed_until is not None:
            result.blocking_postponed += 1
        else:
            services = session.scalars(
                select(CustomerService)
                .where(CustomerService.customer_id == customer.id, CustomerService.state == ServiceState.ACTIVE)
                .order_by(CustomerService.id)
            ).all()
            result.cases_blocked += 1
            result.blocked_services += len(services)
            if services and to:
                result.emails_sent += 1
            if not dry_run:
                _block_case(session, case, services, customer, overdue_amount, to, on=on, actor=actor)

    if not dry_run and case is not None and case.state != CaseState.BLOCKED:
        # A postponement shows on the case while it runs; afterwards the case is just reminded.
        case.state = CaseState.POSTPONED if postponed_until is not None else CaseState.REMINDED
        case.postponed_until = postponed_until


def case_settled(case: DebtRecoveryCase, overdue: list[tuple[Invoice, Decimal]], ladder: list[ReminderLevel],
             on: date) -> bool:
    """Nothing overdue any more, or every invoice the case's reminders covered is paid and
    what is still overdue has not reached a blocking level."""
    if not overdue:
        return True
    days = (on - overdue[0][0].due_date).days
    blocking_reached = any(lvl.blocks for lvl in ladder if days >= lvl.days_overdue)
    covered = {inv.id for r in case.reminders for inv in r.invoices}
    still_due = {inv.id for inv, _ in overdue}
    return bool(covered) and not (covered & still_due) and not blocking_reached


def _open_case(session: Session, customer: Customer, *, on: date, actor: Actor) -> DebtRecoveryCase:
    case = DebtRecoveryCase(customer_id=customer.id, state=CaseState.OPEN, level=0, opened_on=on)
    session.add(case)
    session.flush()
    record(session, actor, "dunning.case_opened", "debt_recovery_case", case.id,
           {"state": [None, CaseState.OPEN], "opened_on": [None, on]}, customer_id=customer.id)
    return case


def _issue_reminder(session: Session, case: DebtRecoveryCase, customer: Customer, level: ReminderLevel,
                    ladder: list[ReminderLevel], overdue: list[tuple[Invoice, Decimal]], days: int,
                    to: str | None, *, on: date, actor: Actor, blockable: bool,
                    postponed_until: date | None) -> Reminder:
    amount_due = sum((due for _, due in overdue), ZERO)
    block_on = None
    following = [lvl for lvl in ladder if lvl.blocks and lvl.level > level.level]
    if blockable and following and not level.blocks:
        nxt = min(following, key=lambda lvl: lvl.level)
        # The blocking level comes when the debt is old enough for it and every level between
        # has had its interval.
        waits = sum(interval(ladder, lvl) for lvl in ladder if level.level < lvl.level <= nxt.level)
        block_on = on + timedelta(days=max(nxt.days_overdue - days, waits, 0))
        if postponed_until is not None and postponed_until >= block_on:
            block_on = postponed_until + timedelta(days=1)
    reminder = Reminder(
        case=case,
        customer_id=customer.id,
        level=level.level,
        issued_on=on,
        pay_by=on + timedelta(days=level.pay_within_days),
        block_on=block_on,
        amount_due=amount_due,
        fee=level.fee or ZERO,
        invoices=[inv for inv, _ in overdue],
    )
    session.add(reminder)
    session.flush()
    currency = customer.location.currency
    if level.fee and level.fee > 0:
        charge = Charge(
            customer_id=customer.id,
            customer_service_id=None,
            billing_plan_id=customer.billing_plan_id,
            period_start=on,
            period_end=on,
            kind=ChargeKind.FEE,
            discriminator=f"reminder:{reminder.id}",
            description=f"Reminder fee (level {level.level})",
            quantity=Decimal(1),
            unit="pcs",
            unit_price=level.fee,
            vat_rate=ZERO,  # compensation for late payment: outside the scope of VAT
            net=level.fee,
            vat=ZERO,
            gross=level.fee,
            currency=currency,
        )
        session.add(charge)
        session.flush()
        reminder.fee_charge_id = charge.id
    before = case.level
    case.level = level.level
    sent = _send(session, customer, to, _l("Payment reminder"), "reminder", reminder=reminder, level=level,
                 invoices=overdue, amount_due=amount_due, currency=currency.value, days_overdue=days,
                 pay_link=pay_url(reminder, renew_on=on))
    if sent:
        reminder.sent_at = utcnow()
    record(session, actor, "dunning.reminder_issued", "reminder", reminder.id,
           {"case_id": case.id, "level": [before, level.level], "amount_due": amount_due,
            "invoices": [inv.number for inv, _ in overdue], "fee": reminder.fee, "fee_charge_id": reminder.fee_charge_id,
            "pay_by": reminder.pay_by, "block_on": block_on, "emailed_to": to if sent else None},
           customer_id=customer.id)
    return reminder


def _block_case(session: Session, case: DebtRecoveryCase, services: list[CustomerService], customer: Customer,
                amount_due: Decimal, to: str | None, *, on: date, actor: Actor) -> None:
    reason = f"Overdue debt {amount_due} {customer.location.currency.value} (debt recovery case #{case.id})"
    for service in services:
        lifecycle.block(session, service, actor=actor, on=on, reason=reason, case=case, today=on)
    before = case.state
    case.state = CaseState.BLOCKED
    case.blocked_on = on
    case.postponed_until = None
    sent = bool(services) and _send(session, customer, to, _l("Your services have been blocked"), "service_blocked",
                                    case=case, services=services, amount_due=amount_due,
                                    currency=customer.location.currency.value)
    record(session, actor, "dunning.case_blocked", "debt_recovery_case", case.id,
           {"state": [before, CaseState.BLOCKED], "blocked_on": [None, on], "services": [s.id for s in services],
            "amount_due": amount_due, "emailed_to": to if sent else None},
           customer_id=customer.id)


def close_case(session: Session, case: DebtRecoveryCase, services: list[CustomerService], customer: Customer,
                to: str | None, *, on: date, actor: Actor) -> None:
    for service in services:
        lifecycle.unblock(session, service, actor=actor, on=on, reason=f"Debt paid (debt recovery case #{case.id})",
                          case=case, today=on)
    before = case.state
    case.state = CaseState.CLOSED
    case.closed_on = on
    case.postponed_until = None
    sent = bool(services) and _send(session, customer, to, _l("Your services are running again"), "service_unblocked",
                                    case=case, services=services)
    record(session, actor, "dunning.case_closed", "debt_recovery_case", case.id,
           {"state": [before, CaseState.CLOSED], "closed_on": [None, on], "unblocked": [s.id for s in services],
            "emailed_to": to if sent else None},
           customer_id=customer.id)


# -- exceptions --------------------------------------------------------------------------------------


def _author(actor: Actor) -> dict:
    return {"created_by_id": actor.id if actor.type == ActorType.OPERATOR else None,
            "created_by_name": actor.name[:200]}


def postpone_blocking(session: Session, customer: Customer, *, until: date, reason: str, actor: Actor,
                      today: date | None = None) -> BlockingException:
    """Staff postpone blocking until a date (inclusive), with a reason: runs up to that day
    remind but do not block. The open case shows state postponed and postponed_until.
    A service already blocked stays blocked."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("Give a reason."), field="reason")
    if until < (today or date.today()):
        raise DomainError(_("The date must not be in the past."), field="until")
    exc = BlockingException(customer_id=customer.id, kind=ExceptionKind.POSTPONE, until=until, reason=reason,
                            **_author(actor))
    session.add(exc)
    session.flush()
    case = open_case(session, customer.id)
    if case is not None and case.state != CaseState.BLOCKED:
        case.state = CaseState.POSTPONED
        case.postponed_until = max(until, case.postponed_until or until)
    record(session, actor, "dunning.blocking_postponed", "blocking_exception", exc.id,
           {"until": [None, until], "reason": reason, "case_id": case.id if case else None}, customer_id=customer.id)
    return exc


def exempt_from_blocking(session: Session, customer: Customer, *, reason: str, actor: Actor) -> BlockingException:
    """Staff exempt a customer from blocking ("never block"), with a reason; also sets
    customer.dunning_exempt. Reminders still go out."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("Give a reason."), field="reason")
    exc = BlockingException(customer_id=customer.id, kind=ExceptionKind.NEVER_BLOCK, until=None, reason=reason,
                            **_author(actor))
    session.add(exc)
    before = customer.dunning_exempt
    customer.dunning_exempt = True
    session.flush()
    record(session, actor, "dunning.exempted", "blocking_exception", exc.id,
           {"dunning_exempt": [before, True], "reason": reason}, customer_id=customer.id)
    return exc


def revoke_exception(session: Session, exception: BlockingException, *, actor: Actor,
                     today: date | None = None) -> None:
    """End an exception early. Revoking the last "never block" clears customer.dunning_exempt;
    revoking a postponement puts a postponed case back to reminded (or to the next
    postponement still running)."""
    if exception.revoked_at is not None:
        raise DomainError(_("This exception was already revoked."))
    exception.revoked_at = utcnow()
    exception.revoked_by_id = actor.id if actor.type == ActorType.OPERATOR else None
    session.flush()
    customer = exception.customer
    changes: dict = {"kind": exception.kind, "revoked_at": [None, exception.revoked_at]}
    never, until = active_exceptions(session, customer.id, today or date.today())
    if exception.kind == ExceptionKind.NEVER_BLOCK and not never and customer.dunning_exempt:
        customer.dunning_exempt = False
        changes["dunning_exempt"] = [True, False]
    if exception.kind == ExceptionKind.POSTPONE:
        case = open_case(session, customer.id)
        if case is not None and case.state == CaseState.POSTPONED:
            case.state = CaseState.POSTPONED if until else CaseState.REMINDED
            case.postponed_until = until
            changes["case_state"] = [CaseState.POSTPONED, case.state]
    record(session, actor, "dunning.exception_revoked", "blocking_exception", exception.id, changes,
           customer_id=customer.id)


# -- what staff see --------------------------------------------------------------------------------


class DunningRunRefused(DomainError):
    """A dunning run cannot be started by this operator."""


def check_run_scope(location_ids) -> None:
    """A dunning run (and its preview) covers every customer of every location: it may block
    services anywhere, so only an operator without location limits (`location_ids` None)
    may run or preview it."""
    if location_ids is not None:
        raise DunningRunRefused(_("A dunning run covers every location; only an operator without location limits "
                                  "may start or preview one."))


@dataclass
class LevelSummary:
    """Open debt recovery cases at one level: how many, in which state, and the overdue debt."""

    level: int
    cases: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, Decimal] = field(default_factory=dict)  # per currency


def dunning_overview(session: Session, *, on: date, location_ids=None) -> list[LevelSummary]:
    """Open cases (not closed) per level, with their states and the debt overdue on `on`
    (gross − paid − credited of issued invoices due before `on`) per currency, limited to
    the customers of `location_ids` (None = all). Two queries."""
    scope = [] if location_ids is None else [Customer.location_id.in_(list(location_ids))]
    levels: dict[int, LevelSummary] = {}
    for level, state, count in session.execute(
        select(DebtRecoveryCase.level, DebtRecoveryCase.state, func.count(DebtRecoveryCase.id))
        .join(Customer, Customer.id == DebtRecoveryCase.customer_id)
        .where(DebtRecoveryCase.state != CaseState.CLOSED, *scope)
        .group_by(DebtRecoveryCase.level, DebtRecoveryCase.state)
    ):
        s = levels.setdefault(level, LevelSummary(level))
        s.cases += count
        key = state.value if hasattr(state, "value") else str(state)
        s.by_state[key] = s.by_state.get(key, 0) + count
    due = Invoice.gross_total - Invoice.paid_amount - Invoice.credited_amount
    for level, currency, amount in session.execute(
        select(DebtRecoveryCase.level, Invoice.currency, func.sum(due))
        .join(Customer, Customer.id == DebtRecoveryCase.customer_id)
        .join(Invoice, Invoice.customer_id == DebtRecoveryCase.customer_id)
        .where(DebtRecoveryCase.state != CaseState.CLOSED, Invoice.type == InvoiceType.INVOICE,
               Invoice.state == InvoiceState.ISSUED, Invoice.due_date < on, due > 0, *scope)
        .group_by(DebtRecoveryCase.level, Invoice.currency)
    ):
        s = levels.setdefault(level, LevelSummary(level))
        key = currency.value if hasattr(currency, "value") else str(currency)
        s.overdue[key] = Decimal(str(amount or 0)).quantize(Decimal("0.01"))
    return [levels[k] for k in sorted(levels)]


def blocking_forecast(session: Session, customer_id: int, active_services: list, today: date) -> dict | None:
    """When will dunning block this customer's services, and for what debt?

    Only while it is under way: an open case whose reminder set a blocking date, services
    still active, an overdue debt, no "never block" exception. A postponement (of the
    customer or of the case) that reaches the blocking date moves it to the day after —
    the run does not block until the postponement has passed. Returns {"block_on",
    "services", "amounts" (per currency), "invoice" (the oldest overdue)} or None."""
    case = open_case(session, customer_id)
    if case is None or not active_services:
        return None
    reminder = session.scalar(
        select(Reminder).where(Reminder.case_id == case.id, Reminder.block_on.is_not(None))
        .order_by(Reminder.id.desc()).limit(1)
    )
    if reminder is None:
        return None
    never, postponed_until = active_exceptions(session, customer_id, today)
    if never:
        return None
    overdue = overdue_invoices(session, customer_id, today)
    if not overdue:
        return None
    block_on = reminder.block_on
    for until in (postponed_until, case.postponed_until):
        if until is not None and until >= block_on:
            block_on = until + timedelta(days=1)
    amounts: dict[str, Decimal] = {}
    for invoice, due in overdue:
        amounts[invoice.currency.value] = amounts.get(invoice.currency.value, ZERO) + due
    return {"block_on": block_on, "services": list(active_services), "amounts": amounts, "invoice": overdue[0][0]}
