"""What a customer may change about themselves in selfcare: contacts, billing address,
language, notification preference and password. Every change is audited with before → after.

Issued invoices copied the billing identity at issue (Invoice.customer_name/address), so a
new billing address applies to invoices issued from now on only."""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.domain import DomainError
from portal.domain.accounts import set_password
from portal.domain.actors import Actor
from portal.domain.audit import diff, record, snapshot
from portal.models import (
    Aggregation,
    Contact,
    ContactKind,
    ContactPurpose,
    Customer,
    CustomerLogin,
    CustomerService,
    Language,
    UsageInstance,
    UsageReading,
    UsageTracker,
)
from portal.security.passwords import verify_password

ADDRESS_FIELDS = ["street", "city", "postal_code", "country"]
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_POSTAL_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z \-]{1,9}$")


# ---------------------------------------------------------------------------------- contacts

def normalise_contact(kind: ContactKind, value: str) -> tuple[str, str]:
    """(value to store, search key) or DomainError on `value`. E-mails must be deliverable in
    form (no DNS lookup); phones are digits with an optional leading +, spaces allowed."""
    value = (value or "").strip()
    if kind == ContactKind.EMAIL:
        try:
            checked = validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            raise DomainError(_("This is not a valid e-mail address."), field="value") from exc
        return checked.normalized, checked.normalized.lower()
    compact = re.sub(r"[\s\-/().]", "", value)
    if not _PHONE.match(compact):
        raise DomainError(_("Enter a phone number: digits, optionally starting with +."), field="value")
    return value, compact.lstrip("+")


def add_contact(session: Session, customer: Customer, kind: ContactKind, value: str,
                purpose: ContactPurpose, actor: Actor) -> Contact:
    """Add an e-mail or phone. The same value twice for one customer is refused."""
    kind, purpose = ContactKind(kind), ContactPurpose(purpose)
    stored, key = normalise_contact(kind, value)
    duplicate = session.scalar(
        select(Contact.id).where(Contact.customer_id == customer.id, Contact.kind == kind,
                                 Contact.value_key == key)
    )
    if duplicate:
        raise DomainError(_("You already have this contact."), field="value")
    has_primary = session.scalar(
        select(Contact.id).where(Contact.customer_id == customer.id, Contact.kind == kind,
                                 Contact.primary.is_(True))
    )
    contact = Contact(customer_id=customer.id, kind=kind, value=stored, value_key=key,
                      purpose=purpose, primary=not has_primary)
    session.add(contact)
    session.flush()
    record(session, actor, "contact.added", "contact", contact.id,
           {"kind": [None, kind], "value": [None, stored], "purpose": [None, purpose]},
           customer_id=customer.id)
    return contact


def remove_contact(session: Session, customer: Customer, contact: Contact, actor: Actor) -> None:
    """Remove a contact; the last e-mail stays (invoices and notices go there). When the
    primary one goes, the oldest remaining one of its kind becomes primary."""
    if contact.customer_id != customer.id:
        raise DomainError(_("This contact is not yours."))
    others = list(session.scalars(
        select(Contact).where(Contact.customer_id == customer.id, Contact.kind == contact.kind,
                              Contact.id != contact.id).order_by(Contact.id)
    ))
    if contact.kind == ContactKind.EMAIL and not others:
        raise DomainError(_("Keep at least one e-mail address: we send invoices and notices there."))
    if contact.primary and others:
        others[0].primary = True
    record(session, actor, "contact.removed", "contact", contact.id,
           {"kind": [contact.kind, None], "value": [contact.value, None], "purpose": [contact.purpose, None]},
           customer_id=customer.id)
    session.delete(contact)
    session.flush()


# ---------------------------------------------------------------------------------- address

def update_billing_address(session: Session, customer: Customer, *, street: str, city: str,
                           postal_code: str, country: str, actor: Actor) -> dict:
    """Change the billing address; returns the audited diff ({} when nothing changed).
    Issued invoices keep the address they were issued with."""
    after = {
        "street": (street or "").strip(),
        "city": (city or "").strip(),
        "postal_code": (postal_code or "").strip(),
        "country": (country or "").strip().upper(),
    }
    for name, message in (("street", _("Enter the street and house number.")),
                          ("city", _("Enter the city.")),
                          ("postal_code", _("Enter the postal code.")),
                          ("country", _("Choose the country."))):
        if not after[name]:
            raise DomainError(message, field=name)
    if not _POSTAL_CODE.match(after["postal_code"]):
        raise DomainError(_("This is not a valid postal code."), field="postal_code")
    if not re.fullmatch(r"[A-Z]{2}", after["country"]):
        raise DomainError(_("Choose the country."), field="country")
    changes = diff(snapshot(customer, ADDRESS_FIELDS), after)
    if not changes:
        return {}
    for name, value in after.items():
        setattr(customer, name, value)
    record(session, actor, "customer.billing_address_changed", "customer", customer.id, changes,
           customer_id=customer.id)
    return changes


# ---------------------------------------------------------------------------------- preferences

def set_language(session: Session, login: CustomerLogin, language: str, actor: Actor) -> None:
    """The language of pages (the login) and of documents and e-mails (the customer)."""
    try:
        language = Language(language)
    except ValueError as exc:
        raise DomainError(_("Choose a language."), field="language") from exc
    customer = login.customer
    before = {"login.language": login.language, "customer.language": customer.language}
    login.language = language
    customer.language = language
    changes = diff(before, {"login.language": language, "customer.language": language})
    if changes:
        record(session, actor, "customer.language_changed", "customer", customer.id, changes,
               customer_id=customer.id)


def set_notifications(session: Session, login: CustomerLogin, notify_email: bool, actor: Actor) -> None:
    changes = diff({"notify_email": login.notify_email}, {"notify_email": bool(notify_email)})
    login.notify_email = bool(notify_email)
    if changes:
        record(session, actor, "customer_login.notifications_changed", "customer_login", login.id,
               changes, customer_id=login.customer_id)


def change_password(session: Session, login: CustomerLogin, current_password: str,
                    new_password: str, actor: Actor) -> None:
    """The current password proves it is the owner at the keyboard; the new one must pass
    the password rules. Every session of the login ends (the caller starts a fresh one)."""
    if not verify_password(login.password_hash, current_password or ""):
        raise DomainError(_("This is not your current password."), field="current_password")
    if new_password == current_password:
        raise DomainError(_("Choose a password different from the current one."), field="new_password")
    try:
        set_password(session, login, new_password, actor)
    except DomainError as exc:
        raise DomainError(str(exc), field="new_password") from exc


# ---------------------------------------------------------------------------------- usage

@dataclass
class UsageSeries:
    """One metric of one tracker, month by month (oldest first), aggregated the way the
    item is billed."""

    tracker: str
    name: str
    unit: str
    aggregation: str
    months: list[date]
    values: list[Decimal | None]
    maximum: Decimal = field(default=Decimal(0))

    @property
    def label(self) -> str:
        """The series' heading: the tracker and the metric, once when they are named alike
        ("Calls", not "Calls — Calls")."""
        if not self.name or self.name.casefold() == self.tracker.casefold():
            return self.tracker
        if not self.tracker:
            return self.name
        return f"{self.tracker} — {self.name}"

    @property
    def points(self) -> list[tuple[date, Decimal | None]]:
        return list(zip(self.months, self.values, strict=True))


def _month_starts(today: date, count: int) -> list[date]:
    year, month = today.year, today.month
    starts = []
    for _i in range(count):
        starts.append(date(year, month, 1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(starts))


def _aggregate(aggregation: Aggregation, readings: list[tuple[datetime, Decimal]]) -> Decimal | None:
    if not readings:
        return None
    values = [v for _at, v in readings]
    if aggregation == Aggregation.SUM:
        return sum(values, Decimal(0))
    if aggregation == Aggregation.MAX:
        return max(values)
    if aggregation == Aggregation.LAST:
        return max(readings, key=lambda r: r[0])[1]
    return (sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.0001"))


def service_usage(session: Session, service: CustomerService, today: date | None = None,
                  months: int = 12) -> list[UsageSeries]:
    """Usage of a customer service over the last `months` calendar months (this one
    included), one series per metered item: two queries whatever the number of readings."""
    today = today or date.today()
    instances = list(session.scalars(
        select(UsageInstance)
        .options(selectinload(UsageInstance.tracker).selectinload(UsageTracker.items))
        .where(UsageInstance.customer_service_id == service.id).order_by(UsageInstance.id)
    ))
    if not instances:
        return []
    starts = _month_starts(today, months)
    first = datetime(starts[0].year, starts[0].month, 1, tzinfo=UTC)
    last_day = monthrange(today.year, today.month)[1]
    end = datetime(today.year, today.month, last_day, 23, 59, 59, tzinfo=UTC)
    rows = session.execute(
        select(UsageReading.instance_id, UsageReading.item_id, UsageReading.measured_at, UsageReading.value)
        .where(UsageReading.instance_id.in_([i.id for i in instances]),
               UsageReading.measured_at >= first, UsageReading.measured_at <= end)
    ).all()
    buckets: dict[tuple[int, int, date], list[tuple[datetime, Decimal]]] = {}
    for instance_id, item_id, at, value in rows:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        key = (instance_id, item_id, date(at.year, at.month, 1))
        buckets.setdefault(key, []).append((at, Decimal(value)))
    series = []
    for instance in instances:
        for item in instance.tracker.items:
            values = [_aggregate(item.aggregation, buckets.get((instance.id, item.id, m), [])) for m in starts]
            present = [v for v in values if v is not None]
            series.append(UsageSeries(
                tracker=instance.tracker.name, name=item.name, unit=item.unit,
                aggregation=item.aggregation.value, months=starts, values=values,
                maximum=max(present) if present else Decimal(0),
            ))
    return series
