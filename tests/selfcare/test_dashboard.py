"""The overview: what is owed first; the blocking warning while dunning is under way."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from portal.models import (
    BlockingException,
    CaseState,
    DebtRecoveryCase,
    ExceptionKind,
    Reminder,
    ServiceState,
)
from tests.selfcare.conftest import text


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
    assert "Service Internet 300 will be blocked on" in html
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
