"""Small builders for the lifecycle and dunning tests: services in a given state, invoices
made directly as rows (the billing engine is not needed to test dunning), payments as a
plain paid_amount, and the default reminder ladder of domain.md §6."""
from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from portal.domain.actors import Actor
from portal.extensions import db
from portal.models import (
    Invoice,
    InvoiceState,
    InvoiceType,
    ReminderLevel,
    ServiceState,
)
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerServiceFactory,
    ServiceDefinitionFactory,
)

SYSTEM = Actor.system("test")
_numbers = itertools.count(1)


def customer_with_email(**kwargs):
    """A customer with a billing e-mail contact (returned as customer, address)."""
    customer = CustomerFactory(**kwargs)
    contact = ContactFactory(customer=customer)
    return customer, contact.value


def service(customer=None, state: ServiceState = ServiceState.ACTIVE, *, billing_from=date(2024, 1, 1),
            definition=None, **kwargs):
    """A customer service already in `state` (made as a row, not through the rules)."""
    kwargs.setdefault("ordered_on", billing_from or date(2024, 1, 1))
    if state == ServiceState.ORDERED:
        kwargs.update(activated_on=None, billing_from=None)
    else:
        kwargs.update(activated_on=billing_from, billing_from=billing_from)
    return CustomerServiceFactory(
        customer=customer or CustomerFactory(),
        definition=definition or ServiceDefinitionFactory(),
        state=state,
        **kwargs,
    )


def invoice(customer, *, issue_date: date, due_date: date | None = None, gross: Decimal | str = "605.00",
            paid: Decimal | str = "0.00", type: InvoiceType = InvoiceType.INVOICE, corrects=None) -> Invoice:
    """An issued invoice as a plain row (net/VAT split at 21 %)."""
    n = next(_numbers)
    gross = Decimal(gross)
    vat = (gross * Decimal(21) / Decimal(121)).quantize(Decimal("0.01"))
    inv = Invoice(
        customer_id=customer.id,
        location_id=customer.location_id,
        billing_plan_id=customer.billing_plan_id,
        type=type,
        series="FV",
        year=issue_date.year,
        sequence=n,
        number=f"FV{issue_date.year}{n:05d}",
        variable_symbol=f"{issue_date.year % 100:02d}{n:06d}",
        issue_date=issue_date,
        taxable_supply_date=issue_date,
        due_date=due_date or date.fromordinal(issue_date.toordinal() + 14),
        currency=customer.location.currency,
        state=InvoiceState.ISSUED,
        customer_name=customer.display_name,
        customer_address=", ".join(customer.billing_address_lines),
        customer_number=customer.customer_number,
        net_total=gross - vat,
        vat_total=vat,
        gross_total=gross,
        paid_amount=Decimal(paid),
        corrects_id=corrects.id if corrects is not None else None,
    )
    db.session.add(inv)
    db.session.flush()
    return inv


def pay(inv: Invoice, on: date, amount: Decimal | str | None = None) -> None:
    """Mark an invoice paid (fully, or by `amount`) — what the payment rules cache."""
    inv.paid_amount = inv.paid_amount + (Decimal(amount) if amount is not None else inv.amount_due)
    if inv.paid_amount >= inv.gross_total:
        inv.paid_at = on
    db.session.flush()


def default_ladder(plan=None) -> list[ReminderLevel]:
    """domain.md §6: 7 days; 14 days + 100 CZK fee; 30 days → block."""
    rows = [
        ReminderLevel(billing_plan_id=plan.id if plan else None, level=1, days_overdue=7, fee=Decimal("0.00"),
                      blocks=False, pay_within_days=7),
        ReminderLevel(billing_plan_id=plan.id if plan else None, level=2, days_overdue=14, fee=Decimal("100.00"),
                      blocks=False, pay_within_days=7),
        ReminderLevel(billing_plan_id=plan.id if plan else None, level=3, days_overdue=30, fee=Decimal("0.00"),
                      blocks=True, pay_within_days=5),
    ]
    db.session.add_all(rows)
    db.session.flush()
    return rows
