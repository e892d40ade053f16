from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth import bp
from portal.auth.forms import ForgotPasswordForm, LoginForm, ResetPasswordForm, SecondFactorForm
from portal.domain import DomainError
from portal.domain import accounts as rules
from portal.domain import customers as customer_rules
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.extensions import db, limiter
from portal.mail import send_email
from portal.models import Face, Operator
from portal.security import throttle
from portal.security.sessions import (
    _load_session_row,
    client_agent,
    client_ip,
    current_auth_session,
    end_all_sessions,
    end_impersonation,
    end_session,
    start_session,
)
from portal.security.totp import accept_totp, use_recovery_code
from portal.web.htmx import render

FACES = {
    Face.CUSTOMER: {"layout": "selfcare/layout.html", "home": "selfcare.dashboard", "prefix": ""},
    Face.OPERATOR: {"layout": "staff/layout.html", "home": "staff.dashboard", "prefix": "/staff"},
}


def _ctx(face: Face, **kw):
    return {"face": face.value, "layout": FACES[face]["layout"], **kw}


def safe_next(target: str | None, face: Face) -> str:
    """Only a local path of the same face; never another host (no open redirect)."""
    home = url_for(FACES[face]["home"])
    if not target:
        return home
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        # urlsplit silently drops tabs and newlines, and a newline in Location is a 500.
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    is_staff_path = target == "/staff" or target.startswith("/staff/")
    if (face == Face.OPERATOR) != is_staff_path:
        return home
    return target


def _account_key() -> str:
    """Rate-limit key per account AND address: a guesser's address runs out of attempts, the
    owner's does not (one account failing from many addresses: portal/security/throttle.py)."""
    return f"acct:{rules.normalise_email(request.form.get('email', ''))[:254]}|{client_ip() or '-'}"


def _ip_limit():
    return current_app.config["LOGIN_LIMIT_PER_IP"]


def _account_limit():
    return current_app.config["LOGIN_LIMIT_PER_ACCOUNT"]


def _login(face: Face):
    form = LoginForm()
    if current_user.is_authenticated and (current_user.is_operator == (face == Face.OPERATOR)):
        return redirect(url_for(FACES[face]["home"]))
    status = 200
    if form.validate_on_submit():
        email, ip = rules.normalise_email(form.email.data)[:254], client_ip()
        wait = throttle.wait_seconds(face.value, email, ip)
        if wait:
            # Only an address that has failed on an account under attack waits; the password
            # is not even tried.
            form.form_errors.append(_(
                "Too many failed attempts from here. Try again in %(seconds)d seconds, or ask for "
                "a link to set a new password.", seconds=wait))
            body, status = render("auth/login.html", status=429, **_ctx(face, form=form))
            return body, status, {"Retry-After": str(wait)}
        principal = rules.authenticate(db.session, face, form.email.data, form.password.data,
                                       ip=ip, user_agent=client_agent())
        if principal is None:
            alert, failures = throttle.record_failure(face.value, email, ip)
            if alert:
                _tell_owner_of_failures(face, email, failures)
            db.session.commit()
            form.form_errors.append(_("Unknown e-mail or wrong password."))
            status = 422
        else:
            throttle.record_success(face.value, email, ip)
            pending = principal.totp_enabled_at is not None
            start_session(principal, pending_second_factor=pending)
            db.session.commit()
            nxt = safe_next(request.args.get("next"), face)
            if pending:
                return redirect(url_for("auth.operator_verify" if face == Face.OPERATOR else "auth.customer_verify", next=nxt))
            return redirect(nxt)
    elif request.method == "POST":
        status = 422
    return render("auth/login.html", status=status, **_ctx(face, form=form))


def _tell_owner_of_failures(face: Face, email: str, failures: int) -> None:
    """Once per burst: the owner hears that someone keeps trying their password (the account
    stays open to them; the link lets them choose a new password if they are worried)."""
    owner = rules.find_login(db.session, face, email)
    if owner is None or not owner.active:
        return
    forgot = url_for("auth.operator_forgot" if face == Face.OPERATOR else "auth.customer_forgot", _external=True)
    send_email(owner.email, _("Failed attempts to log in to your account"), "login_failures",
               customer_id=getattr(owner, "customer_id", None), failures=failures, link=forgot)
    record(db.session, Actor.system("login throttle"), f"{face.value}.login_failures_alerted",
           "operator" if face == Face.OPERATOR else "customer_login", owner.id, {"failures": failures},
           customer_id=getattr(owner, "customer_id", None))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"])
def customer_login():
    return _login(Face.CUSTOMER)


@bp.route("/staff/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"])
def operator_login():
    return _login(Face.OPERATOR)


def _verify(face: Face):
    row = current_auth_session(include_pending=True)
    if row is None or not row.second_factor_pending:
        return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))
    principal = row.operator if face == Face.OPERATOR else row.customer_login
    if principal is None:
        return redirect(url_for(FACES[face]["home"]))
    form = SecondFactorForm()
    status = 200
    if form.validate_on_submit():
        code = form.code.data.strip()
        ok = accept_totp(db.session, principal, code) or use_recovery_code(principal, code)
        actor = Actor.operator(principal, ip=client_ip()) if face == Face.OPERATOR else Actor.customer(principal, ip=client_ip())
        if ok:
            # A fresh session row and cookie once both factors are proven.
            row.revoked_at = row.last_seen_at
            start_session(principal)
            record(db.session, actor, f"{face.value}.second_factor_ok", "auth_session", row.id)
            db.session.commit()
            return redirect(safe_next(request.args.get("next"), face))
        record(db.session, actor, f"{face.value}.second_factor_failed", "auth_session", row.id)
        db.session.commit()
        form.code.errors = [_("That code is not right. Check your device's clock, or use a recovery code.")]
        status = 422
    elif request.method == "POST":
        status = 422
    return render("auth/verify.html", status=status, **_ctx(face, form=form))


def _second_factor_key() -> str:
    """Rate-limit key for the second factor: the login it is for, whatever IP it comes from
    (else a known password plus many IPs could walk the code space)."""
    # Not the cached current_auth_session(): limits are checked before `g` is reset.
    row = _load_session_row(include_pending=True)
    if row is None:
        return "2fa:none"
    return f"2fa:{row.face}:{row.operator_id or row.customer_login_id}"


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_second_factor_key, methods=["POST"])
def customer_verify():
    return _verify(Face.CUSTOMER)


@bp.route("/staff/login/verify", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_second_factor_key, methods=["POST"])
def operator_verify():
    return _verify(Face.OPERATOR)


def _logout(face: Face):
    if current_user.is_authenticated and current_user.impersonator_id:
        # Staff viewing as a customer: the customer face's "log out" ends the view and returns
        # to the staff face; the staff face's (a tab left open) ends it and logs out as usual.
        if face == Face.CUSTOMER:
            return end_view_as_customer()
        _finish_view_as()
    if current_user.is_authenticated:
        actor = Actor.operator(current_user, ip=client_ip()) if current_user.is_operator else Actor.customer(current_user, ip=client_ip())
        record(db.session, actor, f"{face.value}.logout", "auth_session", None,
               customer_id=getattr(current_user, "customer_id", None))
    end_session()
    flash(_("You have been logged out."), "success")
    return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))


@bp.post("/logout")
def customer_logout():
    return _logout(Face.CUSTOMER)


@bp.post("/staff/logout")
def operator_logout():
    return _logout(Face.OPERATOR)


def _logout_everywhere(face: Face):
    if not current_user.is_authenticated or current_user.is_operator != (face == Face.OPERATOR):
        return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))
    if current_user.impersonator_id:
        abort(403)  # viewing as the customer is read-only: their sessions are theirs
    actor = Actor.operator(current_user, ip=client_ip()) if current_user.is_operator else Actor.customer(current_user, ip=client_ip())
    count = end_all_sessions(current_user)
    record(db.session, actor, f"{face.value}.logout_everywhere", "auth_session", None, {"sessions": count},
           customer_id=getattr(current_user, "customer_id", None))
    db.session.commit()
    end_session()
    flash(_("You have been logged out on every device."), "success")
    return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))


def _finish_view_as():
    """Revoke the view-as session, give the browser back the operator's, audit the end.
    (the customer login viewed, the operator's session row or None when it is gone)."""
    login, operator_id = current_user._get_current_object(), current_user.impersonator_id
    staff = end_impersonation()
    operator = staff.operator if staff is not None else db.session.get(Operator, operator_id)
    if operator is not None:
        customer_rules.end_impersonation(db.session, Actor.operator(operator, ip=client_ip()), login)
    db.session.commit()
    return login, staff


@bp.post("/impersonation/end")
def end_view_as_customer():
    """End "view as customer": revoke the read-only customer session and return this browser
    to the operator's own session (still logged in), on the customer's staff page."""
    if not current_user.is_authenticated or not current_user.impersonator_id:
        return redirect(url_for("auth.operator_login"))
    login, staff = _finish_view_as()
    if staff is None:
        flash(_("Your staff session has ended. Please log in again."), "info")
        return redirect(url_for("auth.operator_login"))
    if current_app.view_functions.get("staff.customer_detail"):
        return redirect(url_for("staff.customer_detail", customer_id=login.customer_id))
    return redirect(url_for("staff.dashboard"))


@bp.post("/logout/everywhere")
def customer_logout_everywhere():
    return _logout_everywhere(Face.CUSTOMER)


@bp.post("/staff/logout/everywhere")
def operator_logout_everywhere():
    return _logout_everywhere(Face.OPERATOR)


def _forgot(face: Face):
    form = ForgotPasswordForm()
    status = 200
    if form.validate_on_submit():
        principal = rules.find_login(db.session, face, form.email.data)
        if principal is not None and principal.active:
            token = rules.create_reset_token(db.session, principal, current_app.config["PASSWORD_RESET_MAX_AGE"], ip=client_ip())
            endpoint = "auth.operator_reset" if face == Face.OPERATOR else "auth.customer_reset"
            link = url_for(endpoint, token=token, _external=True)
            send_email(principal.email, _("Reset your password"), "password_reset",
                       customer_id=getattr(principal, "customer_id", None), link=link,
                       minutes=int(current_app.config["PASSWORD_RESET_MAX_AGE"].total_seconds() // 60))
            db.session.commit()
        # The same answer whether or not the account exists.
        flash(_("If an account with that e-mail exists, we have sent it a link to set a new password."), "info")
        return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))
    elif request.method == "POST":
        status = 422
    return render("auth/forgot.html", status=status, **_ctx(face, form=form))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def customer_forgot():
    return _forgot(Face.CUSTOMER)


@bp.route("/staff/password/forgot", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def operator_forgot():
    return _forgot(Face.OPERATOR)


def _reset(face: Face, token: str):
    if rules.valid_reset_token(db.session, face, token) is None:
        return render("auth/reset_invalid.html", status=410, **_ctx(face))
    form = ResetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            principal = rules.reset_password(db.session, face, token, form.password.data, ip=client_ip())
        except DomainError as exc:
            db.session.rollback()
            form.password.errors = [str(exc)]
            status = 422
        else:
            db.session.commit()
            # The link proved the owner: this address's own failed tries no longer hold it back.
            throttle.record_success(face.value, principal.email, client_ip())
            end_session()
            flash(_("Your password has been changed. Please log in."), "success")
            return redirect(url_for("auth.operator_login" if face == Face.OPERATOR else "auth.customer_login"))
    elif request.method == "POST":
        status = 422
    return render("auth/reset.html", status=status, **_ctx(face, form=form))


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def customer_reset(token):
    return _reset(Face.CUSTOMER, token)


@bp.route("/staff/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def operator_reset(token):
    return _reset(Face.OPERATOR, token)
