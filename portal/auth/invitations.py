"""A selfcare invitation link: the invitee chooses a password and is logged in. The link is
single-use and expires; a used, expired or withdrawn one shows a page that says so."""
from __future__ import annotations

from flask import current_app, flash, redirect, url_for
from flask_babel import gettext as _

from portal.auth import bp
from portal.auth.forms import ResetPasswordForm
from portal.auth.views import _ctx
from portal.domain import DomainError
from portal.domain import selfcare_logins as rules
from portal.extensions import db, limiter
from portal.models import Face
from portal.security.sessions import client_ip, end_session, start_session
from portal.web.htmx import render


def _ip_limit():
    return current_app.config["LOGIN_LIMIT_PER_IP"]


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def customer_invitation(token):
    login = rules.invitation_login(db.session, token)
    if login is None:
        return render("auth/invitation_invalid.html", status=410, **_ctx(Face.CUSTOMER))
    form = ResetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            login = rules.accept_invitation(db.session, token, form.password.data, ip=client_ip())
        except DomainError as exc:
            db.session.rollback()
            form.password.errors = [str(exc)]
            status = 422
        else:
            end_session()
            start_session(login)
            db.session.commit()
            flash(_("Welcome. Your password is set and you are logged in."), "success")
            return redirect(url_for("selfcare.dashboard"))
    elif form.is_submitted():
        status = 422
    return render("auth/invitation.html", status=status, login=login, **_ctx(Face.CUSTOMER, form=form))
