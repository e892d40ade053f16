"""Selfcare landing page: the customer's services, what is open, agreements awaiting
acceptance, and the warning when dunning will block services."""
from __future__ import annotations

from datetime import date

from flask_login import current_user

from portal.documents import invoice_supplier
from portal.domain import dunning as dunning_rules
from portal.domain.agreements import acceptance_deadline, awaiting_acceptance
from portal.domain.lifecycle import pending_plan_changes, without_pending_successors
from portal.domain.overview import customer_overview
from portal.extensions import db
from portal.models import ServiceState
from portal.selfcare import bp
from portal.selfcare.common import current_customer_id
from portal.selfcare.invoices import invoice_payment_qr
from portal.selfcare.reminders import latest_open_reminder
from portal.web.access import customer_required
from portal.web.htmx import render


def _blocking_notice(overview, today: date) -> dict | None:
    """The dashboard's warning when dunning will block services: the forecast, plus how to pay."""
    active = [s for s in overview.services if s.state == ServiceState.ACTIVE]
    forecast = dunning_rules.blocking_forecast(db.session, current_customer_id(), active, today)
    if forecast is None:
        return None
    return {**forecast, "supplier": invoice_supplier(forecast["invoice"]), "qr": invoice_payment_qr(forecast["invoice"])}


@bp.get("/")
@customer_required
def dashboard():
    today = date.today()
    overview = customer_overview(db.session, current_customer_id(), today)
    # A scheduled plan change is the pending change of one service, not a second service.
    pending = pending_plan_changes(db.session, overview.services)
    overview.services = without_pending_successors(overview.services, pending)
    awaiting = [{"agreement": a, "deadline": acceptance_deadline(a)}
                for a in awaiting_acceptance(db.session, current_customer_id())]
    return render("selfcare/dashboard.html", overview=overview, customer=current_user.customer,
                  blocking=_blocking_notice(overview, today), awaiting=awaiting, today=today, pending=pending,
                  reminder=latest_open_reminder(current_customer_id()))

