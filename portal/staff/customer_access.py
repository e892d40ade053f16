"""Staff customers: selfcare access — invite a login (e-mailed single-use link), send the
invitation again, revoke it, disable or enable a login, change its role. The list is the
"Selfcare access" section of the customer's overview."""
from __future__ import annotations

from flask import abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.domain import selfcare_logins as rules
from portal.extensions import db
from portal.models import CustomerLogin
from portal.staff import bp
from portal.staff.common import operator_actor, scoped_customer_or_404
from portal.staff.customer_forms import ActionForm, LoginRoleForm, build_invite_form
from portal.staff.customers import _customer_page
from portal.web.access import requires
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import choices, field_error


def _page(customer_id: int) -> str:
    return url_for("staff.customer_detail", customer_id=customer_id) + "#selfcare-access"


def _max_age():
    return current_app.config["CUSTOMER_INVITATION_MAX_AGE"]


def _mail(login: CustomerLogin, token: str) -> None:
    link = url_for("auth.customer_invitation", token=token, _external=True)
    rules.mail_invitation(login, link, current_user.name, _max_age())


@bp.post("/customers/<int:customer_id>/logins")
@requires("customers.read", "customers.write")
def customer_login_invite(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    form = build_invite_form(customer, formdata=request.form)
    if not form.validate():
        return _customer_page(customer_id, "overview", invite_form=form, status=422)

    def invite():
        login, token = rules.invite_login(db.session, operator_actor(), customer, form.email.data,
                                          form.role.data, _max_age())
        _mail(login, token)
        return login

    return carry_out(
        invite,
        refused=lambda exc: _customer_page(customer_id, "overview", invite_form=field_error(form, exc), status=422),
        done=lambda login: saved(_("Invitation sent to %(email)s.", email=login.email), _page(customer_id),
                                 code=303))


def _login_action(customer_id: int, login_id: int, apply, message: str):
    customer = scoped_customer_or_404(customer_id)
    login = db.session.scalar(select(CustomerLogin).where(CustomerLogin.id == login_id,
                                                          CustomerLogin.customer_id == customer.id))
    if login is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    page = _page(customer_id)
    return carry_out(lambda: apply(login), refused=lambda exc: refused(exc, page),
                     done=lambda _result: saved(message, page, code=303))


@bp.post("/customers/<int:customer_id>/logins/<int:login_id>/resend")
@requires("customers.read", "customers.write")
def customer_login_resend(customer_id: int, login_id: int):
    def resend(login):
        _mail(login, rules.resend_invitation(db.session, operator_actor(), login, _max_age()))

    return _login_action(customer_id, login_id, resend,
                         _("The invitation was sent again; the earlier link no longer works."))


@bp.post("/customers/<int:customer_id>/logins/<int:login_id>/revoke")
@requires("customers.read", "customers.write")
def customer_login_revoke(customer_id: int, login_id: int):
    return _login_action(customer_id, login_id, lambda login: rules.revoke_invitation(db.session, operator_actor(), login),
                         _("The invitation was revoked; its link no longer works."))


@bp.post("/customers/<int:customer_id>/logins/<int:login_id>/disable")
@requires("customers.read", "customers.write")
def customer_login_disable(customer_id: int, login_id: int):
    return _login_action(customer_id, login_id, lambda login: rules.disable_login(db.session, operator_actor(), login),
                         _("The login is disabled and logged out everywhere."))


@bp.post("/customers/<int:customer_id>/logins/<int:login_id>/enable")
@requires("customers.read", "customers.write")
def customer_login_enable(customer_id: int, login_id: int):
    return _login_action(customer_id, login_id, lambda login: rules.enable_login(db.session, operator_actor(), login),
                         _("The login can log in again."))


@bp.post("/customers/<int:customer_id>/logins/<int:login_id>/role")
@requires("customers.read", "customers.write")
def customer_login_role(customer_id: int, login_id: int):
    form = LoginRoleForm(prefix="login")
    form.role.choices = choices([(r.value, str(label)) for r, label in rules.role_labels().items()])
    return _login_action(customer_id, login_id,
                         lambda login: rules.change_role(db.session, operator_actor(), login, form.role.data),
                         _("Role saved."))
