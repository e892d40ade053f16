"""A customer form checked and normalised (`validate_customer`): identity, billing address,
plan, location, groups. Company ID (IČO) and VAT ID (DIČ) are checked with their check digits
(python-stdnum), IBANs likewise. Several wrong fields are refused at once (`CustomerInvalid`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat
from stdnum.exceptions import ValidationError

from portal.domain import DomainError
from portal.models import (
    BillingPlan,
    CustomerGroup,
    CustomerKind,
    Language,
    Location,
)
from portal.models.base import ZERO


class CustomerInvalid(DomainError):
    """Several fields of a customer form are wrong: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        first_field, first_message = next(iter(errors.items()))
        super().__init__(first_message, field=first_field)
        self.errors = errors

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
