"""Form helpers both faces use: select options, optional integers, a rule's refusal shown
next to its field, checkbox sets."""
from __future__ import annotations

from wtforms import SelectMultipleField
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


def field_error(form, exc) -> None:
    """Put a rule's refusal (a DomainError naming its field) next to that field, or above the form."""
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None and hasattr(target, "errors"):
        target.errors = [*target.errors, str(exc)]
    else:
        form.form_errors.append(str(exc))


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes (the forms macro draws it as a fieldset)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()
