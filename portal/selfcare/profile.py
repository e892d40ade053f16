"""Selfcare profile (contacts, billing address, language, notifications, password) and
security (two-factor authentication, recovery codes, sessions)."""
from __future__ import annotations

import segno
from flask import abort, current_app, flash, make_response, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.domain import profile as profile_rules
from portal.domain import security as security_rules
from portal.extensions import db
from portal.models import Contact
from portal.security.sessions import active_sessions, current_auth_session, start_session
from portal.selfcare import bp
from portal.selfcare.common import customer_actor, customer_writes
from portal.selfcare.forms import (
    AddressForm,
    ContactForm,
    LanguageForm,
    NotificationsForm,
    PasswordForm,
    RemoveContactForm,
)
from portal.web.access import customer_required, owned_or_404
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, ProofForm, TotpConfirmForm, field_error
from portal.web.htmx import is_htmx, render

PROFILE_FORMS = {
    "contact": ContactForm,
    "address": AddressForm,
    "language": LanguageForm,
    "notifications": NotificationsForm,
    "password": PasswordForm,
}


def _profile_page(status: int = 200, failed: str | None = None, **bound):
    """The profile page with every form; `bound` carries the one that was sent (with its
    errors), the others show the current values. An HTMX request gets the failed section."""
    customer = current_user.customer
    defaults = {
        "contact": lambda: ContactForm(formdata=None),
        "address": lambda: AddressForm(formdata=None, obj=customer),
        "language": lambda: LanguageForm(formdata=None, language=(current_user.language or customer.language).value),
        "notifications": lambda: NotificationsForm(formdata=None, notify_email=current_user.notify_email),
        "password": lambda: PasswordForm(formdata=None),
    }
    forms = {name: bound.get(name) or make() for name, make in defaults.items()}
    contacts = db.session.scalars(
        select(Contact).where(Contact.customer_id == customer.id).order_by(Contact.kind, Contact.id)
    ).all()
    block = f"{failed}_section" if failed else None
    return render("selfcare/profile.html", block=block, status=status, customer=customer, contacts=contacts,
                  remove_form=RemoveContactForm(formdata=None), **{f"{k}_form": v for k, v in forms.items()})


def _profile_done(message: str):
    flash(message, "success")
    if is_htmx():
        # htmx would follow a 302 inside the XHR; HX-Redirect makes the browser load the page.
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url_for("selfcare.profile")
        return response
    return redirect(url_for("selfcare.profile"))


@bp.get("/profile")
@customer_required
def profile():
    return _profile_page()


def _profile_change(name: str, apply, success: str):
    """Validate the form `name`, apply the rule, commit and redirect; or 422 with errors."""
    form = PROFILE_FORMS[name]()
    if form.validate():
        return carry_out(lambda: apply(form),
                         refused=lambda exc: _profile_page(status=422, failed=name, **{name: field_error(form, exc)}),
                         done=lambda _result: _profile_done(success))
    return _profile_page(status=422, failed=name, **{name: form})


@bp.post("/profile/contacts")
@customer_writes
def profile_contact_add():
    return _profile_change(
        "contact",
        lambda f: profile_rules.add_contact(db.session, current_user.customer, f.kind.data, f.value.data,
                                            f.purpose.data, customer_actor()),
        _("The contact has been added."),
    )


@bp.post("/profile/contacts/<int:contact_id>/remove")
@customer_writes
def profile_contact_remove(contact_id: int):
    contact = owned_or_404(Contact, contact_id)
    form = RemoveContactForm()
    if not form.validate():
        abort(400)
    return carry_out(
        lambda: profile_rules.remove_contact(db.session, current_user.customer, contact, customer_actor()),
        refused=lambda exc: _profile_page(status=422, failed="contact",
                                          contact=field_error(ContactForm(formdata=None), str(exc))),
        done=lambda _result: _profile_done(_("The contact has been removed.")))


@bp.post("/profile/address")
@customer_writes
def profile_address():
    return _profile_change(
        "address",
        lambda f: profile_rules.update_billing_address(
            db.session, current_user.customer, street=f.street.data, city=f.city.data,
            postal_code=f.postal_code.data, country=f.country.data, actor=customer_actor()),
        _("Your billing address has been saved. Invoices already issued keep the address they were issued with."),
    )


@bp.post("/profile/language")
@customer_writes
def profile_language():
    return _profile_change(
        "language",
        lambda f: profile_rules.set_language(db.session, current_user, f.language.data, customer_actor()),
        _("Your language has been saved."),
    )


@bp.post("/profile/notifications")
@customer_writes
def profile_notifications():
    return _profile_change(
        "notifications",
        lambda f: profile_rules.set_notifications(db.session, current_user, f.notify_email.data, customer_actor()),
        _("Your notification preference has been saved."),
    )


@bp.post("/profile/password")
@customer_writes
def profile_password():
    login = current_user._get_current_object()

    def apply(f):
        profile_rules.change_password(db.session, login, f.current_password.data, f.new_password.data, customer_actor())
        # Every session ended, this one too: carry on in a fresh one (a new cookie).
        start_session(login)

    return _profile_change("password", apply, _("Your password has been changed. Other devices have been logged out."))


# ---------------------------------------------------------------------------------- security

def _issuer() -> str:
    return current_app.config.get("SITE_NAME") or current_app.config.get("SUPPLIER_NAME") or "Portal"


def _security_page(status: int = 200, failed: str | None = None, **bound):
    login = current_user
    secret = security_rules.pending_secret(login)
    qr = None
    if secret:
        uri = security_rules.enrolment_uri(login, secret, _issuer())
        qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    this_session = current_auth_session()
    forms = {
        "confirm": bound.get("confirm") or TotpConfirmForm(formdata=None),
        "disable": bound.get("disable") or ProofForm(formdata=None, prefix="disable"),
        "codes": bound.get("codes") or ProofForm(formdata=None, prefix="codes"),
    }
    return render(
        "selfcare/security.html", block=f"{failed}_section" if failed else None, status=status,
        login=login, enabled=security_rules.totp_enabled(login), secret=secret, qr=qr,
        recovery_left=len(login.recovery_code_hashes or []),
        logins=security_rules.recent_logins(db.session, login), describe_browser=security_rules.describe_browser,
        sessions=active_sessions(login), this_session_id=this_session.id if this_session else None,
        empty_form=EmptyForm(formdata=None), confirm_form=forms["confirm"], disable_form=forms["disable"],
        codes_form=forms["codes"],
    )


@bp.get("/security")
@customer_required
def security():
    return _security_page()


@bp.post("/security/totp")
@customer_writes
def security_totp_start():
    if not EmptyForm().validate():
        abort(400)
    return carry_out(lambda: security_rules.start_totp_enrolment(db.session, current_user, customer_actor()),
                     refused=lambda exc: refused(exc, url_for("selfcare.security")),
                     done=lambda _result: redirect(url_for("selfcare.security", _anchor="totp")))


def _show_codes(codes: list[str], message: str):
    # Shown once, in this response: only their hashes are stored.
    return render("selfcare/recovery_codes.html", codes=codes, message=message)


@bp.post("/security/totp/confirm")
@customer_writes
def security_totp_confirm():
    form = TotpConfirmForm()
    if form.validate():
        return carry_out(
            lambda: security_rules.confirm_totp(db.session, current_user, form.code.data, customer_actor()),
            refused=lambda exc: _security_page(status=422, failed="confirm", confirm=field_error(form, exc)),
            done=lambda codes: _show_codes(codes, _("Two-factor authentication is on. From now on, logging in "
                                                    "asks for a code from your app.")))
    return _security_page(status=422, failed="confirm", confirm=form)


@bp.post("/security/totp/disable")
@customer_writes
def security_totp_disable():
    form = ProofForm(prefix="disable")
    if form.validate():
        return carry_out(
            lambda: security_rules.disable_totp(db.session, current_user, form.proof.data, customer_actor()),
            refused=lambda exc: _security_page(status=422, failed="disable", disable=field_error(form, exc)),
            done=lambda _result: saved(_("Two-factor authentication is off."), url_for("selfcare.security")))
    return _security_page(status=422, failed="disable", disable=form)


@bp.post("/security/recovery-codes")
@customer_writes
def security_recovery_codes():
    form = ProofForm(prefix="codes")
    if form.validate():
        return carry_out(
            lambda: security_rules.regenerate_recovery_codes(db.session, current_user, form.proof.data,
                                                             customer_actor()),
            refused=lambda exc: _security_page(status=422, failed="codes", codes=field_error(form, exc)),
            done=lambda codes: _show_codes(codes, _("New recovery codes. The old ones no longer work.")))
    return _security_page(status=422, failed="codes", codes=form)


@bp.post("/security/sessions/logout-others")
@customer_writes
def security_logout_others():
    if not EmptyForm().validate():
        abort(400)
    count = security_rules.log_out_other_sessions(db.session, current_user, current_auth_session(), customer_actor())
    db.session.commit()
    flash(_("Logged out of %(n)d other sessions.", n=count), "success")
    return redirect(url_for("selfcare.security"))
