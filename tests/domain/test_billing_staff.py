"""The billing rules staff use from the browser: request_billing_run (scope, one waiting run
per month), run_billing carrying out a requested run, send_invoice; and the dunning helpers
check_run_scope and dunning_overview's scoping."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.domain.billing import (
    BillingRunRefused,
    InvoiceNotSent,
    cancel_invoice,
    preview_billing,
    preview_customer,
    request_billing_run,
    run_billing,
    send_invoice,
)
from portal.domain.dunning import DunningRunRefused, check_run_scope
from portal.models import AuditEntry, BillingRun, BillingRunState, Invoice, OutboundEmail
from tests.domain.billing_fixtures import ACTOR, World
from tests.domain.payments_fixtures import make_invoice
from tests.factories import ContactFactory, CustomerFactory


def test_a_location_limited_operator_cannot_request_a_run(db):
    with pytest.raises(BillingRunRefused, match="without location limits"):
        request_billing_run(db, "2026-10", actor=ACTOR, location_ids=frozenset({1}))
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 0


def test_requested_run_is_carried_out_with_the_preview_figures(db):
    world = World()
    for _ in range(2):
        world.service()
    db.commit()
    preview = preview_billing(db, "2026-10")
    run = request_billing_run(db, "2026-10", actor=ACTOR, issue_date=date(2026, 11, 2))
    assert run.state == BillingRunState.PREVIEWED
    assert db.scalar(select(AuditEntry.action).where(AuditEntry.entity_id == run.id)) == "billing.run_requested"
    db.commit()
    with pytest.raises(BillingRunRefused, match="already waiting"):
        request_billing_run(db, "2026-10", actor=ACTOR)
    done = run_billing(db, "ignored", actor=ACTOR, run_id=run.id)
    assert done.id == run.id and done.state == BillingRunState.DONE and done.issue_date == date(2026, 11, 2)
    assert done.invoices_count == preview.invoices == 2
    assert {k: v["gross"] for k, v in done.totals_by_currency.items()} == {
        k: str(v["gross"]) for k, v in preview.totals.items()}
    # Carried out once: not again.
    with pytest.raises(BillingRunRefused, match="not waiting"):
        run_billing(db, "2026-10", actor=ACTOR, run_id=run.id)
    # Once done, another run of the month may be requested (it adds nothing).
    assert request_billing_run(db, "2026-10", actor=ACTOR).state == BillingRunState.PREVIEWED


def test_preview_customer_matches_the_preview_row(db):
    world = World()
    service = world.service()
    world.service(customer=service.customer)
    db.commit()
    row = next(r for r in preview_billing(db, "2026-10").per_customer if r.customer_id == service.customer_id)
    [invoice] = preview_customer(db, "2026-10", service.customer_id)
    assert invoice.total.gross == row.gross and len(invoice.lines) == row.lines == 2
    assert sum(a.gross for _, a in invoice.lines) == row.gross
    assert preview_customer(db, "2026-10", 999999) == []


def test_send_invoice_attaches_the_pdf_and_is_audited(db, outbox):
    customer = CustomerFactory()
    ContactFactory(customer=customer, value="pay@example.com")
    invoice = make_invoice(customer, "121.00")
    row = send_invoice(db, invoice, actor=ACTOR)
    assert row.to == "pay@example.com"
    [mail] = outbox()
    assert invoice.number in mail["Subject"]
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content()[:5] == b"%PDF-"
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "invoice.sent")).changes["to"] == "pay@example.com"


def test_send_invoice_refusals(db):
    customer = CustomerFactory()
    invoice = make_invoice(customer, "121.00")
    with pytest.raises(InvoiceNotSent, match="no e-mail address"):
        send_invoice(db, invoice, actor=ACTOR)
    with pytest.raises(InvoiceNotSent, match="not an e-mail address"):
        send_invoice(db, invoice, actor=ACTOR, to="nobody")
    cancel_invoice(db, invoice, actor=ACTOR, reason="Wrong")
    with pytest.raises(InvoiceNotSent, match="cancelled"):
        send_invoice(db, db.get(Invoice, invoice.id), actor=ACTOR, to="a@example.com")
    assert db.scalar(select(func.count()).select_from(OutboundEmail)) == 0


def test_dunning_run_scope():
    check_run_scope(None)
    with pytest.raises(DunningRunRefused):
        check_run_scope(frozenset({1}))
