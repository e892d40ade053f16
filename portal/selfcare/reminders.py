"""Selfcare reminders: the payment reminders dunning sent the customer, with the letter PDF
— the same stored document the staff dunning page serves."""
from __future__ import annotations

from flask import request
from flask_login import current_user
from sqlalchemy import exists, select
from sqlalchemy.orm import selectinload

from portal.documents import document_for, send_document
from portal.extensions import db
from portal.models import CaseState, DebtRecoveryCase, DocumentKind, Reminder
from portal.selfcare import bp
from portal.selfcare.common import PER_PAGE, current_customer_id
from portal.web.access import customer_required, owned_or_404
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate


def has_reminders(customer_id: int) -> bool:
    """Whether the invoices page links to the reminders (one cheap EXISTS)."""
    return bool(db.session.scalar(select(exists().where(Reminder.customer_id == customer_id))))


def latest_open_reminder(customer_id: int) -> Reminder | None:
    """The newest reminder of a debt still being recovered: what the dashboard points at.
    A closed case's reminders are history, listed but not announced."""
    return db.session.scalar(
        select(Reminder).join(DebtRecoveryCase, DebtRecoveryCase.id == Reminder.case_id)
        .where(Reminder.customer_id == customer_id, DebtRecoveryCase.state != CaseState.CLOSED)
        .order_by(Reminder.issued_on.desc(), Reminder.id.desc()).limit(1))


@bp.get("/reminders")
@customer_required
def reminders():
    stmt = (
        select(Reminder).options(selectinload(Reminder.invoices))
        .where(Reminder.customer_id == current_customer_id())
        .order_by(Reminder.issued_on.desc(), Reminder.id.desc())
    )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/reminders.html", block="reminder_table", page=page,
                  currency=current_user.customer.location.currency.value)


@bp.get("/reminders/<int:reminder_id>/pdf")
@customer_required
def reminder_pdf(reminder_id: int):
    reminder = owned_or_404(Reminder, reminder_id)
    doc = document_for(db.session, DocumentKind.REMINDER, reminder)
    # The first download renders and stores the letter (the staff page serves the same file).
    db.session.commit()
    return send_document(doc)
