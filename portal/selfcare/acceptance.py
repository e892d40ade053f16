"""Selfcare: the agreement PDF and accepting an agreement with an e-mailed code.

The customer opens the PDF (recorded), asks for a code, types it in; the rules live in
portal.domain.agreements. Staff viewing as the customer may read but not accept, and their
reading does not count as the customer having opened the document.
"""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Regexp

from portal.documents import document_for, kind_for, send_document
from portal.domain import DomainError
from portal.domain import agreements as rules
from portal.extensions import db
from portal.models import Agreement, AgreementState
from portal.selfcare import bp
from portal.web.access import customer_required, owned_or_404
from portal.web.htmx import render


class SendCodeForm(FlaskForm):
    action = HiddenField(default="send_code")


class AcceptCodeForm(FlaskForm):
    code = StringField(
        _l("Code from the e-mail"),
        validators=[DataRequired(message=_l("Enter the code we e-mailed you.")),
                    Regexp(r"^\s*\d{6}\s*$", message=_l("The code has 6 digits."))],
        description=_l("6 digits, valid for 15 minutes."),
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": 8},
    )


def _issued_or_404(agreement_id: int) -> Agreement:
    # Drafts are staff's work in progress: to the customer they do not exist.
    agreement = owned_or_404(Agreement, agreement_id)
    if agreement.state == AgreementState.DRAFT:
        abort(404)
    return agreement


def _impersonating() -> bool:
    return bool(getattr(current_user, "impersonator_id", None))


@bp.get("/agreements/<int:agreement_id>/pdf")
@customer_required
def agreement_pdf(agreement_id: int):
    agreement = _issued_or_404(agreement_id)
    doc = document_for(db.session, kind_for(agreement), agreement)
    # document_for points the agreement at the document by id; an agreement that had none
    # (issued before documents were stored) still holds its loaded None until we say so.
    agreement.current_document = doc
    if not _impersonating():
        rules.mark_document_opened(db.session, agreement, current_user, ip=request.remote_addr)
    db.session.commit()
    return send_document(doc)


def _accept_page(agreement: Agreement, send_form: SendCodeForm, accept_form: AcceptCodeForm, status: int = 200):
    doc = agreement.current_document
    opened = doc is not None and rules.document_opened(db.session, agreement, current_user, doc.sha256)
    return render("selfcare/agreement_accept.html", block="accept_forms" if status != 200 else None, status=status,
                  agreement=agreement, opened=opened, send_form=send_form, accept_form=accept_form,
                  read_only=_impersonating(), email=current_user.email)


@bp.route("/agreements/<int:agreement_id>/accept", methods=["GET", "POST"])
@customer_required
def agreement_accept(agreement_id: int):
    agreement = _issued_or_404(agreement_id)
    send_form = SendCodeForm(formdata=None)
    accept_form = AcceptCodeForm(formdata=None)
    if request.method == "GET":
        return _accept_page(agreement, send_form, accept_form)
    if _impersonating():
        abort(403)
    if request.form.get("action") == "send_code":
        send_form = SendCodeForm()
        if send_form.validate():
            try:
                rules.request_acceptance_code(db.session, agreement, current_user, ip=request.remote_addr)
            except DomainError as exc:
                db.session.rollback()
                send_form.form_errors.append(str(exc))
            else:
                db.session.commit()
                flash(_("We have e-mailed a code to %(email)s.", email=current_user.email), "success")
                return redirect(url_for("selfcare.agreement_accept", agreement_id=agreement.id))
        return _accept_page(agreement, send_form, accept_form, status=422)

    accept_form = AcceptCodeForm()
    if accept_form.validate():
        try:
            rules.accept_with_code(db.session, agreement, current_user, accept_form.code.data,
                                   ip=request.remote_addr, user_agent=request.user_agent.string)
        except DomainError as exc:
            # A wrong code has counted an attempt: keep that count.
            db.session.commit()
            target = getattr(accept_form, exc.field, None) if exc.field else None
            if target is not None:
                target.errors = [*target.errors, str(exc)]
            else:
                accept_form.form_errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Thank you: agreement %(number)s is accepted.", number=agreement.number), "success")
            return redirect(url_for("selfcare.agreement_detail", agreement_id=agreement.id))
    return _accept_page(agreement, send_form, accept_form, status=422)
