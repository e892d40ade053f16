"""Where the portal writes to a customer: one rule per kind of message.

Several areas send e-mail (billing, dunning, agreements, requests); the choice of address is a
rule of the customer's contacts, kept here so those areas need not import one another.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import ContactKind, ContactPurpose, Customer, CustomerLogin


def billing_email(session: Session, customer: Customer) -> str | None:
    """Where dunning writes: the billing e-mail contact, else the primary e-mail contact, else
    the customer's selfcare login."""
    emails = [c for c in customer.contacts if c.kind == ContactKind.EMAIL and c.value]
    billing = sorted((c for c in emails if c.purpose == ContactPurpose.BILLING), key=lambda c: (not c.primary, c.id))
    if billing:
        return billing[0].value
    primary = [c for c in emails if c.primary]
    if primary:
        return primary[0].value
    return session.scalar(
        select(CustomerLogin.email).where(CustomerLogin.customer_id == customer.id).order_by(CustomerLogin.id).limit(1)
    )


def acceptance_email(session: Session, customer: Customer) -> str | None:
    """Where an acceptance reminder goes: the customer's selfcare login (where the agreement
    is accepted; the code e-mail goes there too), else the billing or primary e-mail contact."""
    login = session.scalar(select(CustomerLogin.email).where(CustomerLogin.customer_id == customer.id)
                           .order_by(CustomerLogin.id).limit(1))
    if login:
        return login
    return billing_email(session, customer)


def request_email(session: Session, customer: Customer) -> str | None:
    """Where answers to a request go: the customer's selfcare login (where they read the
    conversation), else their primary e-mail contact, else the billing address."""
    login = session.scalar(select(CustomerLogin.email).where(CustomerLogin.customer_id == customer.id)
                           .order_by(CustomerLogin.id).limit(1))
    if login:
        return login
    primary = [c for c in customer.contacts if c.kind == ContactKind.EMAIL and c.primary and c.value]
    if primary:
        return primary[0].value
    return billing_email(session, customer)
