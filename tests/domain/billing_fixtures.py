"""Data builders for the billing tests (on top of tests/factories.py)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.actors import Actor
from portal.extensions import db
from portal.models import (
    Aggregation,
    Charge,
    ChargeKind,
    Currency,
    Discount,
    DiscountKind,
    Invoice,
    Period,
    Rounding,
    ServiceState,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from tests.factories import (
    BillingPlanFactory,
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

ACTOR = Actor.system("test")
D = Decimal


class World:
    """One location and billing plan; helpers to add customers and services."""

    _trackers = 0

    def __init__(self, prefix: str = "1", series: str = "FV", currency: Currency = Currency.CZK):
        self.location = LocationFactory(invoice_series_prefix=prefix, currency=currency)
        self.plan = BillingPlanFactory(series=series, due_days=14, constant_symbol="0308")

    def customer(self, **kw):
        kw.setdefault("location", self.location)
        kw.setdefault("billing_plan", self.plan)
        return CustomerFactory(**kw)

    def definition(self, price="605.00", vat="21.00", includes_vat=True, period=Period.MONTHLY, **kw):
        return ServiceDefinitionFactory(price=D(price), vat_rate=D(vat), price_includes_vat=includes_vat,
                                        period=period, **kw)

    def service(self, customer=None, definition=None, billing_from=date(2024, 1, 1), billing_to=None,
                state=ServiceState.ACTIVE, **kw):
        customer = customer or self.customer()
        definition = definition or self.definition()
        return CustomerServiceFactory(customer=customer, definition=definition, billing_from=billing_from,
                                      billing_to=billing_to, state=state,
                                      cancelled_on=billing_to if state == ServiceState.CANCELLED else None, **kw)

    def discount(self, *, service=None, customer=None, kind=DiscountKind.PERCENT, value="10",
                 valid_from=date(2020, 1, 1), valid_to=None, shown=True, group=None, min_commitment=0):
        d = Discount(name=f"Discount {kind}", kind=kind, value=D(value),
                     customer_service_id=service.id if service else None,
                     customer_id=customer.id if customer else None,
                     service_group_id=group.id if group else None, valid_from=valid_from, valid_to=valid_to,
                     min_commitment_months=min_commitment, shown_on_invoice=shown)
        db.session.add(d)
        db.session.flush()
        return d

    def tracker(self, *, vat="21.00", aggregation=Aggregation.SUM, step="1", rounding=Rounding.UP,
                amount_per_step="2.00", included_steps=0, unit="GB"):
        World._trackers += 1
        t = UsageTracker(name=f"Data {World._trackers}", vat_rate=D(vat))
        db.session.add(t)
        db.session.flush()
        item = UsageItem(tracker_id=t.id, metric="data", name="Transferred data", unit=unit, aggregation=aggregation,
                         step=D(step), rounding=rounding, amount_per_step=D(amount_per_step),
                         included_steps=included_steps)
        db.session.add(item)
        db.session.flush()
        return t, item

    def metered_service(self, tracker, **kw):
        definition = self.definition(price="0", usage_tracker_id=tracker.id)
        svc = self.service(definition=definition, **kw)
        inst = UsageInstance(tracker_id=tracker.id, customer_service_id=svc.id)
        db.session.add(inst)
        db.session.flush()
        return svc, inst

    def reading(self, inst, item, when: datetime, value):
        db.session.add(UsageReading(instance_id=inst.id, item_id=item.id,
                                    measured_at=when.replace(tzinfo=UTC) if when.tzinfo is None else when,
                                    value=D(str(value))))
        db.session.flush()


@pytest.fixture(name="world")
def world_fixture(db):
    return World()


def service_charges(service_id, kind=ChargeKind.SERVICE):
    return db.session.scalars(select(Charge).where(Charge.customer_service_id == service_id, Charge.kind == kind)
                              .order_by(Charge.period_start)).all()


def invoices(**filters):
    stmt = select(Invoice).order_by(Invoice.id)
    for k, v in filters.items():
        stmt = stmt.where(getattr(Invoice, k) == v)
    return db.session.scalars(stmt).all()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))
