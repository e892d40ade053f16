"""Staff area: operators and roles (right `operators.admin`), and every operator's own
second factor at /staff/security (open to every operator; with OPERATOR_TOTP_REQUIRED the
only page an operator without TOTP can open — see portal/auth/enrolment.py)."""
from __future__ import annotations

import segno
from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional

from portal.domain import DomainError
from portal.domain import operators as rules
from portal.extensions import db
from portal.mail import send_email
from portal.models import RIGHTS, Location, Operator, Role
from portal.security.sessions import active_sessions
from portal.security.totp import provisioning_uri
from portal.staff import bp
from portal.staff.common import csv_response, get_or_404, operator_actor, wants_csv
from portal.web.access import operator_required, requires
from portal.web.actions import carry_out, refused, saved, see_other
from portal.web.forms import (
    EmptyForm,
    MultiCheckboxField,
    ProofForm,
    TotpConfirmForm,
    choices,
    field_error,
)
from portal.web.htmx import render

RIGHT = "operators.admin"


# ---------------------------------------------------------------------------------- forms

class OperatorForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    role_ids = MultiCheckboxField(_l("Roles"), coerce=int, validate_choice=False)
    location_ids = MultiCheckboxField(_l("Locations"), coerce=int, validate_choice=False,
                                      description=_l("None ticked: every location."))


class NewOperatorForm(OperatorForm):
    email = StringField(_l("E-mail"), validators=[InputRequired(), Length(max=254)])
    password = PasswordField(_l("Initial password"), validators=[Optional(), Length(max=200)],
                             description=_l("Leave empty to e-mail them a link to choose their own."))


class RoleForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=100)])
    rights = MultiCheckboxField(_l("Rights"),
                                choices=choices([(code, f"{code} — {text}") for code, text in RIGHTS.items()]),
                                validate_choice=False)


def _access_choices(form: OperatorForm) -> None:
    form.role_ids.choices = choices([(r.id, r.name) for r in db.session.scalars(select(Role).order_by(Role.name))])
    form.location_ids.choices = choices([(loc.id, f"{loc.code} — {loc.name}")
                                         for loc in db.session.scalars(select(Location).order_by(Location.code))])


# ------------------------------------------------------------------------------ operators

@bp.get("/operators")
@requires(RIGHT)
def operators():
    ops = list(db.session.scalars(select(Operator).order_by(Operator.active.desc(), Operator.name, Operator.id)))
    if wants_csv():
        return csv_response(
            "operators.csv", ["id", "name", "email", "active", "roles", "locations", "totp", "last_login_at"],
            ([op.id, op.name, op.email, op.active, "; ".join(r.name for r in op.roles),
              "; ".join(loc.code for loc in op.locations) or "*", op.totp_enabled_at is not None, op.last_login_at]
             for op in ops),
        )
    return render("staff/operators/index.html", operators=ops, admins=rules.active_admin_count(db.session))


@bp.route("/operators/new", methods=["GET", "POST"])
@requires(RIGHT)
def operator_new():
    form = NewOperatorForm()
    _access_choices(form)
    if request.method == "POST":
        if form.validate():
            try:
                op, token = rules.add_operator(
                    db.session, operator_actor(), email=form.email.data, name=form.name.data,
                    password=form.password.data or None, role_ids=form.role_ids.data or [],
                    location_ids=form.location_ids.data or [],
                    link_max_age=current_app.config["OPERATOR_INVITATION_MAX_AGE"],
                )
            except DomainError as exc:
                db.session.rollback()
                field_error(form, exc)
            else:
                if token:
                    link = url_for("auth.operator_reset", token=token, _external=True)
                    send_email(op.email, _("Your staff account"), "operator_invitation", link=link, name=op.name,
                               inviter=current_user.name)
                db.session.commit()
                flash(_("Operator %(email)s created.", email=op.email)
                      + (" " + _("They have been e-mailed a link to choose a password.") if token else ""), "success")
                return see_other(url_for("staff.operator_detail", operator_id=op.id))
        return render("staff/operators/new.html", block="operator_form", status=422, form=form)
    return render("staff/operators/new.html", form=form)


def _operator_page(op: Operator, form: OperatorForm, status: int = 200, block: str | None = None):
    return render("staff/operators/detail.html", block=block, status=status, op=op, form=form,
                  empty_form=EmptyForm(formdata=None), sessions=active_sessions(op),
                  is_self=op.id == current_user.id)


@bp.route("/operators/<int:operator_id>", methods=["GET", "POST"])
@requires(RIGHT)
def operator_detail(operator_id: int):
    op = get_or_404(Operator, operator_id)
    if request.method == "GET":
        form = OperatorForm(obj=op)
        form.role_ids.data = [r.id for r in op.roles]
        form.location_ids.data = [loc.id for loc in op.locations]
        _access_choices(form)
        return _operator_page(op, form)
    form = OperatorForm()
    _access_choices(form)
    if form.validate():
        return carry_out(
            lambda: rules.update_operator(db.session, operator_actor(), op, name=form.name.data,
                                          role_ids=form.role_ids.data or [],
                                          location_ids=form.location_ids.data or []),
            refused=lambda exc: _operator_page(op, field_error(form, exc), status=422, block="operator_form"),
            done=lambda changes: saved(_("Saved.") if changes else _("Nothing changed."),
                                       url_for("staff.operator_detail", operator_id=op.id), htmx_form=True))
    return _operator_page(op, form, status=422, block="operator_form")


def _operator_action(operator_id: int, apply, message: str):
    op = get_or_404(Operator, operator_id)
    if not EmptyForm().validate():
        abort(400)
    page = url_for("staff.operator_detail", operator_id=operator_id)
    return carry_out(lambda: apply(op), refused=lambda exc: refused(exc, page), done=lambda _result: saved(message, page))


@bp.post("/operators/<int:operator_id>/deactivate")
@requires(RIGHT)
def operator_deactivate(operator_id: int):
    return _operator_action(operator_id, lambda op: rules.deactivate_operator(db.session, operator_actor(), op),
                            _("The operator is deactivated and logged out everywhere."))


@bp.post("/operators/<int:operator_id>/reactivate")
@requires(RIGHT)
def operator_reactivate(operator_id: int):
    return _operator_action(operator_id, lambda op: rules.reactivate_operator(db.session, operator_actor(), op),
                            _("The operator can log in again."))


@bp.post("/operators/<int:operator_id>/reset-totp")
@requires(RIGHT)
def operator_reset_totp(operator_id: int):
    return _operator_action(operator_id, lambda op: rules.reset_operator_totp(db.session, operator_actor(), op),
                            _("Two-factor authentication was reset; the next login asks for the password only."))


# ---------------------------------------------------------------------------------- roles

@bp.get("/operators/roles")
@requires(RIGHT)
def operator_roles():
    roles = list(db.session.scalars(select(Role).order_by(Role.name)))
    holders: dict[int, int] = {}
    for op in db.session.scalars(select(Operator).where(Operator.active.is_(True))):
        for r in op.roles:
            holders[r.id] = holders.get(r.id, 0) + 1
    if wants_csv():
        return csv_response("roles.csv", ["id", "name", "rights", "active_operators"],
                            ([r.id, r.name, " ".join(x.code for x in r.rights), holders.get(r.id, 0)] for r in roles))
    return render("staff/operators/roles.html", roles=roles, holders=holders)


def _role_page(form: RoleForm, role: Role | None, status: int = 200, block: str | None = None):
    return render("staff/operators/role.html", block=block, status=status, form=form, role=role,
                  empty_form=EmptyForm(formdata=None))


def _save_role(role: Role | None):
    if request.method == "GET":
        form = RoleForm(obj=role)
        form.rights.data = [r.code for r in role.rights] if role else []
        return _role_page(form, role)
    form = RoleForm()
    if form.validate():
        return carry_out(
            lambda: rules.save_role(db.session, operator_actor(), role, name=form.name.data,
                                    right_codes=form.rights.data or []),
            refused=lambda exc: _role_page(field_error(form, exc), role, status=422, block="role_form"),
            done=lambda result: saved(_("Role “%(name)s” saved.", name=result.name), url_for("staff.operator_roles"),
                                      htmx_form=True))
    return _role_page(form, role, status=422, block="role_form")


@bp.route("/operators/roles/new", methods=["GET", "POST"])
@requires(RIGHT)
def operator_role_new():
    return _save_role(None)


@bp.route("/operators/roles/<int:role_id>", methods=["GET", "POST"])
@requires(RIGHT)
def operator_role(role_id: int):
    return _save_role(get_or_404(Role, role_id))


@bp.post("/operators/roles/<int:role_id>/delete")
@requires(RIGHT)
def operator_role_delete(role_id: int):
    role = get_or_404(Role, role_id)
    if not EmptyForm().validate():
        abort(400)
    name = role.name
    return carry_out(lambda: rules.delete_role(db.session, operator_actor(), role),
                     refused=lambda exc: refused(exc, url_for("staff.operator_role", role_id=role_id)),
                     done=lambda _result: saved(_("Role “%(name)s” deleted.", name=name), url_for("staff.operator_roles")))


# ----------------------------------------------------------- the operator's own second factor

def _issuer() -> str:
    return current_app.config.get("SITE_NAME") or current_app.config.get("SUPPLIER_NAME") or "Portal"


def _security_page(status: int = 200, **bound):
    op = current_user
    secret = rules.pending_secret(op)
    qr = None
    if secret:
        qr = segno.make(provisioning_uri(secret, op.email, _issuer() + " staff"), error="m").svg_data_uri(scale=5,
                                                                                                        border=2)
    return render(
        "staff/operators/security.html", status=status, op=op, enabled=op.totp_enabled_at is not None,
        required=rules.totp_required(op, current_app.config), secret=secret, qr=qr,
        recovery_left=len(op.recovery_code_hashes or []), empty_form=EmptyForm(formdata=None),
        confirm_form=bound.get("confirm") or TotpConfirmForm(formdata=None),
        disable_form=bound.get("disable") or ProofForm(formdata=None, prefix="disable"),
        codes_form=bound.get("codes") or ProofForm(formdata=None, prefix="codes"),
    )


@bp.route("/security", methods=["GET", "POST"])
@operator_required
def security():
    """The operator's own two-factor set-up. One URL; the POST's `action` says which step:
    start (a new secret), confirm (the first code turns it on), codes (new recovery codes),
    disable (not where it is required)."""
    if request.method == "GET":
        return _security_page()
    op = current_user._get_current_object()
    actor = operator_actor()
    action = request.form.get("action", "")
    try:
        if action == "start":
            if not EmptyForm().validate():
                abort(400)
            rules.start_totp_enrolment(db.session, op, actor)
            db.session.commit()
            return redirect(url_for("staff.security", _anchor="totp"))
        if action == "confirm":
            form = TotpConfirmForm()
            if not form.validate():
                return _security_page(status=422, confirm=form)
            try:
                codes = rules.confirm_totp(db.session, op, form.code.data, actor)
            except DomainError as exc:
                db.session.rollback()
                field_error(form, exc)
                return _security_page(status=422, confirm=form)
            db.session.commit()
            return render("staff/operators/recovery_codes.html", codes=codes,
                          message=_("Two-factor authentication is on. Logging in now asks for a code from your app."))
        if action in ("codes", "disable"):
            form = ProofForm(prefix=action)
            if not form.validate():
                return _security_page(status=422, **{action: form})
            try:
                if action == "codes":
                    codes = rules.regenerate_recovery_codes(db.session, op, form.proof.data, actor)
                else:
                    rules.disable_totp(db.session, op, form.proof.data, actor, current_app.config)
            except DomainError as exc:
                db.session.rollback()
                field_error(form, exc)
                return _security_page(status=422, **{action: form})
            db.session.commit()
            if action == "codes":
                return render("staff/operators/recovery_codes.html", codes=codes,
                              message=_("New recovery codes. The old ones no longer work."))
            flash(_("Two-factor authentication is off."), "success")
            return redirect(url_for("staff.security"))
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("staff.security"))
    abort(400)
