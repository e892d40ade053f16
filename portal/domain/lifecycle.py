"""A customer service's life: order, activate, block, unblock, change plan, cancel.

The rules table (action → states it may start from → state it leads to):

    ============  ===========================  ======================================
    action        from                         to
    ============  ===========================  ======================================
    activate      ordered                      active
    block         active                       blocked
    unblock       blocked                      active
    change_plan   active, blocked              cancelled (old) + successor in the old state
    cancel        ordered, active, blocked     cancelled
    ============  ===========================  ======================================

Anything else raises `TransitionNotAllowed`. Every step writes a `ServiceEvent` (from/to
state, effective date, reason, actor) and an audit entry. A step dated after `today` is
stored as *scheduled* (`scheduled_for` set, `done_at` null, the state untouched) and carried
out by `apply_scheduled` (`flask services apply-scheduled`), which checks the rules again on
that day: a step that no longer fits (say, an unblock for a service cancelled meanwhile) is
closed as refused instead of applied.

Price and period arithmetic is in `periods`, the plan-change previews in `plan_previews` (both
importable from here); `plan_change.change_plan` adds the agreement annex to a plan change.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.blocked_credit import credit_blocked_days
from portal.domain.network import carry_over, provision
from portal.domain.periods import (  # re-exported: moved to periods (used here too)
    CENT,
    add_months,
    next_period_start,
    period_bounds,
    price_on,
    prorated,
    split_vat,
)
from portal.domain.plan_previews import (  # re-exported: moved to plan_previews
    PendingPlanChange,
    pending_plan_changes,
    plan_change_preview,
    without_pending_successors,
)
from portal.domain.wording import day
from portal.models import (
    BillingPlan,
    Customer,
    CustomerService,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)
from portal.models.base import utcnow

__all__ = [
    "activate", "ACTIVE", "add_months", "allowed_actions", "apply_scheduled", "block", "BLOCKED",
    "blocking_event", "cancel", "CANCELLED", "CENT", "change_plan", "check_cancel",
    "check_change_plan", "earliest_end_date", "next_period_start", "order_service", "ORDERED",
    "pending_events", "pending_plan_changes", "PendingPlanChange", "period_bounds",
    "plan_change_preview", "price_on", "prorated", "RULES", "split_vat", "TransitionNotAllowed",
    "unblock", "without_pending_successors",
]

ORDERED, ACTIVE, BLOCKED, CANCELLED = (
    ServiceState.ORDERED,
    ServiceState.ACTIVE,
    ServiceState.BLOCKED,
    ServiceState.CANCELLED,
)

# The rules table: action → (states it may start from, state it leads to; None = keeps it).
RULES: dict[str, tuple[frozenset[ServiceState], ServiceState | None]] = {
    "activate": (frozenset({ORDERED}), ACTIVE),
    "block": (frozenset({ACTIVE}), BLOCKED),
    "unblock": (frozenset({BLOCKED}), ACTIVE),
    "change_plan": (frozenset({ACTIVE, BLOCKED}), None),
    "cancel": (frozenset({ORDERED, ACTIVE, BLOCKED}), CANCELLED),
}

# Which action a (scheduled) event carries out.
_ACTION_OF_KIND = {
    ServiceEventKind.ACTIVATED: "activate",
    ServiceEventKind.BLOCKED: "block",
    ServiceEventKind.UNBLOCKED: "unblock",
    ServiceEventKind.CHANGED: "change_plan",
    ServiceEventKind.CANCELLED: "cancel",
}

# Why an action is refused from the service's state (formatted with the state's value).
_REFUSED_FROM = {
    "activate": _l("A service in state “%(state)s” cannot be activated."),
    "block": _l("A service in state “%(state)s” cannot be blocked."),
    "unblock": _l("A service in state “%(state)s” cannot be unblocked."),
    "change_plan": _l("A service in state “%(state)s” cannot be changed to another plan."),
    "cancel": _l("A service in state “%(state)s” cannot be cancelled."),
}


class TransitionNotAllowed(DomainError):
    """The service's state (or the catalogue) does not allow this step."""


# -- the rules ---------------------------------------------------------------------------------


def allowed_actions(service: CustomerService) -> list[str]:
    """The actions the rules table allows from the service's current state (for buttons)."""
    return [a for a, (sources, _to) in RULES.items() if service.state in sources]


def _check(service: CustomerService, action: str) -> None:
    sources, _to = RULES[action]
    if service.state not in sources:
        raise TransitionNotAllowed(_REFUSED_FROM[action] % {"state": service.state.value})


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("Give a reason."), field="reason")
    return reason


def pending_events(service: CustomerService) -> list[ServiceEvent]:
    return [e for e in service.events if e.scheduled_for is not None and e.done_at is None]


def _event(session: Session, service: CustomerService, kind: ServiceEventKind, *, actor: Actor,
           on: date, from_state: ServiceState | None, to_state: ServiceState | None, reason: str = "",
           scheduled: bool = False, case=None, details: dict | None = None,
           visible: bool = True) -> ServiceEvent:
    event = ServiceEvent(
        customer_service=service,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        effective_on=on,
        scheduled_for=on if scheduled else None,
        done_at=None if scheduled else utcnow(),
        reason=reason,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name[:200],
        debt_recovery_case_id=case.id if case is not None else None,
        details=details or {},
        visible_to_customer=visible,
    )
    session.add(event)
    session.flush()
    return event


def _audit(session: Session, actor: Actor, action: str, service: CustomerService, event: ServiceEvent,
           changes: dict | None = None) -> None:
    changes = dict(changes or {})
    changes.setdefault("event_id", event.id)
    changes.setdefault("effective_on", event.effective_on)
    if event.reason:
        changes.setdefault("reason", event.reason)
    record(session, actor, action, "customer_service", service.id, changes, customer_id=service.customer_id)


def _is_future(on: date, today: date | None) -> bool:
    return on > (today or date.today())


# -- order and activate ------------------------------------------------------------------------


def order_service(session: Session, customer: Customer, definition: ServiceDefinition, *, actor: Actor,
                  ordered_on: date, billing_plan: BillingPlan | None = None,
                  price_override: Decimal | None = None, installation_street: str = "",
                  installation_city: str = "", installation_postal_code: str = "",
                  variable_symbol: str | None = None, reason: str = "") -> CustomerService:
    """Record an order: a new service in state `ordered`. Only an active definition valid
    on the order date may be ordered."""
    if not definition.active:
        raise TransitionNotAllowed(_("“%(name)s” is no longer offered.", name=definition.name), field="definition")
    if definition.valid_from > ordered_on or (definition.valid_to is not None and definition.valid_to < ordered_on):
        raise TransitionNotAllowed(
            _("“%(name)s” cannot be ordered on %(day)s.", name=definition.name, day=day(ordered_on)),
            field="definition",
        )
    if price_override is not None and price_override < 0:
        raise DomainError(_("A price cannot be negative."), field="price_override")
    service = CustomerService(
        customer=customer,
        definition=definition,
        billing_plan=billing_plan,
        state=ORDERED,
        ordered_on=ordered_on,
        price_override=price_override,
        installation_street=installation_street,
        installation_city=installation_city,
        installation_postal_code=installation_postal_code,
        variable_symbol=variable_symbol,
    )
    session.add(service)
    session.flush()
    event = _event(session, service, ServiceEventKind.ORDERED, actor=actor, on=ordered_on, from_state=None,
                   to_state=ORDERED, reason=reason, details={"definition_id": definition.id})
    _audit(session, actor, "service.ordered", service, event,
           {"state": [None, ORDERED], "definition_id": [None, definition.id],
            "price_override": [None, price_override]})
    return service


def _apply_activate(session: Session, service: CustomerService, event: ServiceEvent) -> dict:
    on = event.effective_on
    service.state = ACTIVE
    service.activated_on = on
    service.billing_from = on
    months = service.definition.commitment_months
    service.commitment_until = add_months(on, months) if months else None
    return {"activated_on": [None, on], "billing_from": [None, on], "commitment_until": [None, service.commitment_until]}


def activate(session: Session, service: CustomerService, *, actor: Actor, on: date, reason: str = "",
             today: date | None = None) -> ServiceEvent:
    """ordered → active: sets activated_on, billing_from = `on` and commitment_until =
    `on` + the definition's commitment months (none without a commitment)."""
    return _step(session, service, "activate", ServiceEventKind.ACTIVATED, actor=actor, on=on, reason=reason,
                 today=today)


# -- block and unblock -------------------------------------------------------------------------


def _apply_block(session: Session, service: CustomerService, event: ServiceEvent) -> dict:
    service.state = BLOCKED
    return {}


def block(session: Session, service: CustomerService, *, actor: Actor, on: date, reason: str, case=None,
          today: date | None = None, details: dict | None = None) -> ServiceEvent:
    """active → blocked, with a reason. When dunning blocks, `case` (the debt recovery case)
    is linked to the event, which is how the unblock later knows what dunning blocked.
    Another rule that blocks marks its events the same way through `details` (the agreement
    acceptance rule: {"agreement_id": …}). A blocked service is still charged (domain.md §3)."""
    reason = _require_reason(reason)
    return _step(session, service, "block", ServiceEventKind.BLOCKED, actor=actor, on=on, reason=reason,
                 case=case, today=today, details=details)


def blocking_event(service: CustomerService) -> ServiceEvent | None:
    """The done event that put the service into its current blocked state (a block, or a
    plan change that carried a blocked state over to this successor)."""
    done = [e for e in service.events if e.done_at is not None and e.to_state == BLOCKED]
    return max(done, key=lambda e: (e.effective_on, e.id)) if done else None


def _apply_unblock(session: Session, service: CustomerService, event: ServiceEvent) -> dict:
    blocked = blocking_event(service)
    service.state = ACTIVE
    changes: dict = {}
    if event.details.get("credit_blocked_days") and blocked is not None:
        charge = credit_blocked_days(session, service, blocked.effective_on, event)
        if charge is not None:
            event.details = {**event.details, "credit_charge_id": charge.id, "credit_gross": str(charge.gross)}
            changes["credit_charge_id"] = [None, charge.id]
            changes["credit_gross"] = [None, charge.gross]
    return changes


def unblock(session: Session, service: CustomerService, *, actor: Actor, on: date, reason: str, case=None,
            credit_blocked_days: bool = False, today: date | None = None) -> ServiceEvent:
    """blocked → active, with a reason. With `credit_blocked_days` the customer is credited
    for the days the service was blocked: a negative `credit` charge (prorated, VAT as the
    service's) that the next billing run invoices; see `blocked_credit.credit_blocked_days`."""
    reason = _require_reason(reason)
    return _step(session, service, "unblock", ServiceEventKind.UNBLOCKED, actor=actor, on=on, reason=reason,
                 case=case, today=today, details={"credit_blocked_days": bool(credit_blocked_days)})


# -- cancel ------------------------------------------------------------------------------------


def earliest_end_date(service: CustomerService, today: date) -> date:
    """The earliest day a cancellation may take effect: max(today + notice days, end of the
    commitment)."""
    end = today + timedelta(days=service.definition.notice_days)
    if service.commitment_until is not None and service.commitment_until > end:
        end = service.commitment_until
    return end


def _apply_cancel(session: Session, service: CustomerService, event: ServiceEvent) -> dict:
    on = event.effective_on
    before = {"cancelled_on": service.cancelled_on, "billing_to": service.billing_to}
    service.state = CANCELLED
    service.cancelled_on = on
    if service.billing_from is not None:
        service.billing_to = on  # the last billed day
    return {"cancelled_on": [before["cancelled_on"], on], "billing_to": [before["billing_to"], service.billing_to]}


def cancel(session: Session, service: CustomerService, *, actor: Actor, on: date | None = None, reason: str,
           waive_notice: bool = False, today: date | None = None) -> ServiceEvent:
    """ordered|active|blocked → cancelled on `on` (default: the earliest end date).
    A date before the earliest end date (notice period, commitment) is refused unless staff
    waive it. A future date records a `cancel_requested` event now and schedules the
    cancellation; when it is carried out it sets cancelled_on and billing_to = `on`.
    Returns the cancellation event (pending when scheduled)."""
    today = today or date.today()
    reason = _require_reason(reason)
    _check(service, "cancel")
    earliest = earliest_end_date(service, today)
    if on is None:
        on = earliest
    if on < earliest and not waive_notice:
        # The date stays ISO here: tests/domain/test_lifecycle.py pins it in this message.
        if service.commitment_until and service.commitment_until >= earliest:
            message = _("The earliest possible end date is %(day)s (notice period and commitment).",
                        day=earliest.isoformat())
        else:
            message = _("The earliest possible end date is %(day)s (notice period).", day=earliest.isoformat())
        raise TransitionNotAllowed(message, field="on")
    if service.billing_from is not None and on < service.billing_from:
        raise TransitionNotAllowed(
            _("A cancellation cannot take effect before billing started (%(day)s).", day=day(service.billing_from)),
            field="on",
        )
    _refuse_if_pending(service, {ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED})
    details = {"waived_notice": bool(waive_notice and on < earliest), "earliest_end": earliest.isoformat()}
    if on > today:
        requested = _event(session, service, ServiceEventKind.CANCEL_REQUESTED, actor=actor, on=today,
                           from_state=service.state, to_state=service.state, reason=reason,
                           details={**details, "cancel_on": on.isoformat()})
        _audit(session, actor, "service.cancel_requested", service, requested, {"cancel_on": on})
    return _step(session, service, "cancel", ServiceEventKind.CANCELLED, actor=actor, on=on, reason=reason,
                 today=today, details=details)


def _refuse_if_pending(service: CustomerService, kinds: set[ServiceEventKind]) -> None:
    for e in pending_events(service):
        if e.kind in kinds:
            if e.kind == ServiceEventKind.CANCELLED:
                raise TransitionNotAllowed(
                    _("The service already has a cancellation scheduled for %(day)s.", day=day(e.scheduled_for))
                )
            raise TransitionNotAllowed(
                _("The service already has a plan change scheduled for %(day)s.", day=day(e.scheduled_for))
            )


def check_cancel(service: CustomerService, *, on: date | None, waive_notice: bool = False,
                 today: date | None = None) -> date:
    """What `cancel` would check, without writing: returns the end date it would take
    effect on, or raises as `cancel` would (for a confirmation page before the step)."""
    today = today or date.today()
    _check(service, "cancel")
    earliest = earliest_end_date(service, today)
    on = on or earliest
    if on < earliest and not waive_notice:
        raise TransitionNotAllowed(_("The earliest possible end date is %(day)s.", day=day(earliest)), field="on")
    if service.billing_from is not None and on < service.billing_from:
        raise TransitionNotAllowed(
            _("A cancellation cannot take effect before billing started (%(day)s).", day=day(service.billing_from)),
            field="on",
        )
    _refuse_if_pending(service, {ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED})
    return on


# -- plan change -------------------------------------------------------------------------------


def _check_target(service: CustomerService, target: ServiceDefinition, on: date) -> None:
    if target.id not in {t.id for t in service.definition.allowed_targets}:
        raise TransitionNotAllowed(
            _("“%(old)s” cannot be changed to “%(new)s”.", old=service.definition.name, new=target.name),
            field="target",
        )
    if not target.active or target.valid_from > on or (target.valid_to is not None and target.valid_to < on):
        raise TransitionNotAllowed(_("“%(name)s” is not offered on %(day)s.", name=target.name, day=day(on)),
                                   field="target")


def change_plan(session: Session, service: CustomerService, target: ServiceDefinition, *, actor: Actor,
                on: date | None = None, reason: str = "", today: date | None = None,
                paperwork: Callable[..., object] | None = None) -> CustomerService:
    """Change an active or blocked service to another definition; only to the definition's
    allowed targets. Effective on `on` (default: the first day of the service's next period).

    The change keeps the state: the old service's billing closes (billing_to = `on` − 1 day,
    state cancelled, replaced_by = the new one) and a successor service opens (same customer,
    billing plan, installation and variable symbol; the old state; billing from `on`;
    commitment = the later of the old one and `on` + the target's commitment). Both get a
    `changed` event. For a future date the successor is created at once in state `ordered`
    (so it can be shown and referred to) and both `changed` events are scheduled.
    `paperwork`, when given, is called as paperwork(session, service, successor, actor=…,
    on=…, today=…) once both events are written and before the change is carried out
    (`plan_change.change_plan` passes the agreement annex this way).
    Returns the successor."""
    today = today or date.today()
    on = check_change_plan(service, target, on=on, today=today)
    scheduled = on > today
    successor = CustomerService(
        customer_id=service.customer_id,
        definition=target,
        billing_plan_id=service.billing_plan_id,
        state=ORDERED,
        ordered_on=min(today, on),
        variable_symbol=service.variable_symbol,
        installation_street=service.installation_street,
        installation_city=service.installation_city,
        installation_postal_code=service.installation_postal_code,
    )
    session.add(successor)
    session.flush()
    service.replaced_by_id = successor.id
    details = {"from_definition_id": service.definition_id, "to_definition_id": target.id}
    old_event = _event(session, service, ServiceEventKind.CHANGED, actor=actor, on=on, from_state=service.state,
                       to_state=CANCELLED, reason=reason, scheduled=scheduled,
                       details={**details, "role": "replaced", "successor_id": successor.id})
    new_event = _event(session, successor, ServiceEventKind.CHANGED, actor=actor, on=on, from_state=ORDERED,
                       to_state=None, reason=reason, scheduled=scheduled,
                       details={**details, "role": "successor", "predecessor_id": service.id})
    old_event.details = {**old_event.details, "partner_event_id": new_event.id}
    if paperwork is not None:
        paperwork(session, service, successor, actor=actor, on=on, today=today)
    if scheduled:
        _audit(session, actor, "service.change_scheduled", service, old_event,
               {"to_definition_id": target.id, "successor_id": successor.id})
        return successor
    _apply_change(session, service, old_event, actor)
    return successor


def check_change_plan(service: CustomerService, target: ServiceDefinition, *, on: date | None,
                      today: date | None = None) -> date:
    """What `change_plan` would check, without writing: returns the effective date, or
    raises as `change_plan` would (for a confirmation page before the step)."""
    today = today or date.today()
    _check(service, "change_plan")
    if on is None:
        on = max(next_period_start(service.definition.period, today), today)
    _check_target(service, target, on)
    if service.billing_from is not None and on <= service.billing_from:
        raise TransitionNotAllowed(
            _("A plan change takes effect after billing started (%(day)s).", day=day(service.billing_from)),
            field="on",
        )
    _refuse_if_pending(service, {ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED})
    return on


def _apply_change(session: Session, service: CustomerService, old_event: ServiceEvent, actor: Actor) -> dict:
    """Carry out a plan change: close the old service, open its successor in the old state."""
    on = old_event.effective_on
    successor = session.get(CustomerService, old_event.details["successor_id"])
    new_event = session.get(ServiceEvent, old_event.details["partner_event_id"])
    state = service.state
    target = successor.definition
    service.state = CANCELLED
    service.cancelled_on = on
    service.billing_to = on - timedelta(days=1)
    service.replaced_by_id = successor.id
    successor.state = state
    successor.activated_on = on
    successor.billing_from = on
    commitment = add_months(on, target.commitment_months) if target.commitment_months else None
    if service.commitment_until and (commitment is None or service.commitment_until > commitment):
        commitment = service.commitment_until
    successor.commitment_until = commitment
    now = utcnow()
    old_event.from_state, old_event.to_state, old_event.done_at = state, CANCELLED, now
    new_event.from_state, new_event.to_state, new_event.done_at = ORDERED, state, now
    if state == BLOCKED:
        # The successor stays blocked for the same cause: a dunning block carries its case over,
        # so paying the debt unblocks the successor too.
        blocked = blocking_event(service)
        if blocked is not None:
            new_event.debt_recovery_case_id = blocked.debt_recovery_case_id
            # Likewise a block for an unaccepted agreement: accepting it unblocks the successor.
            if blocked.details.get("agreement_id") is not None:
                new_event.details = {**new_event.details, "agreement_id": blocked.details["agreement_id"]}
    carry_over(session, service, successor)  # the identity moves on; the network learns the new speeds
    changes = {"state": [state, CANCELLED], "billing_to": [None, service.billing_to],
               "replaced_by_id": [None, successor.id], "to_definition_id": [None, target.id]}
    _audit(session, actor, "service.changed", service, old_event, changes)
    _audit(session, actor, "service.changed", successor, new_event,
           {"state": [ORDERED, state], "billing_from": [None, on], "predecessor_id": [None, service.id]})
    return changes


# -- one step, now or scheduled ----------------------------------------------------------------

_APPLY = {
    "activate": _apply_activate,
    "block": _apply_block,
    "unblock": _apply_unblock,
    "cancel": _apply_cancel,
}


def _step(session: Session, service: CustomerService, action: str, kind: ServiceEventKind, *, actor: Actor,
          on: date, reason: str, today: date | None, case=None, details: dict | None = None) -> ServiceEvent:
    """Check the rules table, write the event; carry it out now, or schedule it."""
    _check(service, action)
    _from, to_state = RULES[action]
    if _is_future(on, today):
        event = _event(session, service, kind, actor=actor, on=on, from_state=service.state, to_state=to_state,
                       reason=reason, scheduled=True, case=case, details=details)
        _audit(session, actor, f"service.{kind.value}_scheduled", service, event, {"scheduled_for": on})
        return event
    from_state = service.state
    event = _event(session, service, kind, actor=actor, on=on, from_state=from_state, to_state=to_state,
                   reason=reason, case=case, details=details)
    changes = _APPLY[action](session, service, event)
    provision(session, service, reason=action)  # the network's desired state, same transaction
    _audit(session, actor, f"service.{kind.value}", service, event,
           {"state": [from_state, to_state], **changes, **({"case_id": case.id} if case is not None else {})})
    return event


def apply_scheduled(session: Session, *, today: date, actor: Actor) -> int:
    """Carry out the scheduled steps due by `today`, oldest first (by date, then by when they
    were scheduled). Each is checked against the rules table again: a step that no longer
    fits is closed as refused (details["refused"] says why), never half-applied; a refused
    plan change also withdraws its successor. Returns how many steps were carried out."""
    due: Iterable[ServiceEvent] = session.scalars(
        select(ServiceEvent)
        .where(ServiceEvent.scheduled_for.is_not(None), ServiceEvent.done_at.is_(None),
               ServiceEvent.scheduled_for <= today)
        .order_by(ServiceEvent.scheduled_for, ServiceEvent.id)
    ).all()
    applied = 0
    for event in due:
        if event.done_at is not None or event.details.get("role") == "successor":
            continue  # a successor's event is carried out with its partner
        service = event.customer_service
        action = _ACTION_OF_KIND.get(event.kind)
        if action is None:
            _refuse(session, event, actor, "Not a step that can be scheduled.")
            continue
        try:
            _check(service, action)
            if action == "change_plan":
                _check_target(service, session.get(ServiceDefinition, event.details["to_definition_id"]),
                              event.effective_on)
                successor = session.get(CustomerService, event.details["successor_id"])
                if successor is None or successor.state != ORDERED:
                    raise TransitionNotAllowed(_("The new service was withdrawn meanwhile."))
        except TransitionNotAllowed as exc:
            _refuse(session, event, actor, str(exc))
            continue
        if action == "change_plan":
            _apply_change(session, service, event, actor)
        else:
            from_state = service.state
            _from, to_state = RULES[action]
            changes = _APPLY[action](session, service, event)
            provision(session, service, reason=action)
            event.from_state, event.to_state, event.done_at = from_state, to_state, utcnow()
            _audit(session, actor, f"service.{event.kind.value}", service, event,
                   {"state": [from_state, to_state], "scheduled_by": event.actor_name, **changes})
        applied += 1
    session.flush()
    return applied


def _refuse(session: Session, event: ServiceEvent, actor: Actor, message: str) -> None:
    event.done_at = utcnow()
    event.to_state = event.from_state = event.customer_service.state
    event.details = {**event.details, "refused": message}
    _audit(session, actor, f"service.{event.kind.value}_refused", event.customer_service, event, {"refused": message})
    if event.kind == ServiceEventKind.CHANGED and event.details.get("successor_id"):
        successor = session.get(CustomerService, event.details["successor_id"])
        partner = session.get(ServiceEvent, event.details.get("partner_event_id"))
        if partner is not None and partner.done_at is None:
            partner.done_at = utcnow()
            partner.details = {**partner.details, "refused": message}
        if successor is not None and successor.state == ORDERED:
            successor.state = CANCELLED
            successor.cancelled_on = event.effective_on
            _audit(session, actor, "service.cancelled", successor, partner or event,
                   {"state": [ORDERED, CANCELLED], "reason": "plan change refused: " + message})
        if event.customer_service.replaced_by_id == event.details["successor_id"]:
            event.customer_service.replaced_by_id = None
