"""The credit for the days a service was blocked: when staff unblock a service with
`credit_blocked_days`, the customer gets a negative `credit` charge for those days, which the
next billing run puts on their invoice (`lifecycle.unblock` calls `credit_blocked_days`).
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.domain.periods import price_on, prorated, split_vat
from portal.models import (
    Charge,
    ChargeKind,
    CustomerService,
    Period,
    ServiceEvent,
)


def credit_blocked_days(session: Session, service: CustomerService, blocked_from: date,
                        event: ServiceEvent) -> Charge | None:
    """A negative `credit` charge for the days from the block's effective date up to the day
    before the unblock, prorated like a service charge (price per period × days / days in the
    period, per period touched). It waits uninvoiced, so the next billing run puts it on the
    customer's invoice. Discriminator = the unblock event's id: one credit per unblock."""
    last = event.effective_on - timedelta(days=1)
    if last < blocked_from or service.definition.period == Period.ONE_OFF:
        return None
    definition = service.definition
    amount = prorated(price_on(service, blocked_from), definition.period, blocked_from, last)
    parts = split_vat(amount, definition.vat_rate, definition.price_includes_vat)
    if parts["gross"] == 0:
        return None
    days = (last - blocked_from).days + 1
    charge = Charge(
        customer_id=service.customer_id,
        customer_service_id=service.id,
        billing_plan_id=service.billing_plan_id or service.customer.billing_plan_id,
        period_start=blocked_from,
        period_end=last,
        kind=ChargeKind.CREDIT,
        discriminator=str(event.id),
        description=f"Credit for {days} blocked day{'s' if days != 1 else ''} "
                    f"({blocked_from.isoformat()} – {last.isoformat()}): {definition.customer_name}",
        quantity=Decimal(1),
        unit="pcs",
        unit_price=-parts["net"],
        vat_rate=definition.vat_rate,
        net=-parts["net"],
        vat=-parts["vat"],
        gross=-parts["gross"],
        currency=service.customer.location.currency,
    )
    if hasattr(Charge, "price_includes_vat"):
        # The billing run's VAT recapitulation keeps the gross of VAT-inclusive tariffs fixed.
        charge.price_includes_vat = definition.price_includes_vat
    session.add(charge)
    session.flush()
    return charge
