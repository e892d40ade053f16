"""/api/v1/billing-runs: starting a month's run (the staff rule, carried out by the job queue:
202 with the run's Location), following it, the history with its filters; only tokens
without location limits, like the staff pages."""
from __future__ import annotations

from sqlalchemy import func, select

from portal import jobs
from portal.models import AuditEntry, BillingRun, BillingRunState, Invoice, Job
from tests.api.conftest import problem_fields
from tests.domain.billing_fixtures import World

PERIOD = "2026-10"


def _world(db, services=3):
    w = World()
    for _ in range(services):
        w.service()
    db.commit()
    return w


def test_start_runs_in_the_job_queue_and_answers_202(db, api):
    _world(db)
    response = api.post("/api/v1/billing-runs", json={"period": PERIOD, "issue_date": "2026-11-01"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    run = db.scalar(select(BillingRun))
    assert response.headers["Location"] == f"/api/v1/billing-runs/{run.id}" and body["id"] == run.id
    assert body["period"] == PERIOD and body["issue_date"] == "2026-11-01"
    # The test queue is immediate: the job has run by the time the answer comes.
    got = api.get(f"/api/v1/billing-runs/{run.id}").get_json()
    assert got["state"] == "done" and got["invoices_count"] == 3 and got["customers_count"] == 3
    assert got["job_id"] == run.job_id and got == body
    assert set(got["totals_by_currency"]) == {"CZK"} and got["totals_by_currency"]["CZK"]["invoices"] == 3
    assert db.scalar(select(func.count()).select_from(Invoice)) == 3
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "billing.run_requested"))
    assert entry.entity_id == run.id and entry.via.startswith("API token")


def test_start_while_queued_is_refused_naming_the_period(db, api, app, monkeypatch):
    _world(db)
    queue = jobs.JobQueue(app, "memory://")
    queue.huey.immediate = False
    monkeypatch.setitem(app.extensions, "jobs", queue)
    first = api.post("/api/v1/billing-runs", json={"period": PERIOD})
    assert first.status_code == 202 and first.get_json()["state"] == "previewed"
    again = api.post("/api/v1/billing-runs", json={"period": PERIOD})
    assert again.status_code == 422 and problem_fields(again) == {"period"}
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 1
    assert db.scalar(select(func.count()).select_from(Job)) == 1


def test_bad_bodies_are_422_and_save_nothing(db, api):
    for body, field in (({"period": "2026-13"}, "period"), ({"period": "soon"}, "period"), ({}, "period"),
                        ({"period": PERIOD, "issue_date": "yesterday"}, "issue_date"),
                        ({"period": PERIOD, "colour": "red"}, "colour")):
        response = api.post("/api/v1/billing-runs", json=body)
        assert response.status_code == 422, body
        assert problem_fields(response) == {field}, (body, response.get_json())
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 0


def test_history_with_filters(db, api):
    _world(db)
    api.post("/api/v1/billing-runs", json={"period": PERIOD})
    api.post("/api/v1/billing-runs", json={"period": "2026-11"})
    runs = api.get("/api/v1/billing-runs").get_json()["data"]
    assert [r["period"] for r in runs] == [PERIOD, "2026-11"]
    assert [r["period"] for r in api.get("/api/v1/billing-runs?period=2026-11").get_json()["data"]] == ["2026-11"]
    assert len(api.get("/api/v1/billing-runs?state=done").get_json()["data"]) == 2
    assert api.get("/api/v1/billing-runs?state=failed").get_json()["data"] == []
    page = api.get("/api/v1/billing-runs?limit=1").get_json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    for query, field in (("state=odd", "state"), ("period=2026-1", "period")):
        assert problem_fields(api.get(f"/api/v1/billing-runs?{query}")) == {field}
    assert api.get("/api/v1/billing-runs/999999").status_code == 404


def test_location_limited_tokens_and_missing_right_are_403(db, operator, make_token, make_api):
    w = _world(db)
    run_id = make_api(make_token(operator)).post("/api/v1/billing-runs", json={"period": PERIOD}).get_json()["id"]
    limited = make_api(make_token(operator, locations=[w.location]))
    reader = make_api(make_token(operator, rights=["customers.read"]))
    for client in (limited, reader):
        assert client.get("/api/v1/billing-runs").status_code == 403
        assert client.get(f"/api/v1/billing-runs/{run_id}").status_code == 403
        assert client.post("/api/v1/billing-runs", json={"period": "2026-11"}).status_code == 403
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 1


def test_idempotency_key_replays_the_start(db, api):
    _world(db)
    headers = {"Idempotency-Key": "run-2026-10"}
    first = api.post("/api/v1/billing-runs", json={"period": PERIOD}, headers=headers)
    again = api.post("/api/v1/billing-runs", json={"period": PERIOD}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == first.headers["Location"]
    assert db.scalar(select(func.count()).select_from(BillingRun)) == 1
    assert db.scalar(select(BillingRun.state)) == BillingRunState.DONE
