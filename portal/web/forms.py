"""Form helpers both faces use: select options, optional integers, a rule's refusal shown
next to its field, checkbox sets, and the forms both faces share (a button, two-factor steps)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

try:  # WTForms ≥ 3.3; plain tuples are deprecated there and go in 3.4
    from wtforms.fields.choices import SelectChoice
except ImportError:  # pragma: no cover — older WTForms takes (value, label) tuples
    SelectChoice = None


def choices(pairs) -> list:
    """(value, label) pairs as select options; None and "" both mean "nothing chosen"."""
    pairs = [("" if value is None else str(value), label) for value, label in pairs]
    if SelectChoice is None:
        return pairs
    return [SelectChoice(value=value, label=label) for value, label in pairs]


def int_or_none(value):
    """A select's coerce for optional ids: anything not a number is "nothing chosen"."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def field_error(form, exc, default_field: str | None = None):
    """Put a rule's refusal next to the field it names (next to `default_field` when it names
    none of this form's), else above the form; a refusal listing several fields (`errors`)
    puts each message in its place. Returns the form, so a refusal can be shown in one
    expression: `refused=lambda exc: page(field_error(form, exc), status=422)`."""
    errors = getattr(exc, "errors", None) or {getattr(exc, "field", None): str(exc)}
    for name, message in errors.items():
        if name not in form._fields:
            name = default_field
        if name and name in form._fields:
            form[name].errors = [*(form[name].errors or []), message]
        else:
            form.form_errors.append(message)
    return form


def validated(form):
    """The form with its checks run (a form built again after a rollback shows its own
    messages beside the rule's refusal). Returns the form."""
    form.validate()
    return form


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes (the forms macro draws it as a fieldset)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# Forms both faces show the same way: a button, and the second factor's steps.

class EmptyForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class TotpConfirmForm(FlaskForm):
    code = StringField(_l("Code from the app"), validators=[DataRequired(message=_l("Enter the 6-digit code.")),
                                                            Length(max=10)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class ProofForm(FlaskForm):
    proof = PasswordField(_l("Current code from the app, or your password"),
                          validators=[DataRequired(message=_l("Enter a current code from your app, or your password."))],
                          render_kw={"autocomplete": "current-password"})
