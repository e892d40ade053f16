"""The overview: what is owed first; the blocking warning while dunning is under way."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from portal.models import (
    BlockingException,
    CaseState,
    DebtRecoveryCase,
    ExceptionKind,
    Language,
    Reminder,
    ServiceState,
)
from tests.factories import CustomerServiceFactory
from tests.selfcare.conftest import make_invoice, text


def _dunning(db, world, *, block_on: date | None, level: int = 2) -> DebtRecoveryCase:
    case = DebtRecoveryCase(customer_id=world.customer.id, state=CaseState.REMINDED, level=level,
                            opened_on=date.today() - timedelta(days=20))
    db.add(case)
    db.flush()
    db.add(Reminder(case_id=case.id, customer_id=world.customer.id, level=level, issued_on=date.today() - timedelta(days=3),
                    pay_by=date.today() + timedelta(days=4), block_on=block_on, amount_due=Decimal("605.00")))
    db.commit()
    return case


def test_owed_comes_first(customer_client, mine):
    html = text(customer_client.get("/"))
    assert html.index("What you owe") < html.index("Your services")
    assert "/statement" in html and "unpaid=y" in html
    assert "will be blocked" not in html


def test_blocking_warning_with_amount_date_and_qr(customer_client, mine, db):
    block_on = date.today() + timedelta(days=5)
    _dunning(db, mine, block_on=block_on)
    html = text(customer_client.get("/"))
    assert "This service will be blocked on" in html and "Internet 300" in html
    assert block_on.strftime("%b") in html and str(block_on.year) in html
    assert "605.00" in html or "605,00" in html
    assert mine.invoice.variable_symbol in html
    assert "CZ6508000000192000145399" in html
    assert 'src="data:image/svg+xml' in html
    assert html.index("will be blocked") < html.index("What you owe")


def test_no_warning_without_block_date_or_active_service_or_with_exemption(customer_client, mine, db):
    case = _dunning(db, mine, block_on=None, level=1)
    assert "will be blocked" not in text(customer_client.get("/"))
    db.add(Reminder(case_id=case.id, customer_id=mine.customer.id, level=2, issued_on=date.today(),
                    pay_by=date.today(), block_on=date.today() + timedelta(days=3), amount_due=Decimal("605.00")))
    db.commit()
    assert "will be blocked" in text(customer_client.get("/"))
    exemption = BlockingException(customer_id=mine.customer.id, kind=ExceptionKind.NEVER_BLOCK, reason="hospital")
    db.add(exemption)
    db.commit()
    assert "will be blocked" not in text(customer_client.get("/"))
    db.delete(exemption)
    mine.service.state = ServiceState.BLOCKED
    db.commit()
    assert "will be blocked" not in text(customer_client.get("/"))


def test_closed_case_shows_no_warning(customer_client, mine, db):
    case = _dunning(db, mine, block_on=date.today() + timedelta(days=5))
    case.state = CaseState.CLOSED
    db.commit()
    assert "will be blocked" not in text(customer_client.get("/"))


def test_a_postponement_moves_the_blocking_date_to_the_day_after(mine, db):
    from portal.domain.dunning import blocking_forecast

    block_on = date.today() + timedelta(days=5)
    _dunning(db, mine, block_on=block_on)
    forecast = blocking_forecast(db, mine.customer.id, [mine.service], date.today())
    assert forecast["block_on"] == block_on
    assert forecast["amounts"] == {"CZK": Decimal("605.00")}
    assert forecast["invoice"].id == mine.invoice.id
    db.add(BlockingException(customer_id=mine.customer.id, kind=ExceptionKind.POSTPONE,
                             until=block_on + timedelta(days=10), reason="promised to pay"))
    db.commit()
    forecast = blocking_forecast(db, mine.customer.id, [mine.service], date.today())
    assert forecast["block_on"] == block_on + timedelta(days=11)
    assert blocking_forecast(db, mine.customer.id, [], date.today()) is None


def test_blocking_warning_says_it_once_and_lists_the_services(customer_client, mine, db):
    """Five services to be blocked: one sentence, then the five names — not the sentence 5×."""
    others = [CustomerServiceFactory(customer=mine.customer, definition=mine.service.definition,
                                     installation_street=f"Ulice {n}", installation_city="Brno")
              for n in range(4)]
    for s in others:
        s.state = ServiceState.ACTIVE
    mine.service.state = ServiceState.ACTIVE
    _dunning(db, mine, block_on=date.today() + timedelta(days=5))
    html = text(customer_client.get("/"))
    assert html.count("will be blocked on") == 1
    assert "These services will be blocked on" in html
    for n in range(4):
        assert f"Ulice {n}" in html


def test_czech_dashboard_due_label_agrees(customer_client, mine, db, customer_login):
    """The blocking card's due label in Czech read "Splatnost byla"/"Splatnost byl"
    before a date: it is the plain label "Datum splatnosti"."""
    customer_login.language = Language.CS
    customer_login.customer.language = Language.CS
    _dunning(db, mine, block_on=date.today() + timedelta(days=5))
    html = text(customer_client.get("/"))
    assert "Datum splatnosti" in html
    assert "Splatnost byl" not in html


def test_a_past_due_date_is_overdue_since_not_the_next_payment(customer_client, mine, db):
    """The next due date is the earliest one still ahead; an older one is "overdue since"."""
    today = date.today()
    future = make_invoice(mine.customer, gross=Decimal("100.00"), issue_date=today, due_days=10)
    db.commit()
    html = text(customer_client.get("/"))
    assert f"Overdue since {_en(mine.invoice.due_date)}." in html
    assert f"Next payment due on {_en(future.due_date)}." in html
    assert f"Next payment due on {_en(mine.invoice.due_date)}" not in html


def test_overview_next_due_date_is_in_the_future(db, mine):
    from portal.domain.overview import customer_overview

    today = date.today()
    future = make_invoice(mine.customer, gross=Decimal("100.00"), issue_date=today, due_days=10)
    db.commit()
    ov = customer_overview(db, mine.customer.id, today)
    assert ov.next_due_date == future.due_date
    assert ov.overdue_since == mine.invoice.due_date
    only_past = customer_overview(db, mine.customer.id, future.due_date + timedelta(days=1))
    assert only_past.next_due_date is None


def _en(d: date) -> str:
    return f"{d.strftime('%b')} {d.day}, {d.year}"
