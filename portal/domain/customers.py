"""Customers as staff see them: finding one among many, creating and editing them (identity,
billing address, contacts, further addresses, groups) and "view as customer".

Rules:
- Search asks indexed questions: a prefix of the lower-cased accent-free name key, of a
  contact's search key (e-mail, digits of a phone) or of a login e-mail, and exact equality
  on numbers (customer number, variable symbols of the customer, its services and invoices,
  company id). Each is a separate indexed sub-query; their union names the customers. A
  query that reads as a street (a name, with or without the house number) also asks the
  addresses: a prefix range on their accent-free street keys (indexed, no scan).
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
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, func, or_, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat
from stdnum.exceptions import ValidationError

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import diff, record, snapshot
from portal.domain.balance import customer_balance
from portal.domain.dunning import active_exceptions, open_case
from portal.domain.payments import invoice_due, open_invoices_query
from portal.domain.profile import normalise_contact
from portal.models import (
    AddressKind,
    BillingPlan,
    Contact,
    ContactKind,
    ContactPurpose,
    Customer,
    CustomerAddress,
    CustomerGroup,
    CustomerKind,
    CustomerLogin,
    CustomerService,
    Delivery,
    Invoice,
    Language,
    Location,
    ServiceState,
)
from portal.models.base import ZERO, search_key
from portal.models.customers import customer_group_membership

# Phones are often typed without the country code they were stored with (or the reverse):
# a national number is also looked up behind these codes (the portal's markets).
DIALLING_CODES = ("420", "421")
SEARCH_MAX_LENGTH = 100


class CustomerInvalid(DomainError):
    """Several fields of a customer form are wrong: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        first_field, first_message = next(iter(errors.items()))
        super().__init__(first_message, field=first_field)
        self.errors = errors


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


# ---------------------------------------------------------------------------------- validation

COUNTRY_RE = re.compile(r"[A-Z]{2}")
_POSTAL_CODE = re.compile(r"[0-9A-Z][0-9A-Z \-]{1,9}")


def normalise_company_id(value: str | None, country: str) -> str | None:
    """A company id (IČO): for CZ and SK eight digits with the mod-11 check digit (shorter
    ones are zero-padded, as the registers print them); elsewhere letters and digits."""
    text = re.sub(r"\s", "", value or "")
    if not text:
        return None
    if country in ("CZ", "SK"):
        if not text.isdigit() or len(text) > 8:
            raise DomainError(_("A company id has eight digits."), field="company_id")
        text = text.zfill(8)
        total = sum(int(d) * w for d, w in zip(text[:7], range(8, 1, -1), strict=True))
        if (11 - total % 11) % 10 != int(text[7]):
            raise DomainError(_("This company id does not exist: its check digit is wrong."), field="company_id")
        return text
    if not re.fullmatch(r"[0-9A-Za-z\-]{2,20}", text):
        raise DomainError(_("A company id is letters and digits only."), field="company_id")
    return text.upper()


def normalise_vat_id(value: str | None) -> str | None:
    """An EU VAT id with its country prefix (CZ12345679, SK2020273893), checked by its country's
    rule; stored compact and upper-case."""
    text = (value or "").strip()
    if not text:
        return None
    compact = re.sub(r"[\s.\-/]", "", text).upper()
    if not re.match(r"^[A-Z]{2}", compact):
        raise DomainError(_("Start the VAT ID with its country code, e.g. CZ12345679."), field="vat_id")
    try:
        return stdnum_vat.validate(compact)
    except ValidationError as exc:
        raise DomainError(_("This VAT ID is not valid."), field="vat_id") from exc


def normalise_iban(value: str | None) -> str | None:
    """An IBAN (check digits verified); stored compact."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return stdnum_iban.validate(text)
    except ValidationError as exc:
        raise DomainError(_("This IBAN is not valid."), field="iban") from exc


def format_iban(value: str | None) -> str:
    return stdnum_iban.format(value) if value else ""


def normalise_postal_code(value: str | None, country: str, field_name: str = "postal_code") -> str:
    text = " ".join((value or "").split()).upper()
    if not text:
        raise DomainError(_("Enter the postal code."), field=field_name)
    if country in ("CZ", "SK"):
        digits = text.replace(" ", "")
        if not re.fullmatch(r"[0-9]{5}", digits):
            raise DomainError(_("A postal code here has five digits."), field=field_name)
        return f"{digits[:3]} {digits[3:]}"
    if not _POSTAL_CODE.fullmatch(text):
        raise DomainError(_("This is not a valid postal code."), field=field_name)
    return text


def _text(data: Mapping, name: str, limit: int) -> str:
    return " ".join(str(data.get(name) or "").split())[:limit]


# Fields of the customer record the staff form edits, in the order the audit lists them.
CUSTOMER_FIELDS = [
    "location_id", "kind", "first_name", "last_name", "company_name", "company_id", "vat_id", "iban",
    "birth_date", "street", "city", "postal_code", "country", "language", "billing_plan_id",
    "credit_limit", "note", "active",
]


def validate_customer(session: Session, data: Mapping, *, location_ids: Iterable[int] | None,
                      today: date | None = None) -> dict:
    """The customer fields from a form's raw values, checked and normalised; CustomerInvalid
    names every wrong field. `location_ids`: where the operator may put customers (None = all)."""
    today = today or date.today()
    errors: dict[str, str] = {}
    out: dict = {}

    def check(name, fn):
        try:
            out[name] = fn()
        except DomainError as exc:
            errors.setdefault(exc.field or name, str(exc))

    def kind():
        try:
            return CustomerKind(data.get("kind"))
        except ValueError as exc:
            raise DomainError(_("Choose a person or a company."), field="kind") from exc

    def location():
        try:
            ident = int(data.get("location_id"))
        except (TypeError, ValueError) as exc:
            raise DomainError(_("Choose the location."), field="location_id") from exc
        allowed = location_ids is None or ident in set(location_ids)
        if not allowed or session.get(Location, ident) is None:
            raise DomainError(_("Choose the location."), field="location_id")
        return ident

    check("kind", kind)
    check("location_id", location)
    the_kind = out.get("kind")
    out["first_name"] = _text(data, "first_name", 100) or None
    out["last_name"] = _text(data, "last_name", 100) or None
    out["company_name"] = _text(data, "company_name", 200) or None
    if the_kind == CustomerKind.PERSON and not out["last_name"]:
        errors["last_name"] = _("Enter the last name.")
    if the_kind == CustomerKind.COMPANY and not out["company_name"]:
        errors["company_name"] = _("Enter the company name.")
    if the_kind == CustomerKind.COMPANY:
        out["first_name"] = out["first_name"] if out["last_name"] else None

    country = _text(data, "country", 10).upper()
    if not COUNTRY_RE.fullmatch(country):
        errors["country"] = _("Choose the country.")
    out["country"] = country
    check("company_id", lambda: normalise_company_id(data.get("company_id"), country))
    check("vat_id", lambda: normalise_vat_id(data.get("vat_id")))
    check("iban", lambda: normalise_iban(data.get("iban")))

    def birth_date():
        value = data.get("birth_date")
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError as exc:
                raise DomainError(_("Enter the date as YYYY-MM-DD."), field="birth_date") from exc
        if value > today or value.year < today.year - 130:
            raise DomainError(_("This birth date is not possible."), field="birth_date")
        return value

    check("birth_date", birth_date)
    if the_kind == CustomerKind.COMPANY:
        out["birth_date"] = None

    out["street"] = _text(data, "street", 200)
    out["city"] = _text(data, "city", 100)
    if not out["street"]:
        errors["street"] = _("Enter the street and house number.")
    if not out["city"]:
        errors["city"] = _("Enter the city.")
    check("postal_code", lambda: normalise_postal_code(data.get("postal_code"), country))

    def language():
        try:
            return Language(data.get("language") or "cs")
        except ValueError as exc:
            raise DomainError(_("Choose a language."), field="language") from exc

    check("language", language)

    def billing_plan():
        value = data.get("billing_plan_id")
        if value in (None, "", 0, "0"):
            return None
        try:
            ident = int(value)
        except (TypeError, ValueError) as exc:
            raise DomainError(_("Choose a billing plan."), field="billing_plan_id") from exc
        if session.get(BillingPlan, ident) is None:
            raise DomainError(_("Choose a billing plan."), field="billing_plan_id")
        return ident

    check("billing_plan_id", billing_plan)

    def credit_limit():
        value = data.get("credit_limit")
        if value in (None, ""):
            return ZERO
        try:
            amount = Decimal(str(value).replace(" ", "").replace(",", "."))
        except InvalidOperation as exc:
            raise DomainError(_("Enter an amount, e.g. 500 or 500.00."), field="credit_limit") from exc
        if not amount.is_finite() or amount < 0 or amount >= Decimal("10000000000"):
            raise DomainError(_("The credit limit is zero or more."), field="credit_limit")
        return amount.quantize(Decimal("0.01"))

    check("credit_limit", credit_limit)
    out["note"] = str(data.get("note") or "").strip()[:5000]
    out["active"] = bool(data.get("active"))

    def groups():
        raw = data.get("group_ids") or []
        try:
            ids = sorted({int(v) for v in raw})
        except (TypeError, ValueError) as exc:
            raise DomainError(_("Choose groups from the list."), field="group_ids") from exc
        found = list(session.scalars(select(CustomerGroup).where(CustomerGroup.id.in_(ids)).order_by(CustomerGroup.name))) if ids else []
        if len(found) != len(ids):
            raise DomainError(_("Choose groups from the list."), field="group_ids")
        return found

    check("groups", groups)
    if errors:
        raise CustomerInvalid(errors)
    return out


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
    m = customer_group_membership
    counts_q = select(m.c.group_id, func.count()).join(Customer, Customer.id == m.c.customer_id)
    if location_ids is not None:
        counts_q = counts_q.where(Customer.location_id.in_(list(location_ids)))
    counts = dict(session.execute(counts_q.group_by(m.c.group_id)).all())
    groups = session.scalars(select(CustomerGroup).order_by(CustomerGroup.name))
    return [(g, counts.get(g.id, 0)) for g in groups]


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
    """The selfcare login staff view the customer through: the oldest active one."""
    return session.scalar(_IMPERSONATION_LOGIN, {"customer_id": customer.id})


_IMPERSONATION_LOGIN = (select(CustomerLogin)
                        .where(CustomerLogin.customer_id == bindparam("customer_id"), CustomerLogin.active.is_(True))
                        .order_by(CustomerLogin.id).limit(1))


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
