"""Selfcare read pages: services, agreements, invoices, payments — what they show."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

from portal.models import ServiceEventKind
from tests.factories import CustomerServiceFactory, ServiceDefinitionFactory
from tests.selfcare.conftest import make_agreement, make_event, make_invoice, make_usage, text


def test_services_list_shows_state_name_price_and_period(customer_client, customer_login, mine, db):
    special = CustomerServiceFactory(customer=customer_login.customer, price_override=Decimal("499.00"),
                                     definition=ServiceDefinitionFactory(customer_name="TV Komfort"))
    db.commit()
    resp = customer_client.get("/services")
    assert resp.status_code == 200
    html = text(resp)
    assert "Internet 300" in html and "TV Komfort" in html
    assert "605" in html  # definition price
    assert "499" in html  # override wins
    assert "Monthly" in html
    assert "badge-active" in html
    assert f"/services/{special.id}" in html


def test_service_detail_history_in_plain_words(customer_client, mine, db):
    s = mine.service
    make_event(s, ServiceEventKind.ACTIVATED, date(2024, 1, 1))
    make_event(s, ServiceEventKind.BLOCKED, date(2026, 5, 3), reason="Unpaid invoice FV2026001")
    make_event(s, ServiceEventKind.UNBLOCKED, date(2026, 5, 10))
    make_event(s, ServiceEventKind.CHANGED, date(2026, 5, 11), reason="internal note", visible=False)
    make_event(s, ServiceEventKind.CANCELLED, date(2026, 12, 31), scheduled=True)
    db.commit()
    resp = customer_client.get(f"/services/{s.id}")
    assert resp.status_code == 200
    html = text(resp)
    assert "Blocked on May 3, 2026: Unpaid invoice FV2026001" in html
    assert "Unblocked on May 10, 2026" in html
    assert "Activated on Jan 1, 2024" in html
    assert "Scheduled: cancellation on Dec 31, 2026" in html
    assert "internal note" not in html  # not visible to the customer
    assert "Krátká 7" in html
    assert "Dec 31, 2026" in html  # commitment
    # The agreement covering it; the draft is not shown.
    assert f"/agreements/{mine.agreement.id}" in html
    assert f"/agreements/{mine.draft.id}" not in html
    assert "<svg" not in html  # no usage tracker, no chart


def test_service_usage_chart_is_an_accessible_svg(customer_client, mine, db):
    make_usage(mine.service)
    db.commit()
    html = text(customer_client.get(f"/services/{mine.service.id}"))
    assert "<svg" in html and 'role="img"' in html
    assert "<title" in html and "Call minutes per month" in html
    assert html.count("<rect") == 1  # one month with readings
    assert "<table" in html and "42" in html  # 40 + 2 summed this month
    assert "999" not in html  # older than 12 months


def test_service_usage_domain_aggregates_by_month(db, mine):
    from portal.domain.profile import service_usage

    make_usage(mine.service, today=date(2026, 6, 15))
    series = service_usage(db, mine.service, today=date(2026, 6, 15))
    assert len(series) == 1
    s = series[0]
    assert len(s.months) == 12 and s.months[0] == date(2025, 7, 1) and s.months[-1] == date(2026, 6, 1)
    assert s.values[-1] == Decimal("42") and s.values[:-1] == [None] * 11
    assert s.maximum == Decimal("42")


def test_agreements_list_and_detail(customer_client, mine, db):
    annex = make_agreement(mine.customer, [mine.service], parent=mine.agreement)
    db.commit()
    html = text(customer_client.get("/agreements"))
    assert mine.agreement.number in html and annex.number in html
    assert f"/agreements/{mine.draft.id}" not in html
    resp = customer_client.get(f"/agreements/{mine.agreement.id}")
    assert resp.status_code == 200
    html = text(resp)
    assert "Internet 300" in html
    assert annex.number in html
    assert "waiting for your acceptance" in html
    assert f"/agreements/{mine.agreement.id}/pdf" in html
    assert f"/agreements/{mine.agreement.id}/accept" in html


def test_agreement_acceptance_evidence(customer_client, mine, db):
    from portal.models import AcceptanceMethod, AgreementAcceptance, AgreementState
    from portal.models.base import utcnow

    mine.agreement.state = AgreementState.ACCEPTED
    db.add(AgreementAcceptance(agreement_id=mine.agreement.id, at=utcnow(), method=AcceptanceMethod.EMAIL_CODE,
                               ip="192.0.2.1", document_sha256="ab" * 32))
    db.commit()
    html = text(customer_client.get(f"/agreements/{mine.agreement.id}"))
    assert "ab" * 32 in html
    assert "Confirmed online with a code sent by e-mail" in html


def test_draft_agreement_is_404(customer_client, mine):
    assert customer_client.get(f"/agreements/{mine.draft.id}").status_code == 404


def test_invoices_list_filters_and_pages(customer_client, mine, db):
    for i in range(30):
        make_invoice(mine.customer, issue_date=date(2024, 1, 1) + timedelta(days=i), paid=Decimal("121.00"))
    db.commit()
    html = text(customer_client.get("/invoices"))
    assert "<html" in html
    assert "Page 1 of 2" in html
    assert '<option value="2026"' in html and '<option value="2024"' in html
    # Year filter.
    html = text(customer_client.get("/invoices?year=2026"))
    assert mine.invoice.number in html and mine.paid_invoice.number not in html
    assert "Page 1 of" not in html
    # Unpaid only: the one open invoice.
    html = text(customer_client.get("/invoices?unpaid=y"))
    assert mine.invoice.number in html and mine.paid_invoice.number not in html
    # The year filter keeps in the pagination links.
    html = text(customer_client.get("/invoices?year=2024"))
    assert "year=2024" in html and "page=2" in html
    html2 = text(customer_client.get("/invoices?year=2024&page=2"))
    assert "Page 2 of 2" in html2
    # A year the customer has no invoices in is ignored, not an error.
    assert customer_client.get("/invoices?year=1999").status_code == 200
    assert customer_client.get("/invoices?year=abc&page=x").status_code == 200


def test_invoices_htmx_returns_only_the_table(customer_client, mine):
    resp = customer_client.htmx("GET", "/invoices?unpaid=y")
    assert resp.status_code == 200
    html = text(resp)
    assert "<html" not in html and "<form" not in html
    assert "<table" in html and mine.invoice.number in html
    assert "HX-Request" in resp.headers.get("Vary", "")
    full = text(customer_client.get("/invoices?unpaid=y"))
    assert "<html" in full and 'hx-get="/invoices"' in full and 'hx-push-url="true"' in full
    assert 'hx-target="#invoice-table"' in full


def test_invoice_detail(customer_client, mine, db):
    html = text(customer_client.get(f"/invoices/{mine.paid_invoice.id}"))
    assert "Internet line 1" in html
    assert "21 %" in html
    assert "Payments applied" in html and "Bank transfer" in html
    assert "How to pay" not in html  # paid
    resp = customer_client.get(f"/invoices/{mine.invoice.id}")
    html = text(resp)
    assert resp.status_code == 200
    assert "How to pay" in html
    assert "CZ6508000000192000145399" in html and "19-2000145399/0800" in html
    assert mine.invoice.variable_symbol in html
    assert "No payment has been applied" in html


def test_payments_show_what_they_paid(customer_client, mine):
    html = text(customer_client.get("/payments"))
    assert mine.paid_invoice.number in html
    assert f"/invoices/{mine.paid_invoice.id}" in html
    assert "Credit for your next invoices" in html  # 700 paid, 605 allocated


def test_payments_paginate(customer_client, mine, db):
    from tests.selfcare.conftest import make_payment

    for _ in range(26):
        make_payment(mine.customer, Decimal("10.00"))
    db.commit()
    assert "Page 1 of 2" in text(customer_client.get("/payments"))
    assert "Page 2 of 2" in text(customer_client.get("/payments?page=2"))


def test_dashboard_still_works(customer_client, mine):
    html = text(customer_client.get("/"))
    assert f"/invoices/{mine.invoice.id}" in html


def test_services_show_the_price_in_force_after_a_price_change(customer_client, mine, db):
    from datetime import timedelta

    from portal.models import PriceChange

    definition = mine.service.definition
    db.add(PriceChange(definition_id=definition.id, new_price=Decimal("777.00"),
                       effective_from=date.today() - timedelta(days=1)))
    db.add(PriceChange(definition_id=definition.id, new_price=Decimal("888.00"),
                       effective_from=date.today() + timedelta(days=30)))
    db.commit()
    for url in ("/services", f"/services/{mine.service.id}"):
        html = text(customer_client.get(url))
        assert "777" in html, url
        assert "888" not in html, url


def test_usage_series_named_like_its_tracker_reads_once(db, mine, customer_client):
    """A tracker "Calls" with an item "Calls" headed its chart "Calls — Calls"."""
    item = make_usage(mine.service)
    item.name = item.tracker.name
    db.commit()
    html = text(customer_client.get(f"/services/{mine.service.id}"))
    assert f"<h3>{item.tracker.name}</h3>" in html
    assert f"{item.tracker.name} — {item.tracker.name}" not in html


def test_usage_chart_numbers_follow_the_readers_locale(db, mine, customer_client, customer_login):
    from portal.models import Language, UsageReading

    item = make_usage(mine.service)
    reading = db.query(UsageReading).filter_by(item_id=item.id, value=Decimal("40")).one()
    reading.value = Decimal("1240.5")
    customer_login.language = Language.CS
    customer_login.customer.language = Language.CS
    db.commit()
    html = text(customer_client.get(f"/services/{mine.service.id}"))
    # 40 + 2 + 1200.5 this month, written the Czech way on the axis and in the table.
    assert "1\xa0242,5" in html
    assert "1242.5" not in html and "1242,50" not in html


def test_invoice_lines_periods_use_the_page_date(customer_client, mine):
    """Invoice line periods were written short (4/1/26) beside long dates."""
    html = customer_client.get(f"/invoices/{mine.invoice.id}").get_data(as_text=True)
    assert "Apr 1, 2026 – Apr 28, 2026" in re.sub(r"<[^>]+>", "", html)  # the cell may wrap between the dates
    assert "4/1/26" not in html


def test_a_payment_the_bank_reversed_pays_nothing(customer_client, mine, db):
    from portal.domain.payments import reverse_payment
    from tests.domain.payments_fixtures import SYSTEM

    reverse_payment(db, mine.payment, actor=SYSTEM,
                    reason="bank reversal", reversed_on=date(2025, 3, 11), reference="RVSL-1")
    db.commit()
    html = text(customer_client.get("/payments"))
    assert "Returned by the bank on" in html
    assert "Credit for your next invoices" not in html and f"/invoices/{mine.paid_invoice.id}" not in html
