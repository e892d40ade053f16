"""A plan change as the customer and staff ask for it: the lifecycle step and its paperwork.

`lifecycle.change_plan` closes the old service and opens its successor; the agreement rules
add the annex that amends the agreement covering the old service (domain.md §3 "Plan change").
This rule joins the two, so lifecycle does not import agreements (which builds on lifecycle).
"""
from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from portal.domain import lifecycle
from portal.domain.actors import Actor
from portal.domain.agreements import create_annex_for_plan_change
from portal.models import CustomerService, ServiceDefinition


def change_plan(session: Session, service: CustomerService, target: ServiceDefinition, *, actor: Actor,
                on: date | None = None, reason: str = "", today: date | None = None) -> CustomerService:
    """`lifecycle.change_plan` (same rules, returns the successor) with the annex to the
    agreement covering `service`: issued at once, covering the successor, dated as the change.
    No annex when there is no annex type or no agreement covers the service — a plan change
    never fails for want of paperwork (`agreements.create_annex_for_plan_change`)."""
    return lifecycle.change_plan(session, service, target, actor=actor, on=on, reason=reason, today=today,
                                 paperwork=create_annex_for_plan_change)
