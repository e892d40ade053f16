"""/api/v1/dunning: debt recovery cases and the reminders issued in them — read only, with
the staff lists' filters and right (`dunning.run`); customers outside the token's locations
are not there (404), as on the staff pages. A reminder's letter is the stored PDF the staff
download serves (rendered and stored on first need)."""
from __future__ import annotations

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from portal.api.auth import requires
from portal.api.fields import Schema, enum, money, query_ident, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.scope import one_or_404, scoped
from portal.documents import document_for, send_document
from portal.extensions import db
from portal.models import CaseState, Customer, DebtRecoveryCase, DocumentKind, Reminder

RIGHT = "dunning.run"

blp = Blueprint("api_dunning", __name__, url_prefix="/api/v1/dunning",
                description="Dunning: debt recovery cases and their reminders (read only).")


class CaseSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    customer_number = ma.fields.Function(lambda case: case.customer.customer_number, required=True,
                                         metadata={"type": "string"})
    state = enum(CaseState, required=True)
    level = ma.fields.Integer(required=True, metadata={"description": "The last reminder level reached (0: none)."})
    opened_on = ma.fields.Date(required=True)
    blocked_on = ma.fields.Date(allow_none=True)
    postponed_until = ma.fields.Date(allow_none=True)
    closed_on = ma.fields.Date(allow_none=True)
    reason = ma.fields.String(required=True)
    reminder_ids = ma.fields.Function(lambda case: [r.id for r in case.reminders], required=True,
                                      metadata={"type": "array", "items": {"type": "integer"}})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class ReminderSchema(Schema):
    id = ma.fields.Integer(required=True)
    case_id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    level = ma.fields.Integer(required=True)
    issued_on = ma.fields.Date(required=True)
    pay_by = ma.fields.Date(required=True)
    block_on = ma.fields.Date(allow_none=True, metadata={"description": "When blocking follows if still unpaid."})
    amount_due = money(required=True)
    fee = money(required=True)
    sent_at = timestamp(allow_none=True)
    invoice_ids = ma.fields.Function(lambda reminder: sorted(i.id for i in reminder.invoices), required=True,
                                     metadata={"type": "array", "items": {"type": "integer"}})
    created_at = timestamp(required=True)


# The staff list's "Open (any state)" is the default; "all" adds the closed ones.
_CASE_STATES = ["open", "all", *(s.value for s in CaseState)]


class CaseFilterArgs(PageArgs):
    state = ma.fields.String(validate=ma.validate.OneOf(_CASE_STATES),
                             metadata={"description": "A case state, `open` (every state but closed; the "
                                                      "default) or `all`.", "enum": _CASE_STATES})
    level = ma.fields.Integer(validate=ma.validate.Range(0, 999))
    customer_id = query_ident()


class ReminderFilterArgs(PageArgs):
    customer_number = ma.fields.String(validate=ma.validate.Length(min=1, max=20))
    level = ma.fields.Integer(validate=ma.validate.Range(0, 999))
    case_id = query_ident()
    customer_id = query_ident()


def _cases():
    return (select(DebtRecoveryCase).join(Customer, Customer.id == DebtRecoveryCase.customer_id)
            .options(contains_eager(DebtRecoveryCase.customer), selectinload(DebtRecoveryCase.reminders)))


def _reminders():
    return (select(Reminder).join(Customer, Customer.id == Reminder.customer_id)
            .options(selectinload(Reminder.invoices)))


@blp.route("/cases")
@requires(RIGHT)
@blp.arguments(CaseFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(CaseSchema))
def list_cases(limit=None, cursor=None, state="open", level=None, customer_id=None):
    """List debt recovery cases (ordered by id)."""
    stmt = scoped(_cases(), Customer.location_id)
    if state == "open":
        stmt = stmt.where(DebtRecoveryCase.state != CaseState.CLOSED)
    elif state != "all":
        stmt = stmt.where(DebtRecoveryCase.state == CaseState(state))
    if level is not None:
        stmt = stmt.where(DebtRecoveryCase.level == level)
    if customer_id is not None:
        stmt = stmt.where(DebtRecoveryCase.customer_id == customer_id)
    return cursor_page(stmt, DebtRecoveryCase.id, {"limit": limit, "cursor": cursor})


@blp.route("/cases/<int:case_id>")
@requires(RIGHT)
@blp.response(200, CaseSchema)
def get_case(case_id: int):
    """Get a debt recovery case."""
    return one_or_404(_cases().where(DebtRecoveryCase.id == case_id), Customer.location_id)


@blp.route("/reminders")
@requires(RIGHT)
@blp.arguments(ReminderFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(ReminderSchema))
def list_reminders(limit=None, cursor=None, customer_number=None, level=None, case_id=None, customer_id=None):
    """List reminders (ordered by id)."""
    stmt = scoped(_reminders(), Customer.location_id)
    if customer_number and customer_number.strip():
        stmt = stmt.where(Customer.customer_number == customer_number.strip())
    if level is not None:
        stmt = stmt.where(Reminder.level == level)
    if case_id is not None:
        stmt = stmt.where(Reminder.case_id == case_id)
    if customer_id is not None:
        stmt = stmt.where(Reminder.customer_id == customer_id)
    return cursor_page(stmt, Reminder.id, {"limit": limit, "cursor": cursor})


@blp.route("/reminders/<int:reminder_id>")
@requires(RIGHT)
@blp.response(200, ReminderSchema)
def get_reminder(reminder_id: int):
    """Get a reminder."""
    return one_or_404(_reminders().where(Reminder.id == reminder_id), Customer.location_id)


_PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}


@blp.route("/reminders/<int:reminder_id>/pdf")
@requires(RIGHT)
@blp.response(200, content_type="application/pdf", description="The reminder letter.")
@blp.alt_response(304, description="Not modified: If-None-Match carried the letter's ETag.")
@blp.doc(responses={"200": {"description": "The reminder letter.", "content": _PDF,
                             "headers": {"ETag": {"schema": {"type": "string"}}}}})
def get_reminder_pdf(reminder_id: int):
    """Download a reminder letter (PDF)."""
    reminder = one_or_404(select(Reminder).join(Customer, Customer.id == Reminder.customer_id)
                          .where(Reminder.id == reminder_id), Customer.location_id)
    doc = document_for(db.session, DocumentKind.REMINDER, reminder)
    db.session.commit()  # the first download renders and stores the letter
    return send_document(doc)
