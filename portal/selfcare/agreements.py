"""Selfcare agreements: the list and an agreement's page (accepting one is in acceptance.py)."""
from __future__ import annotations

from datetime import date

from flask import abort
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.domain.agreements import acceptance_deadline, blocking_date
from portal.extensions import db
from portal.models import Agreement, AgreementState, CustomerService
from portal.models.agreements import agreement_services
from portal.selfcare import bp
from portal.selfcare.common import current_customer_id
from portal.web.access import customer_required, owned_or_404
from portal.web.htmx import render


@bp.get("/agreements")
@customer_required
def agreements():
    # Drafts are staff's work in progress; the customer sees agreements once issued.
    rows = db.session.scalars(
        select(Agreement)
        .options(joinedload(Agreement.type), joinedload(Agreement.parent))
        .where(Agreement.customer_id == current_customer_id(), Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.conclusion_date.desc(), Agreement.id.desc())
    ).all()
    return render("selfcare/agreements.html", agreements=rows)


@bp.get("/agreements/<int:agreement_id>")
@customer_required
def agreement_detail(agreement_id: int):
    agreement = owned_or_404(Agreement, agreement_id)
    if agreement.state == AgreementState.DRAFT:
        abort(404)
    services = db.session.scalars(
        select(CustomerService)
        .options(joinedload(CustomerService.definition))
        .join(agreement_services, agreement_services.c.customer_service_id == CustomerService.id)
        .where(agreement_services.c.agreement_id == agreement.id, CustomerService.customer_id == current_customer_id())
        .order_by(CustomerService.id)
    ).all()
    annexes = db.session.scalars(
        select(Agreement)
        .options(joinedload(Agreement.type))
        .where(Agreement.parent_id == agreement.id, Agreement.customer_id == current_customer_id(),
               Agreement.state != AgreementState.DRAFT)
        .order_by(Agreement.id)
    ).all()
    return render("selfcare/agreement_detail.html", agreement=agreement, services=services, annexes=annexes,
                  acceptances=agreement.acceptances, deadline=acceptance_deadline(agreement),
                  block_on=blocking_date(agreement), today=date.today())

