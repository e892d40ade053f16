"""Staff customers: the forms (customer, contact, address, group, filters), their choices,
rule errors next to fields, and the edit page that holds the customer, contact and address
forms at once."""
from __future__ import annotations

from babel import Locale
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from portal.domain import customers as rules
from portal.domain import selfcare_logins as login_rules
from portal.domain.recipients import billing_email
from portal.extensions import db
from portal.models import (
    AddressKind,
    BillingPlan,
    ContactKind,
    ContactPurpose,
    CustomerGroup,
    CustomerKind,
    Language,
    Location,
    LoginRole,
)
from portal.web.forms import MultiCheckboxField, choices, int_or_none
from portal.web.htmx import render


class CustomerFilterForm(FlaskForm):
    """GET filters of the customer list (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"))
    location = SelectField(_l("Location"), coerce=int_or_none, validate_choice=False)
    state = SelectField(_l("State"), validate_choice=False)
    kind = SelectField(_l("Kind"), validate_choice=False)
    group = SelectField(_l("Group"), coerce=int_or_none, validate_choice=False)


class CustomerForm(FlaskForm):
    """Shape only; the rules (check digits, required names, allowed locations) are the
    domain's and come back as field errors."""

    kind = SelectField(_l("Kind"), validate_choice=False)
    first_name = StringField(_l("First name"))
    last_name = StringField(_l("Last name"))
    company_name = StringField(_l("Company name"))
    company_id = StringField(_l("Company ID (IČO)"))
    vat_id = StringField(_l("VAT ID (DIČ)"), description=_l("With the country code, e.g. CZ12345679."))
    iban = StringField(_l("Bank account (IBAN)"))
    birth_date = StringField(_l("Birth date"), render_kw={"type": "date"})
    street = StringField(_l("Street and number"))
    city = StringField(_l("City"))
    postal_code = StringField(_l("Postal code"))
    country = SelectField(_l("Country"), validate_choice=False)
    language = SelectField(_l("Language of documents"), validate_choice=False)
    location_id = SelectField(_l("Location"), validate_choice=False)
    billing_plan_id = SelectField(_l("Billing plan"), validate_choice=False)
    credit_limit = StringField(_l("Credit limit"), default="0.00")
    group_ids = MultiCheckboxField(_l("Groups"), validate_choice=False)
    note = TextAreaField(_l("Note"), description=_l("For staff only."))
    active = BooleanField(_l("Active"), default=True)
    customer_number = StringField(_l("Customer number"), description=_l("Leave empty for the next free number."))
    variable_symbol = StringField(_l("Variable symbol"), description=_l("Leave empty to derive it from the customer number."))


class ContactForm(FlaskForm):
    kind = SelectField(_l("Kind"), validate_choice=False)
    value = StringField(_l("E-mail or phone"))
    purpose = SelectField(_l("Purpose"), validate_choice=False)
    primary = BooleanField(_l("Primary"))


class AddressForm(FlaskForm):
    kind = SelectField(_l("Kind"), validate_choice=False)
    street = StringField(_l("Street and number"))
    city = StringField(_l("City"))
    postal_code = StringField(_l("Postal code"))
    country = SelectField(_l("Country"), validate_choice=False)
    note = StringField(_l("Note"))


class GroupForm(FlaskForm):
    name = StringField(_l("Name"))
    description = TextAreaField(_l("Description"))


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


def countries():
    territories = Locale.parse(str(get_locale() or "en")).territories
    pairs = sorted(((code, name) for code, name in territories.items()
                    if len(code) == 2 and code.isalpha() and code not in ("EU", "EZ", "UN", "QO", "XA", "XB", "XK", "ZZ")),
                   key=lambda p: (p[0] not in ("CZ", "SK"), p[1]))
    return choices(pairs)


def kind_labels():
    return {CustomerKind.PERSON.value: _("Person"), CustomerKind.COMPANY.value: _("Company")}


def purpose_labels():
    return {ContactPurpose.BILLING.value: _("Billing"), ContactPurpose.TECHNICAL.value: _("Technical"),
            ContactPurpose.GENERAL.value: _("General")}


def address_labels():
    return {AddressKind.POSTAL.value: _("Postal"), AddressKind.INSTALLATION.value: _("Installation")}


def allowed_locations():
    stmt = select(Location).order_by(Location.name)
    ids = current_user.location_ids
    if ids is not None:
        stmt = stmt.where(Location.id.in_(ids))
    return list(db.session.scalars(stmt))


def build_customer_form(customer=None, formdata=None) -> CustomerForm:
    form = CustomerForm(formdata=formdata, obj=customer) if customer is not None else CustomerForm(formdata=formdata)
    form.kind.choices = choices(kind_labels().items())
    form.country.choices = countries()
    form.language.choices = choices([(Language.CS.value, "Čeština"), (Language.EN.value, "English")])
    form.location_id.choices = choices((loc.id, loc.name) for loc in allowed_locations())
    plans = db.session.scalars(select(BillingPlan).order_by(BillingPlan.name))
    form.billing_plan_id.choices = choices([("", _("— none —"))] + [(p.id, p.name) for p in plans])
    groups = db.session.scalars(select(CustomerGroup).order_by(CustomerGroup.name))
    form.group_ids.choices = choices((g.id, g.name) for g in groups)
    if customer is not None and formdata is None:
        form.kind.data = customer.kind.value
        form.language.data = customer.language.value
        form.location_id.data = str(customer.location_id)
        form.billing_plan_id.data = str(customer.billing_plan_id or "")
        form.group_ids.data = [str(g.id) for g in customer.groups]
        form.birth_date.data = customer.birth_date.isoformat() if customer.birth_date else ""
        form.iban.data = rules.format_iban(customer.iban)
        form.credit_limit.data = f"{customer.credit_limit:.2f}"
    elif customer is None and formdata is None:
        form.country.data = "CZ"
        form.kind.data = CustomerKind.PERSON.value
        form.language.data = Language.CS.value
    return form


def build_contact_form(contact=None, formdata=None) -> ContactForm:
    # Prefixed: the edit page holds the customer, contact and address forms at once.
    form = ContactForm(formdata=formdata, obj=contact, prefix="contact")
    form.kind.choices = choices([(ContactKind.EMAIL.value, _("E-mail")), (ContactKind.PHONE.value, _("Phone"))])
    form.purpose.choices = choices(purpose_labels().items())
    if contact is not None and formdata is None:
        form.kind.data, form.purpose.data = contact.kind.value, contact.purpose.value
    return form


def build_address_form(address=None, formdata=None, country: str = "CZ") -> AddressForm:
    form = AddressForm(formdata=formdata, obj=address, prefix="address")
    form.kind.choices = choices(address_labels().items())
    form.country.choices = countries()
    if formdata is None:
        if address is not None:
            form.kind.data = address.kind.value
        else:
            form.country.data = country
            form.kind.data = AddressKind.INSTALLATION.value
    return form


def edit_page(customer, form=None, contact_form=None, address_form=None, status=200):
    return render("staff/customers/form.html", status=status, customer=customer,
                  form=form or build_customer_form(customer),
                  contact_form=contact_form or build_contact_form(),
                  address_form=address_form or build_address_form(country=customer.country),
                  action_form=ActionForm(), purpose_labels=purpose_labels(), address_labels=address_labels())



class InviteLoginForm(FlaskForm):
    """Staff invite a selfcare login: the address and the role."""

    email = StringField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    role = SelectField(_l("Role"), validate_choice=False)


class LoginRoleForm(FlaskForm):
    role = SelectField(_l("Role"), validate_choice=False)


def build_invite_form(customer, formdata=None) -> InviteLoginForm:
    form = InviteLoginForm(formdata=formdata, prefix="invite")
    form.role.choices = choices([(r.value, str(label)) for r, label in login_rules.role_labels().items()])
    if formdata is None:
        form.email.data = billing_email(db.session, customer) or ""
        form.role.data = LoginRole.OWNER.value
    return form


def selfcare_access_context(customer, invite_form=None) -> dict:
    """What the customer page's "Selfcare access" section shows: the logins with their state,
    the invitation form (prefilled with the billing or primary e-mail) and the role choices."""
    role_form = LoginRoleForm(formdata=None, prefix="login")
    role_form.role.choices = choices([(r.value, str(label)) for r, label in login_rules.role_labels().items()])
    return {"logins": login_rules.customer_logins(db.session, customer),
            "invite_form": invite_form or build_invite_form(customer),
            "login_role_form": role_form,
            "login_state_labels": login_rules.state_labels(), "login_role_labels": login_rules.role_labels()}
