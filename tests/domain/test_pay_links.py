"""What a pay link opens (portal/domain/pay_links.py): read from the database when opened,
an invoice's amount still due or a reminder's invoices and their total, or a reason."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portal.domain import pay_links
from portal.domain.pay_links import PaymentOption, open_pay_link
from portal.links import pay_token, pay_url
from portal.models import Currency
from portal.security.pay_links import LinkKind, Refusal, make_token, secret_keys
from tests.documents.doc_fixtures import (
    make_credit_note,
    make_customer,
    make_invoice,
    make_reminder,
)

OPENED = date(2026, 3, 1)


def _open(app, db, owner_or_token, today=OPENED):
    token = owner_or_token if isinstance(owner_or_token, str) else pay_token(owner_or_token)
    return open_pay_link(db, app.config, token, today=today)


def test_an_invoice_link_shows_what_is_due_and_the_qr(app, db):
    inv = make_invoice()
    page = _open(app, db, inv)
    assert page.kind == LinkKind.INVOICE and not page.nothing_to_pay
    [owed] = page.invoices
    assert (owed.number, owed.variable_symbol, owed.due_date) == (inv.number, inv.variable_symbol, inv.due_date)
    assert page.total_due == inv.gross_total == owed.amount_due
    assert page.currency == "CZK" and page.pay_by == inv.due_date
    assert page.variable_symbol == inv.variable_symbol and page.constant_symbol == "0308"
    assert page.supplier["iban"] == "CZ6508000000192000145399"
    assert page.qr["payload"].startswith("SPD*1.0*ACC:CZ6508000000192000145399*")
    assert f"AM:{inv.gross_total:.2f}" in page.qr["payload"] and f"X-VS:{inv.variable_symbol}" in page.qr["payload"]
    assert page.qr["svg"].startswith("data:image/svg+xml") and page.qr["label"] == "QR Platba"
    assert page.expires_on == date(2026, 5, 16)  # 90 days after the due date
    assert page.options == []  # no payment provider: no button


def test_a_partly_paid_invoice_asks_for_the_rest(app, db):
    inv = make_invoice(paid=Decimal("100.00"))
    page = _open(app, db, inv)
    assert page.total_due == inv.gross_total - Decimal("100.00")
    assert f"AM:{page.total_due:.2f}" in page.qr["payload"]


def test_a_paid_invoice_asks_for_nothing(app, db):
    inv = make_invoice()
    page_before = _open(app, db, inv)
    inv.paid_amount = inv.gross_total
    db.flush()
    page = _open(app, db, inv)
    assert page.nothing_to_pay and page.total_due == 0 and page.qr is None
    assert page_before.total_due == inv.gross_total  # read when opened, not when signed


def test_a_eur_invoice_gets_the_epc_qr(app, db):
    inv = make_invoice(make_customer(Currency.EUR))
    page = _open(app, db, inv)
    assert page.currency == "EUR" and page.qr["payload"].startswith("BCD\n002")
    assert page.qr["label"] == "EPC QR (SEPA)"


def test_credit_notes_and_vanished_rows_are_unknown(app, db):
    inv = make_invoice()
    note = make_credit_note(inv)
    assert pay_token(note) is None and pay_url(note) is None
    forged_kind = make_token(secret_keys(app.config), LinkKind.INVOICE, note.id, date(2026, 5, 1))
    assert _open(app, db, forged_kind) == Refusal.UNKNOWN
    for kind in LinkKind:
        gone = make_token(secret_keys(app.config), kind, 999999, date(2026, 5, 1))
        assert _open(app, db, gone) == Refusal.UNKNOWN


def test_expired_and_tampered(app, db):
    inv = make_invoice()
    assert _open(app, db, inv, today=date(2026, 5, 16)) != Refusal.EXPIRED
    assert _open(app, db, inv, today=date(2026, 5, 17)) == Refusal.EXPIRED
    assert _open(app, db, pay_token(inv)[:-2]) == Refusal.TAMPERED


def test_a_reminder_link_shows_its_invoices_and_their_total(app, db):
    reminder = make_reminder()
    first, second = sorted(reminder.invoices, key=lambda i: i.due_date)
    page = _open(app, db, reminder)
    assert page.kind == LinkKind.REMINDER and page.pay_by == date(2026, 3, 8)
    assert [o.number for o in page.invoices] == [first.number, second.number]
    assert page.total_due == first.gross_total + second.gross_total
    # Several invoices: the customer's symbol, which pairs to the oldest first (as the letter).
    assert page.variable_symbol == reminder.case.customer.variable_symbol
    assert f"AM:{page.total_due:.2f}" in page.qr["payload"]
    assert page.expires_on == date(2026, 6, 6)  # 90 days after the pay-by date

    first.paid_amount = first.gross_total
    second.paid_amount = Decimal("50.00")
    db.flush()
    page = _open(app, db, reminder)
    assert [o.amount_due for o in page.invoices] == [Decimal("0.00"), second.gross_total - Decimal("50.00")]
    assert page.total_due == second.gross_total - Decimal("50.00")
    # One invoice left to pay: its own symbol.
    assert page.variable_symbol == second.variable_symbol

    second.paid_amount = second.gross_total
    db.flush()
    page = _open(app, db, reminder)
    assert page.nothing_to_pay and page.qr is None


def test_invoice_and_reminder_tokens_differ_for_the_same_id(app, db):
    inv = make_invoice()
    as_reminder = make_token(secret_keys(app.config), LinkKind.REMINDER, inv.id, date(2026, 5, 1))
    assert as_reminder != pay_token(inv)


@pytest.fixture
def provider(monkeypatch):
    monkeypatch.setattr(pay_links, "PAYMENT_OPTIONS", [
        lambda page: PaymentOption("Pay by card", f"https://psp.example/{page.total_due}")])


def test_a_provider_adds_its_button_only_when_something_is_due(app, db, provider):
    inv = make_invoice()
    assert _open(app, db, inv).options == [PaymentOption("Pay by card", f"https://psp.example/{inv.gross_total}")]
    inv.paid_amount = inv.gross_total
    db.flush()
    assert _open(app, db, inv).options == []


def test_a_link_made_after_it_would_have_expired_is_made_afresh(app, db):
    """An e-mail or page made today never hands out a dead link; without a day the link is the
    row's own (what a stored PDF prints)."""
    inv = make_invoice()  # due 2026-02-15: its own link works until 2026-05-16
    assert pay_token(inv, renew_on=date(2026, 5, 16)) == pay_token(inv)
    renewed = pay_token(inv, renew_on=date(2026, 9, 1))
    assert renewed != pay_token(inv)
    page = open_pay_link(db, app.config, renewed, today=date(2026, 9, 1))
    assert page.expires_on == date(2026, 11, 30) and page.total_due == inv.gross_total
