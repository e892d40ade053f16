"""Selfcare forms: they parse and check shape; business rules (allowed plan targets, the
last e-mail, password strength…) live in portal/domain and come back as field errors."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, Optional

from portal.models import ContactKind, ContactPurpose, RequestKind
from portal.web.forms import choices, int_or_none


class InvoiceFilterForm(FlaskForm):
    """GET filters of the invoice list (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    year = SelectField(_l("Year"), coerce=int_or_none, validate_choice=False)
    unpaid = BooleanField(_l("Unpaid only"))


class StatementForm(FlaskForm):
    """The period of an account statement (GET, no CSRF: it changes nothing). The range
    rules (start before end, at most five years) are checked in the view's `validate`."""

    class Meta:
        csrf = False

    start = DateField(_l("From"), validators=[InputRequired(message=_l("Enter the first day."))])
    end = DateField(_l("To"), validators=[InputRequired(message=_l("Enter the last day."))])

    MAX_DAYS = 5 * 366

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        if self.start.data > self.end.data:
            self.start.errors.append(_l("The first day must not be after the last day."))
            return False
        if (self.end.data - self.start.data).days > self.MAX_DAYS:
            self.end.errors.append(_l("Choose at most five years."))
            return False
        return True


# ---------------------------------------------------------------------------------- cancellation

class CancelIdentifyForm(FlaskForm):
    """Logged out: who is asking. The answer is the same whether the details match or not."""

    customer_number = StringField(_l("Customer number"), validators=[
        DataRequired(message=_l("Enter your customer number.")), Length(max=20)],
        description=_l("It is on every invoice."))
    email = StringField(_l("E-mail"), validators=[DataRequired(message=_l("Enter your e-mail address.")),
                                                  Length(max=254)],
                        render_kw={"autocomplete": "email", "type": "email"},
                        description=_l("An address we have for you: we send the link there."))


class CancelForm(FlaskForm):
    """Step 2: the service and the end date; sent again with `confirm` from the review page.
    An empty end date means the earliest possible one."""

    service_id = SelectField(_l("Service"), coerce=int_or_none, validate_choice=False,
                             validators=[InputRequired(message=_l("Choose the service."))])
    end_date = DateField(_l("End date"), validators=[Optional()],
                         description=_l("Leave empty for the earliest possible date."))
    confirm = HiddenField()


# ---------------------------------------------------------------------------------- plan change

class PlanChangeForm(FlaskForm):
    """Confirm a plan change (POST). The target must be one of the service's allowed targets
    (the choices the view sets); the date must not be in the past."""

    target_id = SelectField(_l("New plan"), coerce=int_or_none,
                            validators=[InputRequired(message=_l("Choose the new plan."))])
    on = DateField(_l("Effective from"), validators=[InputRequired(message=_l("Enter the date the change takes effect."))],
                   description=_l("By default the first day of your next billing period; another day is prorated."))


class PlanPreviewForm(PlanChangeForm):
    """The same fields as a GET (the preview changes nothing)."""

    class Meta:
        csrf = False


# ---------------------------------------------------------------------------------- requests

REQUEST_KIND_LABELS = {
    RequestKind.QUESTION: _l("Question"),
    RequestKind.COMPLAINT: _l("Complaint"),
    RequestKind.PLAN_CHANGE: _l("Change of plan"),
    RequestKind.MOVE: _l("Move to a new address"),
    RequestKind.CANCELLATION: _l("Cancellation"),
    RequestKind.OTHER: _l("Other"),
}


class NewRequestForm(FlaskForm):
    kind = SelectField(_l("What is it about?"), validators=[InputRequired()], choices=choices(
        (k.value, REQUEST_KIND_LABELS[k]) for k in (RequestKind.QUESTION, RequestKind.COMPLAINT,
                                                    RequestKind.PLAN_CHANGE, RequestKind.MOVE,
                                                    RequestKind.CANCELLATION)
    ))
    service_id = SelectField(_l("Service"), coerce=int_or_none, validate_choice=False,
                             description=_l("Needed for a change of plan, a move and a cancellation."))
    target_definition_id = SelectField(_l("New plan"), coerce=int_or_none, validate_choice=False,
                                       description=_l("For a change of plan: the plans offered for the chosen service."))
    new_street = StringField(_l("New street and house number"), validators=[Optional(), Length(max=200)],
                             render_kw={"autocomplete": "street-address"})
    new_city = StringField(_l("New city"), validators=[Optional(), Length(max=100)],
                           render_kw={"autocomplete": "address-level2"})
    new_postal_code = StringField(_l("New postal code"), validators=[Optional(), Length(max=20)],
                                  render_kw={"autocomplete": "postal-code"})
    subject = StringField(_l("Subject"), validators=[DataRequired(message=_l("Enter a subject.")), Length(max=200)])
    message = TextAreaField(_l("Message"), validators=[DataRequired(message=_l("Write your message.")),
                                                       Length(max=5000)],
                            render_kw={"rows": 6})


class CommentForm(FlaskForm):
    body = TextAreaField(_l("Your reply"), validators=[DataRequired(message=_l("Write your message.")),
                                                      Length(max=5000)],
                         render_kw={"rows": 4})
    attachments = MultipleFileField(_l("Files (optional)"),
                                    description=_l("PDF, PNG, JPEG or plain text files."),
                                    render_kw={"accept": ".pdf,.png,.jpg,.jpeg,.txt"})


# ---------------------------------------------------------------------------------- profile

CONTACT_KIND_LABELS = {ContactKind.EMAIL: _l("E-mail"), ContactKind.PHONE: _l("Phone")}
CONTACT_PURPOSE_LABELS = {
    ContactPurpose.BILLING: _l("Billing"),
    ContactPurpose.TECHNICAL: _l("Technical"),
    ContactPurpose.GENERAL: _l("General"),
}


class ContactForm(FlaskForm):
    kind = SelectField(_l("Type"), choices=choices((k.value, v) for k, v in CONTACT_KIND_LABELS.items()),
                       validators=[InputRequired()])
    value = StringField(_l("E-mail or phone"), validators=[DataRequired(message=_l("Enter an e-mail or a phone number.")),
                                                           Length(max=254)])
    purpose = SelectField(_l("Purpose"), choices=choices((k.value, v) for k, v in CONTACT_PURPOSE_LABELS.items()),
                          validators=[InputRequired()])


class RemoveContactForm(FlaskForm):
    """Only the CSRF token: the contact is in the URL."""


COUNTRIES = [("CZ", _l("Czechia")), ("SK", _l("Slovakia")), ("AT", _l("Austria")), ("DE", _l("Germany")),
             ("PL", _l("Poland"))]


class AddressForm(FlaskForm):
    street = StringField(_l("Street and house number"),
                         validators=[DataRequired(message=_l("Enter the street and house number.")), Length(max=200)],
                         render_kw={"autocomplete": "street-address"})
    city = StringField(_l("City"), validators=[DataRequired(message=_l("Enter the city.")), Length(max=100)],
                       render_kw={"autocomplete": "address-level2"})
    postal_code = StringField(_l("Postal code"),
                              validators=[DataRequired(message=_l("Enter the postal code.")), Length(max=20)],
                              render_kw={"autocomplete": "postal-code"})
    country = SelectField(_l("Country"), choices=choices(COUNTRIES), validators=[InputRequired()])


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), choices=choices([("cs", "Čeština"), ("en", "English")]),
                           validators=[InputRequired()])


class NotificationsForm(FlaskForm):
    notify_email = BooleanField(_l("Send me notices by e-mail (new invoice, reminders, request answers)"))


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(message=_l("Enter your current password."))],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(_l("New password"), validators=[DataRequired(message=_l("Enter a new password.")),
                                                                 Length(max=200)],
                                 render_kw={"autocomplete": "new-password"},
                                 description=_l("At least 10 characters. A few unrelated words make a strong password."))
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(message=_l("Repeat the new password.")),
                                        EqualTo("new_password", message=_l("The passwords differ."))],
                            render_kw={"autocomplete": "new-password"})


# ---------------------------------------------------------------------------------- security

__all__ = [
    "PlanChangeForm",
    "PlanPreviewForm",
    "CancelForm",
    "CancelIdentifyForm",
    "StatementForm",
    "AddressForm", "CommentForm", "ContactForm", "InvoiceFilterForm",
    "LanguageForm", "NewRequestForm", "NotificationsForm", "PasswordForm",
    "RemoveContactForm",
]


class InviteUserForm(FlaskForm):
    """The account owner invites a user of the account."""

    email = StringField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    role = SelectField(_l("Role"), validate_choice=False)


class UserRoleForm(FlaskForm):
    role = SelectField(_l("Role"), validate_choice=False)
