"""Staff area: the e-mail outbox — every message the portal sent or failed to send, with its
state and error, filtered by state, recipient, customer and day; a message's page with its
text; re-send (a new send of the same message, audited).

Right `customers.read`: the outbox is customer correspondence, the same as the invoices and
requests that right already shows, and the staff who answer "I never got the e-mail" are the
ones who hold it. Messages carrying a one-time link or code (password reset, invitations,
acceptance codes) show that they were sent, never their text (portal.mail.SECRET_TEMPLATES).

Location scope: an operator sees the e-mails of the customers of their locations; e-mails
without a customer (password resets, staff invitations, login warnings) belong to no
location and are seen only by operators without location limits."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional

from portal.domain.outbox import resend
from portal.extensions import db
from portal.mail import SECRET_TEMPLATES, stored_message
from portal.models import Customer, EmailState, OutboundEmail
from portal.staff import bp
from portal.staff.common import operator_actor
from portal.web.access import requires
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, choices
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate

RIGHT = "customers.read"
PER_PAGE = 50
MAX_ID = 2**31 - 1


class OutboxFilterForm(FlaskForm):
    """GET filters (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    state = SelectField(_l("State"), choices=choices([("", _l("Any")), (EmailState.QUEUED.value, _l("Queued")),
                                                      (EmailState.SENT.value, _l("Sent")),
                                                      (EmailState.FAILED.value, _l("Failed"))]), validate_choice=False)
    to = StringField(_l("Recipient"), validators=[Optional(), Length(max=254)])
    customer = StringField(_l("Customer number"), validators=[Optional(), Length(max=40)])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("Until"), validators=[Optional()])


def _scoped():
    """E-mails the operator may see: their locations' customers' (and, without location
    limits, every one, those without a customer included)."""
    stmt = select(OutboundEmail)
    ids = current_user.location_ids
    if ids is None:
        return stmt
    return stmt.join(Customer, Customer.id == OutboundEmail.customer_id).where(Customer.location_id.in_(ids))


def _filtered(form: OutboxFilterForm):
    stmt = _scoped()
    used: dict[str, str] = {}
    if form.state.data in {s.value for s in EmailState}:
        stmt = stmt.where(OutboundEmail.state == EmailState(form.state.data))
        used["state"] = form.state.data
    to = (form.to.data or "").strip() if not form.to.errors else ""
    if to:
        stmt = stmt.where(func.lower(OutboundEmail.to).contains(to.lower(), autoescape=True))
        used["to"] = to
    number = (form.customer.data or "").strip() if not form.customer.errors else ""
    if number:
        stmt = stmt.where(OutboundEmail.customer_id.in_(select(Customer.id).where(Customer.customer_number == number)))
        used["customer"] = number
    # Days as the staff read them: midnight to midnight in the portal's time zone.
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    if form.date_from.data and not form.date_from.errors:
        stmt = stmt.where(OutboundEmail.created_at >= datetime.combine(form.date_from.data, time.min, tzinfo=zone))
        used["date_from"] = form.date_from.data.isoformat()
    if form.date_to.data and not form.date_to.errors:
        end = datetime.combine(form.date_to.data + timedelta(days=1), time.min, tzinfo=zone)
        stmt = stmt.where(OutboundEmail.created_at < end)
        used["date_to"] = form.date_to.data.isoformat()
    # Newest first by the primary key: an index, whatever the filter.
    return stmt.order_by(OutboundEmail.id.desc()), used


def _attempts(rows: list[OutboundEmail]) -> dict[int, int]:
    """How many times each message was sent: its first send plus the re-sends pointing at it
    (one grouped query for the page)."""
    roots = {r.resent_from_id or r.id for r in rows}
    if not roots:
        return {}
    counts = dict(db.session.execute(
        select(OutboundEmail.resent_from_id, func.count()).where(OutboundEmail.resent_from_id.in_(roots))
        .group_by(OutboundEmail.resent_from_id)).all())
    return {root: 1 + counts.get(root, 0) for root in roots}


@bp.get("/outbox")
@requires(RIGHT)
def outbox():
    form = OutboxFilterForm(request.args)
    form.validate()
    stmt, used = _filtered(form)
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("staff/outbox/list.html", block="outbox_table", form=form, page=page, params=used,
                  attempts=_attempts(page.items))


def _email_or_404(email_id: int) -> OutboundEmail:
    if not 0 < email_id <= MAX_ID:
        abort(404)
    email = db.session.scalar(_scoped().where(OutboundEmail.id == email_id))
    if email is None:
        abort(404)
    return email


def _text_of(message) -> str | None:
    if message is None:
        return None
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


@bp.get("/outbox/<int:email_id>")
@requires(RIGHT)
def outbox_email(email_id: int):
    email = _email_or_404(email_id)
    root = email.resent_from_id or email.id
    sends = list(db.session.scalars(
        _scoped().where((OutboundEmail.id == root) | (OutboundEmail.resent_from_id == root))
        .order_by(OutboundEmail.id)))
    message = stored_message(email)
    secret = email.template in SECRET_TEMPLATES
    attachments = [part.get_filename() or "" for part in message.iter_attachments()] if message is not None else []
    customer = db.session.get(Customer, email.customer_id) if email.customer_id else None
    return render("staff/outbox/detail.html", email=email, sends=sends, secret=secret, customer=customer,
                  body=None if secret else _text_of(message), stored=message is not None, attachments=attachments,
                  can_resend=email.state != EmailState.QUEUED and message is not None,
                  empty_form=EmptyForm(formdata=None))


@bp.post("/outbox/<int:email_id>/resend")
@requires(RIGHT)
def outbox_resend(email_id: int):
    email = _email_or_404(email_id)
    if not EmptyForm().validate():
        abort(400)
    page = url_for("staff.outbox_email", email_id=email.id)

    def done(new: OutboundEmail):
        if new.state == EmailState.FAILED:
            return saved(_("Sending again failed: %(error)s", error=new.error),
                         url_for("staff.outbox_email", email_id=new.id), category="error")
        return saved(_("The e-mail was sent again to %(to)s.", to=new.to), url_for("staff.outbox_email", email_id=new.id))

    return carry_out(lambda: resend(db.session, operator_actor(), email), refused=lambda exc: refused(exc, page),
                     done=done)
