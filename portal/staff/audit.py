"""Staff area: the audit log (right `audit.read`) — who did what to which record, filtered
and paginated on the indexed (at, id) order, each entry with its before → after table, and the
filtered list as a streamed CSV. An operator limited to locations sees the entries of their
customers and those that concern no customer."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional

from portal.extensions import db
from portal.models import ActorType, AuditEntry, Customer, Operator
from portal.staff import bp
from portal.staff.common import csv_response, wants_csv
from portal.web.access import requires
from portal.web.forms import choices
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate

RIGHT = "audit.read"
PER_PAGE = 50
MAX_ID = 2**31 - 1


class AuditFilterForm(FlaskForm):
    """GET filters (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    actor = SelectField(_l("Who"), validate_choice=False)
    entity_type = StringField(_l("Record type"), validators=[Optional(), Length(max=40)])
    entity_id = IntegerField(_l("Record id"), validators=[Optional(), NumberRange(min=0, max=MAX_ID)])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=60)],
                         description=_l("Exact, or the start of one ending with a dot: “service.”"))
    customer = StringField(_l("Customer number"), validators=[Optional(), Length(max=40)])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("Until"), validators=[Optional()])


def _scoped(stmt, location_ids):
    if location_ids is None:
        return stmt
    ours = select(Customer.id).where(Customer.location_id.in_(location_ids))
    return stmt.where(or_(AuditEntry.customer_id.is_(None), AuditEntry.customer_id.in_(ours)))


def _actor_choices(form: AuditFilterForm) -> None:
    operators = db.session.execute(select(Operator.id, Operator.name).order_by(Operator.name)).all()
    form.actor.choices = choices([("", _l("Anyone")), ("system", _l("The system")), ("customer", _l("Customers"))]
                                 + [(f"operator:{i}", name) for i, name in operators])


def _filtered(form: AuditFilterForm, location_ids):
    """The filtered query and the filters that took effect (for links and the CSV)."""
    stmt = _scoped(select(AuditEntry), location_ids)
    used: dict[str, str] = {}
    actor = form.actor.data or ""
    if actor == "system" or actor == "customer":
        stmt = stmt.where(AuditEntry.actor_type == ActorType(actor))
        used["actor"] = actor
    elif actor.startswith("operator:") and actor[9:].isdigit():
        stmt = stmt.where(AuditEntry.actor_type == ActorType.OPERATOR, AuditEntry.actor_id == int(actor[9:]))
        used["actor"] = actor
    if form.entity_type.data:
        stmt = stmt.where(AuditEntry.entity_type == form.entity_type.data.strip())
        used["entity_type"] = form.entity_type.data.strip()
    if form.entity_id.data is not None:
        stmt = stmt.where(AuditEntry.entity_id == form.entity_id.data)
        used["entity_id"] = str(form.entity_id.data)
    action = (form.action.data or "").strip()
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                          else AuditEntry.action == action)
        used["action"] = action
    number = (form.customer.data or "").strip()
    if number:
        ids = select(Customer.id).where(Customer.customer_number == number)
        stmt = stmt.where(AuditEntry.customer_id.in_(ids))
        used["customer"] = number
    # Days as the staff read them: midnight to midnight in the portal's time zone.
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    if form.date_from.data:
        stmt = stmt.where(AuditEntry.at >= datetime.combine(form.date_from.data, time.min, tzinfo=zone))
        used["date_from"] = form.date_from.data.isoformat()
    if form.date_to.data:
        end = datetime.combine(form.date_to.data + timedelta(days=1), time.min, tzinfo=zone)
        stmt = stmt.where(AuditEntry.at < end)
        used["date_to"] = form.date_to.data.isoformat()
    return stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()), used


def _csv_rows(stmt):
    for e in db.session.scalars(stmt.execution_options(yield_per=500)):
        yield [e.id, e.at, e.actor_type, e.actor_id, e.actor_name, e.action, e.entity_type, e.entity_id,
               e.customer_id, json.dumps(e.changes, ensure_ascii=False, sort_keys=True), e.ip, e.request_id, e.via]


@bp.get("/audit")
@requires(RIGHT)
def audit():
    form = AuditFilterForm(request.args)
    _actor_choices(form)
    status = 200
    if not form.validate():
        # Bad filters: say so next to them and show nothing rather than everything.
        status = 422
    stmt, used = _filtered(form, current_user.location_ids) if status == 200 else (None, {})
    if wants_csv():
        if stmt is None:
            abort(422)
        return csv_response(
            "audit.csv",
            ["id", "at", "actor_type", "actor_id", "actor_name", "action", "entity_type", "entity_id", "customer_id",
             "changes", "ip", "request_id", "via"],
            _csv_rows(stmt),
        )
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE) if stmt is not None else None
    customers = {}
    if page is not None:
        ids = {e.customer_id for e in page.items if e.customer_id}
        if ids:
            customers = dict(db.session.execute(select(Customer.id, Customer.customer_number)
                                                .where(Customer.id.in_(ids))).all())
    return render("staff/audit/index.html", block="audit_table", status=status, form=form, page=page, params=used,
                  customers=customers)


def _pairs(changes) -> tuple[list[tuple[str, object, object]], dict]:
    """The entry's changes as (field, before, after) rows, and the rest as plain details."""
    rows, details = [], {}
    if isinstance(changes, dict):
        for key, value in changes.items():
            if isinstance(value, list) and len(value) == 2:
                rows.append((key, value[0], value[1]))
            else:
                details[key] = value
    return rows, details


# The page that shows a record of each type, and the name of its id argument.
RECORD_PAGES = {
    "service_definition": ("staff.catalogue_definition", "definition_id"),
    "service_group": ("staff.catalogue_group", "group_id"),
    "billing_plan": ("staff.catalogue_plan", "plan_id"),
    "discount": ("staff.catalogue_discount", "discount_id"),
    "operator": ("staff.operator_detail", "operator_id"),
    "role": ("staff.operator_role", "role_id"),
    "customer": ("staff.customer_detail", "customer_id"),
}


def record_url(entity_type: str, entity_id: int | None) -> str | None:
    """A link to the record an entry is about, when a staff page shows it."""
    page = RECORD_PAGES.get(entity_type)
    if page is None or entity_id is None or page[0] not in current_app.view_functions:
        return None
    return url_for(page[0], **{page[1]: entity_id})


@bp.get("/audit/<int:entry_id>")
@requires(RIGHT)
def audit_entry(entry_id: int):
    if not 0 < entry_id <= MAX_ID:
        abort(404)
    entry = db.session.scalar(_scoped(select(AuditEntry).where(AuditEntry.id == entry_id), current_user.location_ids))
    if entry is None:
        abort(404)
    customer = db.session.get(Customer, entry.customer_id) if entry.customer_id else None
    rows, details = _pairs(entry.changes)
    return render("staff/audit/entry.html", entry=entry, rows=rows, details=details, customer=customer,
                  today=date.today(), record_url=record_url(entry.entity_type, entry.entity_id))
