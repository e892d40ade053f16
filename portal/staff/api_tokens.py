"""Staff area: API tokens at /staff/api-tokens. Every operator manages their own tokens (no
right needed: a token never has more than its operator — portal.domain.api_tokens enforces
it); an operator with `operators.admin` sees every operator's tokens and may revoke any. The
secret is shown once, on the answer to the creating POST; afterwards only its prefix."""
from __future__ import annotations

from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Length, Optional

from portal.domain import DomainError
from portal.domain import api_tokens as rules
from portal.extensions import db
from portal.models import RIGHTS, ApiToken, Location
from portal.staff import bp
from portal.staff.common import get_or_404, operator_actor
from portal.web.access import operator_required
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, MultiCheckboxField, choices, field_error
from portal.web.htmx import render

ADMIN = "operators.admin"


class TokenForm(FlaskForm):
    # Field names are the ones the rule names in its refusals (name, expires, rights, locations).
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)],
                       description=_l("What the token is for, e.g. the system that uses it."))
    expires = IntegerField(_l("Expires after (days)"), validators=[Optional()],
                           description=_l("Empty: never expires."))
    # The choices are what the operator has; a value beyond them is for the rule to refuse
    # (next to the field), not for the form to drop silently.
    rights = MultiCheckboxField(_l("Rights"), validate_choice=False)
    locations = MultiCheckboxField(_l("Locations"), coerce=int, validate_choice=False,
                                   description=_l("None ticked: all of your locations."))


def _is_admin() -> bool:
    return current_user.has_right(ADMIN)


def _own_locations() -> list[Location]:
    stmt = select(Location).order_by(Location.code)
    ids = current_user.location_ids
    if ids is not None:
        stmt = stmt.where(Location.id.in_(ids))
    return list(db.session.scalars(stmt))


def _grant_choices(form: TokenForm) -> TokenForm:
    form.rights.choices = choices([(code, f"{code} — {text}") for code, text in RIGHTS.items()
                                   if current_user.has_right(code)])
    form.locations.choices = choices([(loc.id, f"{loc.code} — {loc.name}") for loc in _own_locations()])
    return form


def _visible_token_or_404(token_id: int) -> ApiToken:
    """The operator's own token, or any token for an administrator; else 404 (as if it did not exist)."""
    token = get_or_404(ApiToken, token_id)
    if token.operator_id != current_user.id and not _is_admin():
        abort(404)
    return token


@bp.get("/api-tokens")
@operator_required
def api_tokens():
    everyone = _is_admin()
    tokens = rules.tokens_of(db.session, None if everyone else current_user._get_current_object())
    codes = {loc.id: loc.code for loc in db.session.scalars(select(Location))}
    return render("staff/api_tokens/index.html", tokens=tokens, everyone=everyone, location_codes=codes,
                  state_of=rules.token_state)


def _new_page(form: TokenForm, status: int = 200):
    return render("staff/api_tokens/new.html", block="token_form", status=status, form=form)


@bp.route("/api-tokens/new", methods=["GET", "POST"])
@operator_required
def api_token_new():
    if request.method == "GET":
        return _new_page(_grant_choices(TokenForm(formdata=None)))
    form = _grant_choices(TokenForm())
    if not form.validate():
        return _new_page(form, status=422)
    try:
        token, secret = rules.create_token(
            db.session, operator_actor(), current_user._get_current_object(), name=form.name.data,
            rights=form.rights.data or [], location_ids=form.locations.data or [],
            expires_in_days=form.expires.data)
    except DomainError as exc:
        db.session.rollback()
        return _new_page(field_error(form, exc), status=422)
    db.session.commit()
    # The only time the secret is on a page: not a redirect (it would have to be kept somewhere),
    # and never cached.
    page, status = render("staff/api_tokens/created.html", token=token, secret=secret,
                          example_url=url_for("api_customers.list_customers", _external=True))
    return page, status, {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.route("/api-tokens/<int:token_id>/revoke", methods=["GET", "POST"])
@operator_required
def api_token_revoke(token_id: int):
    """GET: what will stop working, and Confirm; POST: revoke."""
    token = _visible_token_or_404(token_id)
    if request.method == "GET":
        return render("staff/api_tokens/revoke.html", token=token, form=EmptyForm(formdata=None))
    if not EmptyForm().validate():
        abort(400)
    listing = url_for("staff.api_tokens")
    name = token.name
    return carry_out(lambda: rules.revoke_token(db.session, operator_actor(), token),
                     refused=lambda exc: refused(exc, listing),
                     done=lambda _result: saved(_("Token “%(name)s” revoked.", name=name), listing))
