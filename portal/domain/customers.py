"""Customers as staff see them: creating and editing them (identity, billing address,
contacts, further addresses, groups), their summary and "view as customer". Finding one among
many is `customer_search`, checking a customer form `customer_validation`; their names are
importable from here too.

Rules:
- Search asks indexed questions only (see `customer_search`).
- Company ID (IČO) and VAT ID (DIČ) are checked with their check digits (python-stdnum), IBANs
  likewise; contacts follow the selfcare rules (`profile.normalise_contact`).
- Every change writes one audit entry with before → after. Issued invoices copied the billing
  identity when they were issued, so editing it here changes invoices issued from now on only.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import diff, record, snapshot
from portal.domain.balance import customer_balance
from portal.domain.customer_search import (  # re-exported: moved to customer_search
    DIALLING_CODES,
    SEARCH_MAX_LENGTH,
    STREET_NAME_MIN_LENGTH,
    CustomerFilters,
    SearchResult,
    _successor,
    primary_contact,
    search_customers,
    search_statement,
)
from portal.domain.customer_validation import (  # re-exported: moved to customer_validation
    COUNTRY_RE,
    CUSTOMER_FIELDS,
    CustomerInvalid,
    _text,
    format_iban,
    normalise_company_id,
    normalise_iban,
    normalise_postal_code,
    normalise_vat_id,
    validate_customer,
)
from portal.domain.overdue import active_exceptions, open_case
from portal.domain.payments import invoice_due, open_invoices_query
from portal.domain.profile import normalise_contact
from portal.models import (
    AddressKind,
    Contact,
    ContactKind,
    ContactPurpose,
    Customer,
    CustomerAddress,
    CustomerGroup,
    CustomerLogin,
    CustomerService,
    Delivery,
    Invoice,
    LoginRole,
    ServiceState,
)
from portal.models.base import ZERO, search_key
from portal.models.customers import customer_group_membership

__all__ = [
    "add_address", "add_contact", "ADDRESS_FIELDS", "COUNTRY_RE", "create_customer",
    "create_group", "CUSTOMER_FIELDS", "customer_summary", "CustomerFilters", "CustomerInvalid",
    "CustomerSummary", "DIALLING_CODES", "end_impersonation", "format_iban", "group_counts", "groups_with_counts",
    "impersonation_login", "normalise_company_id", "normalise_iban", "normalise_postal_code",
    "normalise_vat_id", "primary_contact", "remove_address", "remove_contact", "search_customers",
    "SEARCH_MAX_LENGTH", "search_statement", "SearchResult", "SERVICE_STATES",
    "start_impersonation", "STREET_NAME_MIN_LENGTH", "_successor", "update_address",
    "update_contact", "update_customer", "update_group", "validate_customer",
]


# ---------------------------------------------------------------------------------- numbers

def _next_customer_number(session: Session) -> str:
    """One more than the highest customer number, keeping its prefix ("C100041" → "C100042";
    "100200" → "100201"); "100001" for the first customer."""
    last = session.scalar(
        select(Customer.customer_number)
        .order_by(func.length(Customer.customer_number).desc(), Customer.customer_number.desc())
        .limit(1)
    )
    match = re.fullmatch(r"(.*?)([0-9]+)", last or "")
    if not match:
        return "100001"
    prefix, digits = match.groups()
    return f"{prefix}{int(digits) + 1:0{len(digits)}d}"


def _variable_symbol_taken(session: Session, vs: str, customer_id: int | None = None) -> bool:
    """A customer's VS must name only them: no other customer, service or invoice uses it
    (payments are paired by VS)."""
    other = Customer.id != customer_id if customer_id else True
    checks = (
        select(Customer.id).where(Customer.variable_symbol == vs, other),
        select(CustomerService.id).where(CustomerService.variable_symbol == vs,
                                         CustomerService.customer_id != customer_id if customer_id else True),
        select(Invoice.id).where(Invoice.variable_symbol == vs,
                                 Invoice.customer_id != customer_id if customer_id else True),
    )
    return any(session.scalar(q.limit(1)) is not None for q in checks)


def _clean_number(value: str | None) -> str:
    return re.sub(r"\s", "", value or "")[:20]


# ---------------------------------------------------------------------------------- create / edit

def _audit_values(customer: Customer) -> dict:
    values = snapshot(customer, CUSTOMER_FIELDS)
    values["groups"] = sorted(g.name for g in customer.groups)
    return values


def create_customer(session: Session, actor: Actor, data: Mapping, *, location_ids: Iterable[int] | None,
                    today: date | None = None) -> Customer:
    """A new customer from form values. The customer number and variable symbol are the
    ones given, or the next free ones (number: one more than the highest; VS: "8" + the
    number's digits, as the existing customers have them). Audited as customer.created."""
    values = validate_customer(session, data, location_ids=location_ids, today=today)
    errors: dict[str, str] = {}
    number = _clean_number(data.get("customer_number"))
    if number and not re.fullmatch(r"[0-9A-Za-z\-/]{1,20}", number):
        errors["customer_number"] = _("A customer number is letters and digits only.")
    elif number and session.scalar(select(Customer.id).where(Customer.customer_number == number)):
        errors["customer_number"] = _("Another customer has this number.")
    vs = re.sub(r"\s", "", data.get("variable_symbol") or "")
    if vs and (not vs.isdigit() or len(vs) > 10):
        errors["variable_symbol"] = _("A variable symbol has 1–10 digits.")
    elif vs and _variable_symbol_taken(session, vs):
        errors["variable_symbol"] = _("This variable symbol already identifies another customer or invoice.")
    if errors:
        raise CustomerInvalid(errors)
    number = number or _next_customer_number(session)
    if not vs:
        digits = re.sub(r"[^0-9]", "", number)
        vs = ("8" + digits)[:10] if digits else ""
        if not vs or _variable_symbol_taken(session, vs):
            vs = str(9_000_000_000 + (session.scalar(select(func.count(Customer.id))) or 0))
            while _variable_symbol_taken(session, vs):
                vs = str(int(vs) + 1)
    groups = values.pop("groups")
    customer = Customer(customer_number=number, variable_symbol=vs, dunning_exempt=False, **values)
    customer.groups = groups
    customer.name_key = search_key(customer.last_name or customer.company_name)
    session.add(customer)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise CustomerInvalid({"customer_number": _("Another customer has this number. Please try again.")}) from exc
    after = _audit_values(customer)
    changes = {k: [None, v] for k, v in after.items() if v not in (None, "", [], False)}
    changes.update(customer_number=[None, number], variable_symbol=[None, vs])
    record(session, actor, "customer.created", "customer", customer.id, changes, customer_id=customer.id)
    return customer


def update_customer(session: Session, actor: Actor, customer: Customer, data: Mapping, *,
                    location_ids: Iterable[int] | None, today: date | None = None) -> dict:
    """Apply the form's values; returns the audited diff ({} when nothing changed). The customer
    number and variable symbol stay (payments and printed documents refer to them). Issued
    invoices keep the name and address they were issued with."""
    values = validate_customer(session, data, location_ids=location_ids, today=today)
    before = _audit_values(customer)
    groups = values.pop("groups")
    after = {**values, "groups": sorted(g.name for g in groups)}
    changes = diff(before, after)
    if not changes:
        return {}
    for name, value in values.items():
        setattr(customer, name, value)
    customer.groups = groups
    customer.name_key = search_key(customer.last_name or customer.company_name)
    session.flush()
    record(session, actor, "customer.updated", "customer", customer.id, changes, customer_id=customer.id)
    return changes


# ---------------------------------------------------------------------------------- contacts

def _contact_values(contact: Contact) -> dict:
    return {"kind": contact.kind, "value": contact.value, "purpose": contact.purpose, "primary": contact.primary}


def _check_contact(session: Session, customer: Customer, kind: ContactKind, value: str,
                   purpose, exclude_id: int | None = None) -> tuple[str, str, ContactPurpose]:
    try:
        purpose = ContactPurpose(purpose)
    except ValueError as exc:
        raise DomainError(_("Choose what the contact is for."), field="purpose") from exc
    stored, key = normalise_contact(kind, value)
    duplicate = session.scalar(select(Contact.id).where(
        Contact.customer_id == customer.id, Contact.kind == kind, Contact.value_key == key,
        Contact.id != exclude_id if exclude_id else True))
    if duplicate:
        raise DomainError(_("The customer already has this contact."), field="value")
    return stored, key, purpose


def _make_primary(session: Session, customer: Customer, contact: Contact) -> None:
    for other in session.scalars(select(Contact).where(Contact.customer_id == customer.id,
                                                       Contact.kind == contact.kind, Contact.id != contact.id,
                                                       Contact.primary.is_(True))):
        other.primary = False
    contact.primary = True


def add_contact(session: Session, actor: Actor, customer: Customer, *, kind, value: str, purpose,
                primary: bool = False) -> Contact:
    """An e-mail or phone with its purpose. The same value twice is refused; the first of its
    kind is primary, and a new primary one takes over from the old."""
    try:
        kind = ContactKind(kind)
    except ValueError as exc:
        raise DomainError(_("Choose e-mail or phone."), field="kind") from exc
    stored, key, purpose = _check_contact(session, customer, kind, value, purpose)
    has_primary = session.scalar(select(Contact.id).where(Contact.customer_id == customer.id, Contact.kind == kind,
                                                          Contact.primary.is_(True)))
    contact = Contact(customer_id=customer.id, kind=kind, value=stored, value_key=key, purpose=purpose, primary=False)
    session.add(contact)
    session.flush()
    if primary or not has_primary:
        _make_primary(session, customer, contact)
    record(session, actor, "contact.added", "contact", contact.id,
           {k: [None, v] for k, v in _contact_values(contact).items()}, customer_id=customer.id)
    session.flush()
    return contact


def update_contact(session: Session, actor: Actor, contact: Contact, *, value: str, purpose,
                   primary: bool) -> dict:
    customer = contact.customer
    before = _contact_values(contact)
    stored, key, purpose = _check_contact(session, customer, contact.kind, value, purpose, exclude_id=contact.id)
    if before["primary"] and not primary:
        raise DomainError(_("Make another contact primary instead."), field="primary")
    contact.value, contact.value_key, contact.purpose = stored, key, purpose
    if primary and not before["primary"]:
        _make_primary(session, customer, contact)
    changes = diff(before, _contact_values(contact))
    if changes:
        record(session, actor, "contact.updated", "contact", contact.id, changes, customer_id=customer.id)
    session.flush()
    return changes


def remove_contact(session: Session, actor: Actor, contact: Contact) -> None:
    """Remove a contact. The last e-mail of a customer whose invoices go by e-mail stays; when
    the primary one goes, the oldest remaining one of its kind becomes primary."""
    customer = contact.customer
    others = list(session.scalars(select(Contact).where(
        Contact.customer_id == customer.id, Contact.kind == contact.kind, Contact.id != contact.id).order_by(Contact.id)))
    if contact.kind == ContactKind.EMAIL and not others:
        plan = customer.billing_plan
        if plan is not None and plan.delivery == Delivery.EMAIL:
            raise DomainError(_("Invoices go to this customer by e-mail: keep at least one e-mail address."))
    if contact.primary and others:
        others[0].primary = True
    record(session, actor, "contact.removed", "contact", contact.id,
           {k: [v, None] for k, v in _contact_values(contact).items()}, customer_id=customer.id)
    session.delete(contact)
    session.flush()


# ---------------------------------------------------------------------------------- addresses

ADDRESS_FIELDS = ["kind", "street", "city", "postal_code", "country", "note"]


def _address_values(session: Session, data: Mapping) -> dict:
    errors: dict[str, str] = {}
    out: dict = {}
    try:
        out["kind"] = AddressKind(data.get("kind"))
    except ValueError:
        errors["kind"] = _("Choose postal or installation address.")
    out["street"] = _text(data, "street", 200)
    out["city"] = _text(data, "city", 100)
    out["note"] = _text(data, "note", 200)
    country = _text(data, "country", 10).upper()
    if not COUNTRY_RE.fullmatch(country):
        errors["country"] = _("Choose the country.")
    out["country"] = country
    if not out["street"]:
        errors["street"] = _("Enter the street and house number.")
    if not out["city"]:
        errors["city"] = _("Enter the city.")
    try:
        out["postal_code"] = normalise_postal_code(data.get("postal_code"), country)
    except DomainError as exc:
        errors["postal_code"] = str(exc)
    if errors:
        raise CustomerInvalid(errors)
    return out


def add_address(session: Session, actor: Actor, customer: Customer, data: Mapping) -> CustomerAddress:
    """A postal or installation address besides the billing one."""
    values = _address_values(session, data)
    address = CustomerAddress(customer_id=customer.id, **values)
    session.add(address)
    session.flush()
    record(session, actor, "address.added", "customer_address", address.id,
           {k: [None, v] for k, v in values.items() if v}, customer_id=customer.id)
    return address


def update_address(session: Session, actor: Actor, address: CustomerAddress, data: Mapping) -> dict:
    values = _address_values(session, data)
    changes = diff(snapshot(address, ADDRESS_FIELDS), values)
    if changes:
        for name, value in values.items():
            setattr(address, name, value)
        record(session, actor, "address.updated", "customer_address", address.id, changes,
               customer_id=address.customer_id)
        session.flush()
    return changes


def remove_address(session: Session, actor: Actor, address: CustomerAddress) -> None:
    record(session, actor, "address.removed", "customer_address", address.id,
           {k: [v, None] for k, v in snapshot(address, ADDRESS_FIELDS).items() if v}, customer_id=address.customer_id)
    session.delete(address)
    session.flush()


# ---------------------------------------------------------------------------------- groups

def _group_values(session: Session, name: str, description: str, exclude_id: int | None = None) -> dict:
    values = {"name": " ".join((name or "").split())[:100], "description": (description or "").strip()[:2000]}
    if not values["name"]:
        raise DomainError(_("Enter the group's name."), field="name")
    taken = session.scalar(select(CustomerGroup.id).where(func.lower(CustomerGroup.name) == values["name"].lower(),
                                                          CustomerGroup.id != exclude_id if exclude_id else True))
    if taken:
        raise DomainError(_("A group with this name exists."), field="name")
    return values


def create_group(session: Session, actor: Actor, *, name: str, description: str = "") -> CustomerGroup:
    """A customer group (for lists, filters and discounts); names are unique, case aside."""
    values = _group_values(session, name, description)
    group = CustomerGroup(**values)
    session.add(group)
    session.flush()
    record(session, actor, "customer_group.created", "customer_group", group.id,
           {k: [None, v] for k, v in values.items() if v})
    return group


def update_group(session: Session, actor: Actor, group: CustomerGroup, *, name: str, description: str = "") -> dict:
    values = _group_values(session, name, description, exclude_id=group.id)
    changes = diff(snapshot(group, ["name", "description"]), values)
    if changes:
        for key, value in values.items():
            setattr(group, key, value)
        record(session, actor, "customer_group.updated", "customer_group", group.id, changes)
        session.flush()
    return changes


def groups_with_counts(session: Session, location_ids: Iterable[int] | None) -> list[tuple[CustomerGroup, int]]:
    """Every group with how many of the operator's customers are in it (two statements)."""
    counts = group_counts(session, None, location_ids)
    groups = session.scalars(select(CustomerGroup).order_by(CustomerGroup.name))
    return [(g, counts.get(g.id, 0)) for g in groups]


def group_counts(session: Session, group_ids: Iterable[int] | None,
                 location_ids: Iterable[int] | None) -> dict[int, int]:
    """group id → how many of the operator's customers are in it (one statement); only the
    groups in `group_ids` (None: all)."""
    m = customer_group_membership
    counts_q = select(m.c.group_id, func.count()).join(Customer, Customer.id == m.c.customer_id)
    if location_ids is not None:
        counts_q = counts_q.where(Customer.location_id.in_(list(location_ids)))
    if group_ids is not None:
        counts_q = counts_q.where(m.c.group_id.in_(list(group_ids)))
    return dict(session.execute(counts_q.group_by(m.c.group_id)).all())


# ---------------------------------------------------------------------------------- overview

@dataclass
class CustomerSummary:
    """What the customer page's overview shows: balance, open invoices, services by state
    and where dunning stands."""

    balance: dict[str, Decimal]
    open_invoices: list[tuple[Invoice, Decimal]]
    services_by_state: dict[str, int]
    dunning_case: object | None
    never_block: bool
    postponed_until: date | None
    overdue: dict[str, Decimal] = field(default_factory=dict)


def customer_summary(session: Session, customer: Customer, today: date | None = None) -> CustomerSummary:
    """A fixed number of statements, however long the customer's history."""
    today = today or date.today()
    open_stmt, by_state_stmt = _summary_statements()
    params = {"customer_id": customer.id}
    rows = session.execute(open_stmt, params).all()
    open_invoices = [(inv, invoice_due(inv, credited)) for inv, credited in rows]
    overdue: dict[str, Decimal] = {}
    for inv, due in open_invoices:
        if inv.due_date < today:
            overdue[inv.currency.value] = overdue.get(inv.currency.value, ZERO) + due
    by_state = dict(session.execute(by_state_stmt, params).all())
    never, until = active_exceptions(session, customer.id, today)
    return CustomerSummary(
        balance=customer_balance(session, customer.id),
        open_invoices=open_invoices,
        services_by_state={str(getattr(k, "value", k)): v for k, v in by_state.items()},
        dunning_case=open_case(session, customer.id),
        never_block=never or customer.dunning_exempt,
        postponed_until=until,
        overdue=overdue,
    )


@functools.cache
def _summary_statements():
    """customer_summary's own statements, built once with the customer bound (building them
    and their cache keys cost ~0.3 ms a page)."""
    customer_id = bindparam("customer_id")
    return (open_invoices_query(customer_id).limit(20),
            select(CustomerService.state, func.count()).where(CustomerService.customer_id == customer_id)
            .group_by(CustomerService.state))


SERVICE_STATES = [s.value for s in ServiceState]


# ---------------------------------------------------------------------------------- view as customer

def impersonation_login(session: Session, customer: Customer) -> CustomerLogin | None:
    """The selfcare login staff view the customer through: the oldest active owner, else the
    oldest active login."""
    return session.scalar(_IMPERSONATION_LOGIN, {"customer_id": customer.id})


# An owner first (staff see every page); never a pending invitation.
_IMPERSONATION_LOGIN = (select(CustomerLogin)
                        .where(CustomerLogin.customer_id == bindparam("customer_id"), CustomerLogin.active.is_(True),
                               CustomerLogin.activated_at.is_not(None) | CustomerLogin.invited_at.is_(None))
                        .order_by(CustomerLogin.role != LoginRole.OWNER, CustomerLogin.id).limit(1))


def start_impersonation(session: Session, actor: Actor, customer: Customer) -> CustomerLogin:
    """Staff open the customer's selfcare read-only. It needs a selfcare login (the pages are
    that login's); audited as customer.impersonation_started."""
    login = impersonation_login(session, customer)
    if login is None:
        raise DomainError(_("This customer has no active selfcare login, so there is nothing to view as them."))
    record(session, actor, "customer.impersonation_started", "customer", customer.id,
           {"login": [None, login.email]}, customer_id=customer.id)
    return login


def end_impersonation(session: Session, actor: Actor, login: CustomerLogin) -> None:
    record(session, actor, "customer.impersonation_ended", "customer", login.customer_id,
           {"login": [login.email, None]}, customer_id=login.customer_id)
