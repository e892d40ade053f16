"""Finding a customer among many, as staff search: indexed questions only.

A prefix of the lower-cased accent-free name key, of a contact's search key (e-mail, digits of
a phone) or of a login e-mail, and exact equality on numbers (customer number, variable
symbols of the customer, its services and invoices, company id). Each is a separate indexed
sub-query; their union names the customers. A query that reads as a street (a name, with or
without the house number) also asks the addresses: a prefix range on their accent-free street
keys (indexed, no scan). The list filters (`CustomerFilters`) and the primary contact the list
shows are here too.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, func, or_, select, union
from sqlalchemy.orm import Session, joinedload

from portal.models import (
    Contact,
    ContactKind,
    Customer,
    CustomerAddress,
    CustomerKind,
    CustomerLogin,
    CustomerService,
    Invoice,
)
from portal.models.base import search_key
from portal.models.customers import customer_group_membership

# Phones are often typed without the country code they were stored with (or the reverse):
# a national number is also looked up behind these codes (the portal's markets).
DIALLING_CODES = ("420", "421")
SEARCH_MAX_LENGTH = 100
# ---------------------------------------------------------------------------------- search

def _successor(prefix: str) -> str | None:
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)


def _starts_with(column, prefix: str):
    """`column` starts with `prefix` as a range (prefix ≤ value < successor): a B-tree index
    answers it on every database (PostgreSQL uses an index for LIKE only under the "C"
    collation or with text_pattern_ops). Exact under byte-order collations — SQLite, and
    PostgreSQL's C / C.UTF-8, which the keys (lower-cased, accent-free) are compared in."""
    upper = _successor(prefix)
    if upper is None:
        return column.startswith(prefix, autoescape=True)
    return and_(column >= prefix, column < upper)


def _phone_digits(query: str) -> tuple[str, bool] | None:
    """(digits, international?) when the query reads as a phone number, else None."""
    compact = re.sub(r"[\s\-/().]", "", query)
    if not re.fullmatch(r"(\+|00)?[0-9]{3,15}", compact):
        return None
    if compact.startswith("+"):
        return compact[1:], True
    if compact.startswith("00"):
        return compact[2:], True
    return compact, False


# A street name alone shorter than this would match half the streets of a town.
STREET_NAME_MIN_LENGTH = 3


def _looks_like_street(query: str) -> bool:
    """A word of letters, a space and a house number: "Dlouhá 5", "Na Příkopě 12/3"; or a
    street name alone, without digits: "Korunní", "Na Příkopě", "nám. Míru"."""
    if re.fullmatch(r"[^\W\d_][^\d]*\s[0-9]+[0-9a-zA-Z/]*", query):
        return True
    return bool(re.fullmatch(r"[^\W\d_][^\d]*", query)) and len(search_key(query)) >= STREET_NAME_MIN_LENGTH


def _matching_ids(query: str):
    """The union of indexed sub-queries naming the customers that match `query`."""
    # PostgreSQL text cannot hold NUL; a search for it finds nothing rather than failing.
    raw = " ".join(query.replace("\x00", "").split())[:SEARCH_MAX_LENGTH]
    key = search_key(raw)
    parts = []
    if key:
        parts.append(select(Customer.id).where(_starts_with(Customer.name_key, key)))
        words = key.split(" ")
        if len(words) > 1:
            # "jana novakova" and "novakova jana": one word starts the name key (indexed), the
            # others start the first name (checked on those rows only).
            raw_words = raw.lower().split(" ")
            for i, word in enumerate(words):
                others = [w for j, w in enumerate(words) if j != i] + [w for j, w in enumerate(raw_words) if j != i]
                parts.append(select(Customer.id).where(
                    _starts_with(Customer.name_key, word),
                    or_(*[func.lower(Customer.first_name).startswith(o, autoescape=True) for o in others]),
                ))
    if raw:
        parts.append(select(Customer.id).where(Customer.customer_number.in_({raw, raw.upper()})))
    lowered = raw.lower()
    if lowered and " " not in lowered:
        # E-mails: contacts keep them lower-cased in value_key; logins lower-cased in email.
        parts.append(select(Contact.customer_id).where(Contact.kind == ContactKind.EMAIL,
                                                      _starts_with(Contact.value_key, lowered)))
        parts.append(select(CustomerLogin.customer_id).where(_starts_with(CustomerLogin.email, lowered)))
    compact = raw.replace(" ", "")
    if compact.isdigit() and len(compact) <= 10:
        for candidate in {compact, compact.lstrip("0") or "0"}:
            parts.append(select(Customer.id).where(Customer.variable_symbol == candidate))
            parts.append(select(CustomerService.customer_id).where(CustomerService.variable_symbol == candidate))
            parts.append(select(Invoice.customer_id).where(Invoice.variable_symbol == candidate))
    if compact and len(compact) <= 20:
        company = compact.upper()
        parts.append(select(Customer.id).where(Customer.company_id.in_({company, company.removeprefix("CZ").removeprefix("SK")})))
    if key and _looks_like_street(raw):
        # Street and house number ("Dlouhá 5", "dlouha 5") or a street alone ("Korunní"):
        # a prefix of the billing or a further address's street key (indexed, accents ignored).
        parts.append(select(Customer.id).where(_starts_with(Customer.street_key, key)))
        parts.append(select(CustomerAddress.customer_id).where(_starts_with(CustomerAddress.street_key, key)))
    phone = _phone_digits(raw)
    if phone is not None:
        digits, international = phone
        keys = {digits}
        if not international and len(digits) >= 6 and not digits.startswith("0"):
            keys.update(code + digits for code in DIALLING_CODES)
        if international:
            for code in DIALLING_CODES:
                if digits.startswith(code) and len(digits) > len(code) + 3:
                    keys.add(digits[len(code):])
        for k in keys:
            parts.append(select(Contact.customer_id).where(Contact.kind == ContactKind.PHONE,
                                                          _starts_with(Contact.value_key, k)))
    return union(*parts) if parts else None


@dataclass
class CustomerFilters:
    """What the customer list is narrowed by (the same for the page and its CSV)."""

    query: str = ""
    location_id: int | None = None
    active: bool | None = None  # None: active and inactive
    kind: CustomerKind | None = None
    group_id: int | None = None


def search_statement(filters: CustomerFilters, location_ids: Iterable[int] | None):
    """SELECT of the matching customers in the operator's locations (None = all), ordered by
    name key and id. Lists load their location and contacts with it."""
    stmt = select(Customer)
    if filters.query and filters.query.replace("\x00", "").strip():
        matching = _matching_ids(filters.query)
        if matching is None:
            stmt = stmt.where(False)
        else:
            stmt = stmt.where(Customer.id.in_(matching))
    if location_ids is not None:
        stmt = stmt.where(Customer.location_id.in_(list(location_ids)))
    if filters.location_id is not None:
        stmt = stmt.where(Customer.location_id == filters.location_id)
    if filters.active is not None:
        stmt = stmt.where(Customer.active.is_(filters.active))
    if filters.kind is not None:
        stmt = stmt.where(Customer.kind == filters.kind)
    if filters.group_id is not None:
        m = customer_group_membership
        stmt = stmt.where(Customer.id.in_(select(m.c.customer_id).where(m.c.group_id == filters.group_id)))
    return stmt.order_by(Customer.name_key, Customer.id)


@dataclass
class SearchResult:
    items: list[Customer]
    total: int
    # customer id → {ContactKind.EMAIL: value, ContactKind.PHONE: value}: the primary one of
    # each kind, else the first (what the list shows; see primary_contact).
    contacts: dict[int, dict[ContactKind, str]] = field(default_factory=dict)


@functools.cache
def _listed_contacts():
    """The e-mails and phones of a page of customers as plain rows: loading every contact
    as an object (selectinload) cost a third of the search's time."""
    return (select(Contact.customer_id, Contact.kind, Contact.value)
            .where(Contact.customer_id.in_(bindparam("ids", expanding=True)),
                   Contact.kind.in_((ContactKind.EMAIL, ContactKind.PHONE)))
            .order_by(Contact.customer_id, Contact.primary.desc(), Contact.id))


def search_customers(session: Session, query: str, location_ids: Iterable[int] | None, *,
                     limit: int = 25, offset: int = 0, filters: CustomerFilters | None = None) -> SearchResult:
    """Customers matching `query` by name (prefix, accents ignored), customer number, variable
    symbol (the customer's, a service's or an invoice's), company id, e-mail (prefix), phone
    (prefix; with or without the country code) or street, with or without the house number
    (prefix of the billing or a further address), limited to `location_ids` (None = every location). Three
    statements: count, page, the page's e-mails and phones."""
    filters = filters or CustomerFilters()
    filters.query = query or ""
    stmt = search_statement(filters, location_ids)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(stmt.options(joinedload(Customer.location)).limit(limit).offset(offset)))
    contacts: dict[int, dict[ContactKind, str]] = {}
    if items:
        for customer_id, kind, value in session.execute(_listed_contacts(), {"ids": [c.id for c in items]}):
            contacts.setdefault(customer_id, {}).setdefault(kind, value)
    return SearchResult(items=items, total=total, contacts=contacts)


def primary_contact(customer: Customer, kind: ContactKind) -> Contact | None:
    """The primary e-mail (or phone), else the first one."""
    mine = [c for c in customer.contacts if c.kind == kind]
    return next((c for c in mine if c.primary), mine[0] if mine else None)
