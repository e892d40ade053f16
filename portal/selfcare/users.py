"""Selfcare users (the owner's page): the account's logins, invite a user with a role (an
e-mailed single-use link), send again, revoke, disable/enable, change role. The domain keeps
an active owner among them."""
from __future__ import annotations

from flask import abort, current_app, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.domain import selfcare_logins as rules
from portal.extensions import db
from portal.models import CustomerLogin
from portal.selfcare import bp
from portal.selfcare.common import current_customer_id, customer_actor, customer_writes
from portal.selfcare.forms import InviteUserForm, UserRoleForm
from portal.web.access import customer_required
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, choices, field_error
from portal.web.htmx import render


def _role_choices(form):
    form.role.choices = choices([(r.value, str(label)) for r, label in rules.role_labels().items()])
    return form


def _page(form: InviteUserForm | None = None, status: int = 200):
    return render("selfcare/users.html", status=status, block="invite_form" if status != 200 else None,
                  logins=rules.customer_logins(db.session, current_user.customer),
                  form=form or _role_choices(InviteUserForm(formdata=None)), empty_form=EmptyForm(formdata=None),
                  role_labels=rules.role_labels(), state_labels=rules.state_labels())


def _max_age():
    return current_app.config["CUSTOMER_INVITATION_MAX_AGE"]


def _mail(login: CustomerLogin, token: str) -> None:
    rules.mail_invitation(login, url_for("auth.customer_invitation", token=token, _external=True),
                          current_user.email, _max_age())


@bp.get("/users")
@customer_required
def users():
    return _page()


@bp.post("/users")
@customer_writes
def user_invite():
    form = _role_choices(InviteUserForm())
    if not form.validate():
        return _page(form, status=422)

    def invite():
        login, token = rules.invite_login(db.session, customer_actor(), current_user.customer, form.email.data,
                                          form.role.data, _max_age())
        _mail(login, token)
        return login

    return carry_out(invite, refused=lambda exc: _page(field_error(form, exc), status=422),
                     done=lambda login: saved(_("Invitation sent to %(email)s.", email=login.email),
                                              url_for("selfcare.users"), code=303))


ACTIONS = {
    "resend": (lambda login: _mail(login, rules.resend_invitation(db.session, customer_actor(), login, _max_age())),
               lambda: _("The invitation was sent again; the earlier link no longer works.")),
    "revoke": (lambda login: rules.revoke_invitation(db.session, customer_actor(), login),
               lambda: _("The invitation was revoked; its link no longer works.")),
    "disable": (lambda login: rules.disable_login(db.session, customer_actor(), login),
                lambda: _("The login is disabled and logged out everywhere.")),
    "enable": (lambda login: rules.enable_login(db.session, customer_actor(), login),
               lambda: _("The login can log in again.")),
    "role": (lambda login: rules.change_role(db.session, customer_actor(), login,
                                             _role_choices(UserRoleForm(prefix="user")).role.data),
             lambda: _("Role saved.")),
}


@bp.post("/users/<int:login_id>/<action>")
@customer_writes
def user_action(login_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    # Only the account's own logins; another customer's id is a 404 like any foreign id.
    login = db.session.scalar(select(CustomerLogin).where(CustomerLogin.id == login_id,
                                                          CustomerLogin.customer_id == current_customer_id()))
    if login is None:
        abort(404)
    if not EmptyForm().validate():
        abort(400)
    apply, message = ACTIONS[action]
    page = url_for("selfcare.users")
    return carry_out(lambda: apply(login), refused=lambda exc: refused(exc, page),
                     done=lambda _result: saved(message(), page, code=303))
