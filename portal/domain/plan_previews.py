"""Plan changes as pages show them before they happen: what a change costs for the rest of
the period (`plan_change_preview`) and the changes already scheduled (`pending_plan_changes`),
whose successor services are shown on the service that changes. Nothing here writes.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.periods import period_bounds, price_on, prorated, split_vat
from portal.models import (
    CustomerService,
    ServiceDefinition,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
)


@dataclass(frozen=True)
class PendingPlanChange:
    """A plan change scheduled for a later date: the service keeps running as it is until
    `on`, then continues as `successor` (already created, in state ordered, on `target`)."""

    service: CustomerService
    successor: CustomerService
    target: ServiceDefinition
    on: date


def pending_plan_changes(session: Session, services: Iterable[CustomerService]) -> dict[int, PendingPlanChange]:
    """The scheduled plan changes of `services`, by the id of the service that changes. A
    customer has one service through a scheduled change: its successor is the pending
    change of that service, not a second service. One query (none without a change)."""
    services = list(services)
    changing = {s.id: s for s in services if s.replaced_by_id is not None and s.state != ServiceState.CANCELLED}
    if not changing:
        return {}
    known = {s.id: s for s in services}
    pending: dict[int, PendingPlanChange] = {}
    for event in session.scalars(
        select(ServiceEvent).where(
            ServiceEvent.customer_service_id.in_(changing), ServiceEvent.kind == ServiceEventKind.CHANGED,
            ServiceEvent.scheduled_for.is_not(None), ServiceEvent.done_at.is_(None),
        ).order_by(ServiceEvent.scheduled_for, ServiceEvent.id)
    ):
        service = changing[event.customer_service_id]
        successor = known.get(service.replaced_by_id) or session.get(CustomerService, service.replaced_by_id)
        if successor is None or service.id in pending:
            continue
        pending[service.id] = PendingPlanChange(service, successor, successor.definition, event.scheduled_for)
    return pending


def without_pending_successors(services: Iterable[CustomerService],
                               pending: dict[int, PendingPlanChange]) -> list[CustomerService]:
    """`services` less the successors of scheduled plan changes (shown on their predecessor)."""
    hidden = {p.successor.id for p in pending.values()}
    return [s for s in services if s.id not in hidden]
def plan_change_preview(service: CustomerService, target: ServiceDefinition, on: date) -> dict:
    """What the change costs for the rest of the current period: the old and the new price
    prorated from `on` to the end of the service's period containing `on` (net, VAT, gross,
    each rounded half-up), and the difference new − old. Writes nothing."""
    start, end = period_bounds(service.definition.period, on)
    old_amount = prorated(price_on(service, on), service.definition.period, on, end)
    # The new tariff's price per its own period, turned into the same days.
    new_price = price_on(service, on, definition=target)
    new_amount = prorated(new_price, target.period, on, end)
    old = split_vat(old_amount, service.definition.vat_rate, service.definition.price_includes_vat)
    new = split_vat(new_amount, target.vat_rate, target.price_includes_vat)
    return {
        "effective_on": on,
        "period_start": start,
        "period_end": end,
        "days": (end - on).days + 1,
        "days_in_period": (end - start).days + 1,
        "currency": service.customer.location.currency.value,
        "old": {"definition_id": service.definition_id, "name": service.definition.customer_name,
                "price": price_on(service, on), **old},
        "new": {"definition_id": target.id, "name": target.customer_name, "price": new_price, **new},
        "difference": {k: new[k] - old[k] for k in ("net", "vat", "gross")},
    }
