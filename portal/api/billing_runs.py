"""/api/v1/billing-runs: the run history, one run (state, period, counts, totals), and starting
the run of a month — the staff rule (portal.domain.billing.request_billing_run), carried out
by the job queue like the staff one, so the answer is 202 with the run to follow. A run bills
every location: like the staff pages, only a token without location limits reaches these."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, enum, money, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.domain import DomainError
from portal.domain.billing import billing_period, request_billing_run
from portal.extensions import db
from portal.jobs import enqueue_billing_run, reap_interrupted_jobs
from portal.models import BillingRun, BillingRunState

blp = Blueprint("api_billing_runs", __name__, url_prefix="/api/v1/billing-runs",
                description="Billing runs: a month's charges invoiced, carried out in the background.")

PERIOD = r"^[0-9]{4}-[0-9]{2}$"


class CurrencyTotalsSchema(ma.Schema):
    net = money(required=True)
    vat = money(required=True)
    gross = money(required=True)
    invoices = ma.fields.Integer(required=True)


class BillingRunSchema(Schema):
    id = ma.fields.Integer(required=True)
    period = ma.fields.Function(lambda r: f"{r.period_start:%Y-%m}", required=True,
                                metadata={"type": "string", "description": "YYYY-MM"})
    period_start = ma.fields.Date(required=True)
    period_end = ma.fields.Date(required=True)
    issue_date = ma.fields.Date(required=True)
    state = enum(BillingRunState, required=True)
    started_by_name = ma.fields.String(required=True)
    started_at = timestamp(required=True)
    finished_at = timestamp(allow_none=True, required=True)
    customers_count = ma.fields.Integer(required=True)
    invoices_count = ma.fields.Integer(required=True)
    charges_count = ma.fields.Integer(required=True)
    net_total = money(required=True)
    vat_total = money(required=True)
    gross_total = money(required=True)
    totals_by_currency = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(CurrencyTotalsSchema),
                                        required=True)
    error = ma.fields.String(required=True)
    job_id = ma.fields.Integer(allow_none=True, required=True)


class BillingRunFilterArgs(PageArgs):
    state = enum(BillingRunState)
    period = ma.fields.String(validate=ma.validate.Regexp(PERIOD), metadata={"description": "YYYY-MM"})


class BillingRunStartSchema(Schema):
    period = ma.fields.String(required=True, validate=ma.validate.Length(max=7),
                              metadata={"description": "The month to bill, YYYY-MM.", "examples": ["2026-10"]})
    issue_date = ma.fields.Date(allow_none=True, metadata={"description": "Empty: the day the run is carried out."})


def _require_all_locations() -> None:
    """A run bills every location (the staff pages' rule)."""
    if current_user.location_ids is not None:
        abort(403, _("A billing run bills every location; only an operator without location limits "
                     "may start one."))


def _run_or_404(run_id: int) -> BillingRun:
    run = db.session.get(BillingRun, run_id)
    if run is None:
        abort(404)
    return run


@blp.route("")
@requires("billing.run")
@blp.arguments(BillingRunFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(BillingRunSchema))
def list_runs(limit=None, cursor=None, state=None, period=None):
    """List billing runs (ordered by id)."""
    _require_all_locations()
    stmt = select(BillingRun)
    if state is not None:
        stmt = stmt.where(BillingRun.state == state)
    if period:
        try:
            start, _end = billing_period(period)
        except DomainError as error:
            return refusal(error)
        stmt = stmt.where(BillingRun.period_start == start)
    return cursor_page(stmt, BillingRun.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:run_id>")
@requires("billing.run")
@blp.response(200, BillingRunSchema)
def get_run(run_id: int):
    """Get a billing run: poll it until its state is done or failed."""
    _require_all_locations()
    reap_interrupted_jobs()  # a run whose worker is gone shows as failed, not running forever
    return _run_or_404(run_id)


@blp.route("", methods=["POST"])
@requires("billing.run")
@blp.arguments(BillingRunStartSchema)
@blp.response(202, BillingRunSchema, description="Queued; follow the run at its Location.")
def start_run(body: dict):
    """Start the billing run of a month (billing.run_requested); the job queue carries it out."""
    _require_all_locations()
    try:
        billing_period(body["period"])
        reap_interrupted_jobs()  # a run of this month whose worker died does not block it
        run = request_billing_run(db.session, body["period"], actor=api_actor(),
                                  location_ids=current_user.location_ids, issue_date=body.get("issue_date"))
    except DomainError as error:
        return refusal(error)
    run_id = run.id
    enqueue_billing_run(run, actor=api_actor())  # commits; runs inline with an immediate queue
    db.session.expire_all()
    return _run_or_404(run_id), 202, {"Location": f"/api/v1/billing-runs/{run_id}"}
