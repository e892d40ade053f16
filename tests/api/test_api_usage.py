"""/api/v1/usage: trackers (read), readings ingested in batches (all or nothing, retries
change nothing), readings listed within the token's locations."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from portal.models import AuditEntry, UsageInstance, UsageItem, UsageReading, UsageTracker
from tests.api.conftest import problem_fields
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)


@pytest.fixture
def metered(db):
    tracker = UsageTracker(name="Data", vat_rate=D("21.00"))
    db.add(tracker)
    db.flush()
    db.add(UsageItem(tracker_id=tracker.id, metric="data", name="Transferred data", unit="GB", step=D("1"),
                     amount_per_step=D("2.00")))
    location = LocationFactory()
    service = CustomerServiceFactory(customer=CustomerFactory(location=location),
                                     definition=ServiceDefinitionFactory(price=D("0"), usage_tracker_id=tracker.id))
    db.commit()
    return service


def batch(service, *values):
    return {"readings": [{"service_id": service.id, "metric": "data", "value": v,
                          "measured_at": datetime(2026, 11, day, 12, tzinfo=UTC).isoformat()}
                         for day, v in enumerate(values, start=2)]}


def count(db) -> int:
    return db.scalar(select(func.count()).select_from(UsageReading))


def test_ingest_stores_and_a_retry_stores_nothing(db, api, metered):
    response = api.post("/api/v1/usage/readings", json=batch(metered, "1.5", "2"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": 2, "stored": 2, "already_stored": 0}
    again = api.post("/api/v1/usage/readings", json=batch(metered, "1.5", "2"))
    assert again.get_json() == {"received": 2, "stored": 0, "already_stored": 2}
    assert count(db) == 2
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "usage.ingested")).first()
    assert entry.via.startswith("API token ")


def test_a_wrong_reading_refuses_the_batch_naming_it(db, api, metered):
    body = batch(metered, "1", "2")
    body["readings"][1]["metric"] = "voice"
    response = api.post("/api/v1/usage/readings", json=body)
    assert response.status_code == 422
    assert problem_fields(response) == {"readings.1.metric"}
    assert count(db) == 0


def test_a_malformed_reading_is_422_with_the_field(api, metered):
    body = batch(metered, "1")
    body["readings"][0]["value"] = "lots"
    body["readings"][0]["measured_at"] = "2026-11-02T12:00:00"  # no zone
    response = api.post("/api/v1/usage/readings", json=body)
    assert response.status_code == 422
    assert problem_fields(response) == {"readings.0.value", "readings.0.measured_at"}
    assert problem_fields(api.post("/api/v1/usage/readings", json={"readings": []})) == {"readings"}


def test_ingest_needs_the_right(db, make_api, make_token, metered):
    reader = OperatorFactory(rights=("customers.read",))
    db.commit()
    response = make_api(make_token(reader)).post("/api/v1/usage/readings", json=batch(metered, "1"))
    assert response.status_code == 403


def test_a_service_in_another_location_is_not_found(db, make_api, make_token, operator, metered):
    token = make_token(operator, locations=[LocationFactory()])
    response = make_api(token).post("/api/v1/usage/readings", json=batch(metered, "1"))
    assert response.status_code == 422 and problem_fields(response) == {"readings.0.service_id"}
    db.commit()
    assert count(db) == 0


def test_list_and_get_readings_in_scope(db, api, make_api, make_token, operator, metered):
    api.post("/api/v1/usage/readings", json=batch(metered, "1", "2", "3"))
    page = api.get(f"/api/v1/usage/readings?service_id={metered.id}&limit=2").get_json()
    assert [D(r["value"]) for r in page["data"]] == [1, 2]
    assert page["data"][0]["metric"] == "data" and page["data"][0]["measured_at"].endswith("+00:00")
    rest = api.get(f"/api/v1/usage/readings?service_id={metered.id}&cursor={page['next_cursor']}").get_json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    since = api.get("/api/v1/usage/readings?measured_from=2026-11-03T00:00:00%2B00:00").get_json()
    assert len(since["data"]) == 2
    reading_id = page["data"][0]["id"]
    assert api.get(f"/api/v1/usage/readings/{reading_id}").get_json()["service_id"] == metered.id
    elsewhere = make_api(make_token(operator, locations=[LocationFactory()]))
    assert elsewhere.get(f"/api/v1/usage/readings/{reading_id}").status_code == 404
    assert elsewhere.get("/api/v1/usage/readings").get_json()["data"] == []


def test_trackers_are_listed_with_their_items(api, metered):
    body = api.get("/api/v1/usage/trackers").get_json()
    (tracker,) = body["data"]
    assert tracker["items"][0]["metric"] == "data" and tracker["items"][0]["amount_per_step"] == "2.0000"
    assert api.get(f"/api/v1/usage/trackers/{tracker['id']}").status_code == 200
    assert api.get("/api/v1/usage/trackers/999999").status_code == 404


def test_the_instance_is_attached_by_the_first_batch(db, api, metered):
    api.post("/api/v1/usage/readings", json=batch(metered, "1"))
    assert db.scalar(select(func.count()).select_from(UsageInstance)
                     .where(UsageInstance.customer_service_id == metered.id)) == 1
