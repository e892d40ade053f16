"""/api/v1/dunning: cases and reminders — the staff lists' filters, cursor pages, get, the
token's locations (404 outside), the right `dunning.run`, bounded statements."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from portal.models import RIGHTS, CaseState, DebtRecoveryCase, Reminder
from tests.api.conftest import problem_fields
from tests.domain.lifecycle_fixtures import invoice
from tests.factories import CustomerFactory, LocationFactory


def _case(db, customer, *, state=CaseState.REMINDED, level=1, reminders=1):
    case = DebtRecoveryCase(customer_id=customer.id, state=state, level=level, opened_on=date(2026, 1, 20))
    db.add(case)
    db.flush()
    for n in range(reminders):
        db.add(Reminder(case_id=case.id, customer_id=customer.id, level=n + 1, issued_on=date(2026, 1, 20 + n),
                        pay_by=date(2026, 2, 1), amount_due=Decimal("605.00"), fee=Decimal("50")))
    db.flush()
    return case


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [row["id"] for row in response.get_json()["data"]]


def test_list_cases_open_by_default_and_filters(db, api):
    a, b = CustomerFactory(), CustomerFactory()
    reminded = _case(db, a, level=1)
    blocked = _case(db, b, state=CaseState.BLOCKED, level=3)
    closed = _case(db, a, state=CaseState.CLOSED, level=2, reminders=0)
    db.commit()
    assert _ids(api.get("/api/v1/dunning/cases")) == [reminded.id, blocked.id]
    assert _ids(api.get("/api/v1/dunning/cases?state=all")) == [reminded.id, blocked.id, closed.id]
    assert _ids(api.get("/api/v1/dunning/cases?state=closed")) == [closed.id]
    assert _ids(api.get("/api/v1/dunning/cases?level=3")) == [blocked.id]
    assert _ids(api.get(f"/api/v1/dunning/cases?customer_id={a.id}&state=all")) == [reminded.id, closed.id]


def test_list_cases_pages_by_cursor(db, api):
    made = [_case(db, CustomerFactory(), reminders=0) for _ in range(5)]
    db.commit()
    seen, cursor = [], None
    while True:
        body = api.get("/api/v1/dunning/cases?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [c.id for c in made]


def test_get_case(db, api):
    customer = CustomerFactory()
    case = _case(db, customer, reminders=2)
    db.commit()
    body = api.get(f"/api/v1/dunning/cases/{case.id}").get_json()
    assert body["customer_id"] == customer.id and body["customer_number"] == customer.customer_number
    assert body["state"] == "reminded" and body["level"] == 1 and body["opened_on"] == "2026-01-20"
    assert body["reminder_ids"] == sorted(r.id for r in case.reminders) and len(body["reminder_ids"]) == 2
    assert body["created_at"].endswith("+00:00")


def test_list_and_get_reminders(db, api):
    a, b = CustomerFactory(customer_number="900001"), CustomerFactory()
    case = _case(db, a, reminders=2)
    other = _case(db, b, reminders=1)
    inv = invoice(a, issue_date=date(2026, 1, 1), due_date=date(2026, 1, 15))
    case.reminders[0].invoices = [inv]
    db.commit()
    first, second = case.reminders
    assert _ids(api.get("/api/v1/dunning/reminders")) == [first.id, second.id, other.reminders[0].id]
    assert _ids(api.get("/api/v1/dunning/reminders?customer_number=900001")) == [first.id, second.id]
    assert _ids(api.get("/api/v1/dunning/reminders?level=2")) == [second.id]
    assert _ids(api.get(f"/api/v1/dunning/reminders?case_id={other.id}")) == [other.reminders[0].id]
    assert _ids(api.get(f"/api/v1/dunning/reminders?customer_id={b.id}")) == [other.reminders[0].id]
    body = api.get(f"/api/v1/dunning/reminders/{first.id}").get_json()
    assert body["amount_due"] == "605.00" and body["fee"] == "50.00" and body["invoice_ids"] == [inv.id]
    assert body["case_id"] == case.id and body["pay_by"] == "2026-02-01" and body["sent_at"] is None


def test_unknown_ids_are_404(api):
    for url in ("/api/v1/dunning/cases/999999", "/api/v1/dunning/reminders/999999",
                "/api/v1/dunning/cases/99999999999"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "application/problem+json"


def test_rows_of_other_locations_are_not_there(db, operator, make_token, make_api):
    here, there = LocationFactory(), LocationFactory()
    mine = _case(db, CustomerFactory(location=here))
    theirs = _case(db, CustomerFactory(location=there))
    db.commit()
    api = make_api(make_token(operator, locations=[here]))
    assert _ids(api.get("/api/v1/dunning/cases")) == [mine.id]
    assert _ids(api.get("/api/v1/dunning/reminders")) == [mine.reminders[0].id]
    assert api.get(f"/api/v1/dunning/cases/{theirs.id}").status_code == 404
    assert api.get(f"/api/v1/dunning/reminders/{theirs.reminders[0].id}").status_code == 404
    assert api.get(f"/api/v1/dunning/cases/{mine.id}").status_code == 200


def test_without_the_right_403(db, operator, make_token, make_api):
    case = _case(db, CustomerFactory())
    db.commit()
    api = make_api(make_token(operator, rights=[r for r in RIGHTS if r != "dunning.run"]))
    for url in ("/api/v1/dunning/cases", f"/api/v1/dunning/cases/{case.id}", "/api/v1/dunning/reminders",
                f"/api/v1/dunning/reminders/{case.reminders[0].id}"):
        response = api.get(url)
        assert response.status_code == 403, url
        assert "dunning.run" in response.get_json()["detail"]


def test_bad_filters_are_422_with_the_field(api):
    for url, field in (("/api/v1/dunning/cases?state=lost", "state"), ("/api/v1/dunning/cases?level=x", "level"),
                       ("/api/v1/dunning/cases?customer_id=0", "customer_id"),
                       ("/api/v1/dunning/reminders?level=-1", "level"),
                       ("/api/v1/dunning/reminders?case_id=abc", "case_id"),
                       ("/api/v1/dunning/reminders?cursor=%%%", "cursor")):
        response = api.get(url)
        assert response.status_code == 422, url
        assert problem_fields(response) == {field}, url


def test_lists_cost_bounded_statements(db, api, count_queries):
    for _ in range(20):
        _case(db, CustomerFactory(), reminders=2)
    db.commit()
    for path in ("/api/v1/dunning/cases", "/api/v1/dunning/reminders"):
        api.get(f"{path}?limit=3")
        with count_queries() as small:
            api.get(f"{path}?limit=3")
        with count_queries() as large:
            api.get(f"{path}?limit=30")
        assert large.count == small.count, path


def test_reminder_letter_is_the_stored_pdf(db, api, operator, make_token, make_api):
    from portal.models import StoredDocument

    here, there = LocationFactory(), LocationFactory()
    case = _case(db, CustomerFactory(location=here))
    theirs = _case(db, CustomerFactory(location=there))
    db.commit()
    url = f"/api/v1/dunning/reminders/{case.reminders[0].id}/pdf"
    first = api.get(url)
    assert first.status_code == 200 and first.mimetype == "application/pdf"
    assert first.data.startswith(b"%PDF") and first.headers["ETag"]
    again = api.get(url)
    assert again.data == first.data and db.query(StoredDocument).count() == 1  # stored once
    assert api.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    limited = make_api(make_token(operator, locations=[here]))
    assert limited.get(f"/api/v1/dunning/reminders/{theirs.reminders[0].id}/pdf").status_code == 404
    assert limited.get("/api/v1/dunning/reminders/999999/pdf").status_code == 404
    no_right = make_api(make_token(operator, rights=["customers.read"]))
    assert no_right.get(url).status_code == 403
