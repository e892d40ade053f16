"""Staff dunning: the overview by level, cases, a run previewed and carried out as a
background job (preview figures == run figures), exceptions (postpone, never block,
revoke), reminders with PDFs; location scoping, bad input, audit, query counts."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import jobs
from portal.domain.dunning import dunning_overview, run_dunning
from portal.models import (
    AuditEntry,
    BlockingException,
    CaseState,
    CustomerService,
    DebtRecoveryCase,
    ExceptionKind,
    Job,
    JobState,
    Reminder,
    ServiceState,
)
from tests.domain.lifecycle_fixtures import (
    SYSTEM,
    customer_with_email,
    default_ladder,
    invoice,
    service,
)
from tests.factories import LocationFactory

DUE = date(2025, 1, 15)
ON = DUE + timedelta(days=20)  # level 2 reached


def climb(db, on):
    """Dunning climbs one level per run, each after its interval: runs at level 1 (7 days
    overdue), at level 2 (14) when `on` is past level 3's 30 days, then on `on`."""
    run_dunning(db, on=DUE + timedelta(days=7), actor=SYSTEM)
    if (on - DUE).days >= 30:
        run_dunning(db, on=DUE + timedelta(days=14), actor=SYSTEM)
    return run_dunning(db, on=on, actor=SYSTEM)


def audits(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def debtor(location=None, number=None):
    kwargs = {"location": location} if location else {}
    if number:
        kwargs["customer_number"] = number
    customer, _ = customer_with_email(**kwargs)
    service(customer)
    invoice(customer, issue_date=DUE - timedelta(days=14), due_date=DUE)
    return customer


@pytest.fixture
def world(db):
    default_ladder()
    a, b = LocationFactory(), LocationFactory()
    ca, cb = debtor(a, "CA-000001"), debtor(b, "CB-000002")
    db.commit()
    return {"a": a, "b": b, "ca": ca, "cb": cb}


def test_preview_then_run_as_a_job(staff_client, world, db, outbox):
    assert staff_client.get("/staff/dunning/run").status_code == 200
    resp = staff_client.get(f"/staff/dunning/run?on={ON.isoformat()}")
    preview = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'data-figure="customers_considered">2<' in preview
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0 and outbox() == []  # a dry run
    resp = staff_client.post("/staff/dunning/run", data={"on": ON.isoformat()})
    assert resp.status_code == 302
    job = db.scalar(select(Job).where(Job.kind == "dunning_run"))
    assert job.state == JobState.DONE and resp.headers["Location"].endswith(f"/staff/dunning/runs/{job.id}")
    page = staff_client.get(f"/staff/dunning/runs/{job.id}").get_data(as_text=True)
    assert 'data-state="done"' in page and "every 1s" not in page
    # The preview said what the run did.
    for key in ("customers_considered", "reminders", "cases_opened", "fees_charged", "emails_sent",
                "blocked_services"):
        figure = preview.split(f'data-figure="{key}">')[1].split("<")[0]
        assert f'data-figure="{key}">{figure}<' in page, key
    assert db.scalar(select(func.count()).select_from(Reminder)) == 2
    assert audits(db, "dunning.run")


def test_queued_run_page_polls(staff_client, world, db, app, monkeypatch):
    queue = jobs.JobQueue(app, "memory://")
    queue.huey.immediate = False
    monkeypatch.setitem(app.extensions, "jobs", queue)
    staff_client.post("/staff/dunning/run", data={"on": ON.isoformat()})
    job = db.scalar(select(Job))
    html = staff_client.htmx("GET", f"/staff/dunning/runs/{job.id}").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in html and "<html" not in html
    queue.huey.execute(queue.huey.dequeue())
    db.expire_all()
    html = staff_client.htmx("GET", f"/staff/dunning/runs/{job.id}").get_data(as_text=True)
    assert 'data-state="done"' in html and "every 1s" not in html


def test_preview_is_a_get_without_csrf_and_the_run_a_post_with_it(staff_client, world, db, outbox):
    """The preview form is a GET: it carries no CSRF token and needs none; the run is a POST
    and is refused without its token."""
    from flask import g

    g.pop("csrf_valid", None)  # the test's app context outlives requests: forget the login POST's check
    resp = staff_client.get(f"/staff/dunning/run?on={ON.isoformat()}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "CSRF token is missing" not in html and 'data-figure="customers_considered">2<' in html
    assert db.scalar(select(func.count()).select_from(Reminder)) == 0
    g.pop("csrf_valid", None)
    assert staff_client.get("/staff/dunning/run?on=tomorrowish").status_code == 422
    g.pop("csrf_valid", None)
    refused = staff_client.post("/staff/dunning/run", data={"on": ON.isoformat()}, csrf=False)
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Job)) == 0
    g.pop("csrf_valid", None)
    assert staff_client.post("/staff/dunning/run", data={"on": ON.isoformat()}).status_code == 302
    assert db.scalar(select(func.count()).select_from(Reminder)) == 2


def test_run_bad_date_is_422(staff_client, world, db):
    assert staff_client.get("/staff/dunning/run?on=tomorrowish").status_code == 422
    assert staff_client.post("/staff/dunning/run", data={"on": "2025-02-31"}).status_code == 422
    assert db.scalar(select(func.count()).select_from(Job)) == 0


def test_location_limited_operator(operator_client, world, db):
    climb(db, ON)
    db.commit()
    client = operator_client(rights=("dunning.run",), locations=[world["a"]])
    assert client.get("/staff/dunning/run").status_code == 403
    assert client.post("/staff/dunning/run", data={"on": ON.isoformat()}).status_code == 403
    overview = client.get("/staff/dunning").get_data(as_text=True)
    assert 'data-figure="cases">1<' in overview and "without location limits" in overview
    cases = client.get("/staff/dunning/cases").get_data(as_text=True)
    assert "CA-000001" in cases and "CB-000002" not in cases
    reminders = client.get("/staff/dunning/reminders").get_data(as_text=True)
    assert "CA-000001" in reminders and "CB-000002" not in reminders
    assert "CB-000002" not in client.get("/staff/dunning/reminders?format=csv").get_data(as_text=True)
    theirs = db.scalar(select(Reminder).where(Reminder.customer_id == world["cb"].id))
    assert client.get(f"/staff/dunning/reminders/{theirs.id}/pdf").status_code == 404
    resp = client.post("/staff/dunning/exceptions", data={"customer": "CB-000002", "kind": "never_block", "reason": "x"})
    assert resp.status_code == 422 and "No customer has the number" in resp.get_data(as_text=True)
    exc = BlockingException(customer_id=world["cb"].id, kind=ExceptionKind.NEVER_BLOCK, reason="Very important customer")
    db.add(exc)
    db.commit()
    assert "Very important customer" not in client.get("/staff/dunning/exceptions").get_data(as_text=True)
    assert client.post(f"/staff/dunning/exceptions/{exc.id}/revoke", data={}).status_code == 404


def test_overview_by_level_and_cases(staff_client, world, db):
    climb(db, ON)
    db.commit()
    levels = dunning_overview(db, on=ON)
    assert [(s.level, s.cases) for s in levels] == [(2, 2)]
    assert levels[0].overdue == {"CZK": Decimal("1210.00")}
    assert dunning_overview(db, on=ON, location_ids={world["a"].id})[0].overdue == {"CZK": Decimal("605.00")}
    html = staff_client.get("/staff/dunning").get_data(as_text=True)
    assert 'data-level="2"' in html and 'data-figure="cases">2<' in html
    assert "CA-000001" in staff_client.get("/staff/dunning/cases?level=2").get_data(as_text=True)
    assert "CA-000001" not in staff_client.get("/staff/dunning/cases?level=1").get_data(as_text=True)
    assert staff_client.get("/staff/dunning/cases?level=abc&state=zzz").status_code == 200
    csv = staff_client.get("/staff/dunning/cases?format=csv")
    assert csv.mimetype == "text/csv" and "CA-000001" in csv.get_data(as_text=True)


def test_reminders_list_and_pdf(staff_client, world, db, count_queries):
    climb(db, ON)
    db.commit()
    html = staff_client.get("/staff/dunning/reminders").get_data(as_text=True)
    assert "CA-000001" in html and "CB-000002" in html
    assert "CB-000002" not in staff_client.get("/staff/dunning/reminders?customer=CA-000001").get_data(as_text=True)
    for qs in ("customer=%00", "level=x", "page=0"):
        assert staff_client.get(f"/staff/dunning/reminders?{qs}").status_code == 200, qs
    reminder = db.scalar(select(Reminder))
    resp = staff_client.get(f"/staff/dunning/reminders/{reminder.id}/pdf")
    assert resp.status_code == 200 and resp.data[:5] == b"%PDF-"
    assert staff_client.get("/staff/dunning/reminders/99999/pdf").status_code == 404
    with count_queries() as q2:
        staff_client.get("/staff/dunning/reminders")
    for i in range(18):
        debtor(number=f"CX-{i:06d}")
    db.commit()
    climb(db, ON)
    db.commit()
    with count_queries() as q20:
        html = staff_client.get("/staff/dunning/reminders").get_data(as_text=True)
    assert "CX-000017" in html and q2.count == q20.count


def test_postpone_never_block_and_revoke(staff_client, world, db):
    until = date.today() + timedelta(days=10)
    resp = staff_client.post("/staff/dunning/exceptions", data={
        "customer": "CA-000001", "kind": "postpone", "until": until.isoformat(), "reason": "Promised to pay"})
    assert resp.status_code == 302
    resp = staff_client.post("/staff/dunning/exceptions", data={"customer": "CB-000002", "kind": "never_block",
                                                                "reason": "Hospital"})
    assert resp.status_code == 302
    html = staff_client.get("/staff/dunning/exceptions").get_data(as_text=True)
    assert "Promised to pay" in html and "Hospital" in html
    assert audits(db, "dunning.blocking_postponed") and audits(db, "dunning.exempted")
    db.expire_all()
    assert db.get(type(world["cb"]), world["cb"].id).dunning_exempt is True
    exc = db.scalar(select(BlockingException).where(BlockingException.reason == "Hospital"))
    assert staff_client.post(f"/staff/dunning/exceptions/{exc.id}/revoke", data={}).status_code == 302
    assert audits(db, "dunning.exception_revoked")
    db.expire_all()
    assert db.get(type(world["cb"]), world["cb"].id).dunning_exempt is False
    again = staff_client.post(f"/staff/dunning/exceptions/{exc.id}/revoke", data={})
    assert again.status_code == 422 and "already revoked" in again.get_data(as_text=True)
    csv = staff_client.get("/staff/dunning/exceptions?format=csv").get_data(as_text=True)
    assert "Promised to pay" in csv and "Hospital" in csv


def test_postponed_customer_is_not_blocked(staff_client, world, db):
    staff_client.post("/staff/dunning/exceptions", data={
        "customer": "CA-000001", "kind": "postpone", "until": (date.today() + timedelta(days=400)).isoformat(),
        "reason": "Agreed instalments"})
    climb(db, DUE + timedelta(days=35))
    db.commit()
    blocked = {c.customer_id: c.state for c in db.scalars(select(DebtRecoveryCase))}
    assert blocked[world["cb"].id] == CaseState.BLOCKED and blocked[world["ca"].id] != CaseState.BLOCKED
    states = dict(db.execute(select(CustomerService.customer_id, CustomerService.state)).all())
    assert states[world["ca"].id] == ServiceState.ACTIVE and states[world["cb"].id] == ServiceState.BLOCKED


@pytest.mark.parametrize("data, message", [
    ({"customer": "CA-000001", "kind": "postpone", "until": "", "reason": "x"}, "Choose the date"),
    ({"customer": "CA-000001", "kind": "postpone", "until": "2000-01-01", "reason": "x"}, "must not be in the past"),
    ({"customer": "CA-000001", "kind": "never_block", "reason": ""}, "Give a reason."),
    ({"customer": "CA-000001", "kind": "forever", "reason": "x"}, "Not a valid choice"),
    ({"customer": "nobody", "kind": "never_block", "reason": "x"}, "No customer has the number"),
    ({"customer": "CA-000001", "kind": "postpone", "until": "soon", "reason": "x"}, "Not a valid date"),
    ({"customer": "CA-000001", "kind": "never_block", "until": "2099-01-01", "reason": "x"}, "has no end date"),
])
def test_exception_bad_input_is_422(staff_client, world, db, data, message):
    resp = staff_client.post("/staff/dunning/exceptions", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(BlockingException)) == 0


def test_dunning_needs_the_right(operator_client, world):
    client = operator_client(rights=("billing.run",))
    assert client.get("/staff/dunning").status_code == 403
    assert client.post("/staff/dunning/exceptions", data={}).status_code == 403


def test_cases_and_exceptions_lists_issue_a_bounded_number_of_queries(staff_client, world, db, count_queries):
    climb(db, ON)
    for customer in (world["ca"], world["cb"]):
        db.add(BlockingException(customer_id=customer.id, kind=ExceptionKind.NEVER_BLOCK, reason="r"))
    db.commit()
    with count_queries() as cases2:
        staff_client.get("/staff/dunning/cases")
    with count_queries() as exc2:
        staff_client.get("/staff/dunning/exceptions")
    for i in range(18):
        customer = debtor(number=f"CY-{i:06d}")
        db.add(BlockingException(customer_id=customer.id, kind=ExceptionKind.NEVER_BLOCK, reason="r"))
    db.commit()
    climb(db, ON)
    db.commit()
    with count_queries() as cases20:
        html = staff_client.get("/staff/dunning/cases").get_data(as_text=True)
    assert "CY-000017" in html
    with count_queries() as exc20:
        html = staff_client.get("/staff/dunning/exceptions").get_data(as_text=True)
    assert "CY-000017" in html
    assert (cases2.count, exc2.count) == (cases20.count, exc20.count)
