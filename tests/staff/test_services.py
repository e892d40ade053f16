"""Staff services: the list, a service's page, each lifecycle step (with its confirmation,
bad input, rights and location scoping), ordering, and the scheduled steps the CLI applies."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.models import AuditEntry, CustomerService, ServiceEvent, ServiceState
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

TODAY = date.today()


def _service(state=ServiceState.ACTIVE, customer=None, definition=None, **kw):
    if state == ServiceState.ORDERED:
        kw.update(activated_on=None, billing_from=None)
    return CustomerServiceFactory(state=state, customer=customer or CustomerFactory(),
                                  definition=definition or ServiceDefinitionFactory(), **kw)


def _audit(db, service_id, action=None) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.entity_type == "customer_service", AuditEntry.entity_id == service_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return db.scalars(stmt).all()


def _events(db, service_id) -> list[ServiceEvent]:
    return db.scalars(select(ServiceEvent).where(ServiceEvent.customer_service_id == service_id)).all()


def _reload(db, service) -> CustomerService:
    db.expire_all()
    return db.get(CustomerService, service.id)


# -- list ----------------------------------------------------------------------------------------


def test_list_filters_and_csv(staff_client, db):
    loc_a, loc_b = LocationFactory(name="Brno"), LocationFactory(name="Praha")
    fast, slow = ServiceDefinitionFactory(name="Fast 1000"), ServiceDefinitionFactory(name="Slow 10")
    novak = CustomerFactory(location=loc_a, last_name="Novák", name_key="novak", customer_number="C900001")
    svoboda = CustomerFactory(location=loc_b, last_name="Svoboda", name_key="svoboda", customer_number="C900002")
    s1 = _service(customer=novak, definition=fast)
    s2 = _service(ServiceState.BLOCKED, customer=svoboda, definition=slow)
    db.commit()

    page = staff_client.get("/staff/services").get_data(as_text=True)
    assert f"/staff/services/{s1.id}" in page and f"/staff/services/{s2.id}" in page

    def shown(query):
        text = staff_client.get(f"/staff/services?{query}").get_data(as_text=True)
        return {s.id for s in (s1, s2) if f'href="/staff/services/{s.id}"' in text}

    assert shown("state=blocked") == {s2.id}
    assert shown(f"definition={fast.id}") == {s1.id}
    assert shown(f"location={loc_b.id}") == {s2.id}
    assert shown("q=Novák") == {s1.id}  # accents ignored: name_key is "novak"
    assert shown("q=C900002") == {s2.id}
    assert shown("state=nonsense&definition=x") == {s1.id, s2.id}  # unknown values mean "any"

    resp = staff_client.get("/staff/services?state=blocked&format=csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["id", "customer_number", "customer"]
    assert [r[0] for r in rows[1:]] == [str(s2.id)]
    assert rows[1][5] == "blocked" and rows[1][6] == "605.00"


def test_list_htmx_renders_only_the_results(staff_client, db):
    s = _service()
    db.commit()
    resp = staff_client.htmx("GET", "/staff/services?state=active")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f"/staff/services/{s.id}" in text
    assert "<html" not in text and 'role="search"' not in text


def test_list_is_scoped_to_the_operators_locations(operator_client, db):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    mine = _service(customer=CustomerFactory(location=loc_a))
    theirs = _service(customer=CustomerFactory(location=loc_b))
    db.commit()
    client = operator_client(rights=("customers.read", "services.lifecycle"), locations=[loc_a])
    text = client.get("/staff/services").get_data(as_text=True)
    assert f"/staff/services/{mine.id}" in text and f"/staff/services/{theirs.id}" not in text
    csv_text = client.get("/staff/services?format=csv").get_data(as_text=True)
    assert f"\n{mine.id}," in csv_text and f"\n{theirs.id}," not in csv_text
    assert client.get(f"/staff/services/{theirs.id}").status_code == 404
    assert client.get(f"/staff/services/{theirs.id}/block").status_code == 404
    resp = client.post(f"/staff/services/{theirs.id}/block", data={"reason": "x"})
    assert resp.status_code == 404
    assert _reload(db, theirs).state == ServiceState.ACTIVE
    assert client.get(f"/staff/customers/{theirs.customer_id}/services/new").status_code == 404


def test_list_query_count_does_not_grow(staff_client, db, count_queries):
    def count():
        staff_client.get("/staff/services")
        with count_queries() as q:
            assert staff_client.get("/staff/services").status_code == 200
        return q.count

    for _ in range(2):
        _service(customer=CustomerFactory())
    db.commit()
    few = count()
    for _ in range(18):
        _service(customer=CustomerFactory(), definition=ServiceDefinitionFactory())
    db.commit()
    assert count() == few


def test_forbidden_without_the_rights(operator_client, db):
    s = _service()
    db.commit()
    reader = operator_client(rights=("customers.read",))
    assert reader.get(f"/staff/services/{s.id}").status_code == 200
    assert reader.get(f"/staff/services/{s.id}/block").status_code == 403
    assert reader.post(f"/staff/services/{s.id}/block", data={"reason": "x"}).status_code == 403
    assert reader.get(f"/staff/services/bulk?action=block&ids={s.id}").status_code == 403
    assert reader.get(f"/staff/customers/{s.customer_id}/services/new").status_code == 403
    assert _reload(db, s).state == ServiceState.ACTIVE
    nobody = operator_client(rights=("billing.run",))
    assert nobody.get("/staff/services").status_code == 403
    assert nobody.get(f"/staff/services/{s.id}").status_code == 403


# -- detail --------------------------------------------------------------------------------------


def test_detail_shows_state_price_history_pending_and_audit(staff_client, db):
    s = _service(price_override=Decimal("499.00"), commitment_until=TODAY + timedelta(days=100))
    db.commit()
    staff_client.post(f"/staff/services/{s.id}/block", data={"reason": "Unpaid fibre install",
                                                            "on": (TODAY + timedelta(days=3)).isoformat()})
    text = staff_client.get(f"/staff/services/{s.id}").get_data(as_text=True)
    assert s.definition.name in text and "499" in text
    assert "Scheduled steps" in text and "Unpaid fibre install" in text
    assert 'id="pending-table"' in text
    assert "service.blocked_scheduled" in text  # the audit entry
    assert "Block" in text and "Cancel" in text  # allowed actions for an active service
    assert "Unblock" not in text.split('id="actions-heading"')[1].split("</section>")[0]


def test_detail_404_for_unknown(staff_client):
    assert staff_client.get("/staff/services/999999").status_code == 404
    assert staff_client.get("/staff/services/999999/block").status_code == 404


# -- steps ---------------------------------------------------------------------------------------


def test_block_now_writes_event_and_audit(staff_client, db):
    s = _service()
    db.commit()
    assert staff_client.get(f"/staff/services/{s.id}/block").status_code == 200
    resp = staff_client.post(f"/staff/services/{s.id}/block", data={"reason": "Abuse report"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/staff/services/{s.id}")
    s = _reload(db, s)
    assert s.state == ServiceState.BLOCKED
    [event] = [e for e in _events(db, s.id) if e.kind.value == "blocked"]
    assert event.reason == "Abuse report" and event.done_at is not None and event.actor_type.value == "operator"
    [entry] = _audit(db, s.id, "service.blocked")
    assert entry.changes["state"] == ["active", "blocked"] and entry.changes["reason"] == "Abuse report"


@pytest.mark.parametrize("data, message", [
    ({}, "Give a reason."),
    ({"reason": "   "}, "Give a reason."),
    ({"reason": "x", "on": "31.31.2025"}, "Not a valid date value."),
    ({"reason": "x", "on": "9999-12-31"}, "Choose a date between"),
])
def test_block_bad_input_is_422_and_saves_nothing(staff_client, db, data, message):
    s = _service()
    db.commit()
    resp = staff_client.post(f"/staff/services/{s.id}/block", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert _reload(db, s).state == ServiceState.ACTIVE
    assert _events(db, s.id) == [] and _audit(db, s.id) == []


def test_step_not_allowed_from_the_state_is_422(staff_client, db):
    s = _service()
    db.commit()
    assert staff_client.get(f"/staff/services/{s.id}/unblock").status_code == 422
    resp = staff_client.post(f"/staff/services/{s.id}/unblock", data={"reason": "x"})
    assert resp.status_code == 422 and "cannot take this step" in resp.get_data(as_text=True)
    assert _events(db, s.id) == []
    assert staff_client.get(f"/staff/services/{s.id}/explode").status_code == 404


def test_unblock_with_credit_and_activate(staff_client, db):
    blocked = _service(ServiceState.BLOCKED)
    ordered = _service(ServiceState.ORDERED)
    db.commit()
    resp = staff_client.post(f"/staff/services/{blocked.id}/unblock",
                             data={"reason": "Paid", "credit_blocked_days": "y"})
    assert resp.status_code == 302
    assert _reload(db, blocked).state == ServiceState.ACTIVE
    [entry] = _audit(db, blocked.id, "service.unblocked")
    assert entry.changes["reason"] == "Paid"
    resp = staff_client.post(f"/staff/services/{ordered.id}/activate",
                             data={"reason": "Installed", "on": TODAY.isoformat()})
    assert resp.status_code == 302
    ordered = _reload(db, ordered)
    assert ordered.state == ServiceState.ACTIVE and ordered.billing_from == TODAY
    assert _audit(db, ordered.id, "service.activated")


def test_cancel_asks_for_confirmation_first(staff_client, db):
    s = _service()
    db.commit()
    on = (TODAY + timedelta(days=40)).isoformat()
    resp = staff_client.post(f"/staff/services/{s.id}/cancel", data={"reason": "Moving abroad", "on": on})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'name="confirm" value="yes"' in text and "cannot be undone" in text
    assert _events(db, s.id) == []  # nothing yet
    resp = staff_client.post(f"/staff/services/{s.id}/cancel",
                             data={"reason": "Moving abroad", "on": on, "confirm": "yes"})
    assert resp.status_code == 302
    s = _reload(db, s)
    assert s.state == ServiceState.ACTIVE  # scheduled: the date is in the future
    pending = [e for e in _events(db, s.id) if e.done_at is None]
    assert [e.kind.value for e in pending] == ["cancelled"] and pending[0].scheduled_for.isoformat() == on
    assert _audit(db, s.id, "service.cancel_requested") and _audit(db, s.id, "service.cancelled_scheduled")
    assert "Scheduled steps" in staff_client.get(f"/staff/services/{s.id}").get_data(as_text=True)


def test_cancel_before_the_notice_period_is_refused_unless_waived(staff_client, db):
    s = _service()
    db.commit()
    data = {"reason": "Unhappy", "on": TODAY.isoformat(), "confirm": "yes"}
    resp = staff_client.post(f"/staff/services/{s.id}/cancel", data=data)
    assert resp.status_code == 422 and "earliest possible end date" in resp.get_data(as_text=True)
    assert _events(db, s.id) == [] and _audit(db, s.id) == []
    resp = staff_client.post(f"/staff/services/{s.id}/cancel", data={**data, "waive_notice": "y"})
    assert resp.status_code == 302
    s = _reload(db, s)
    assert s.state == ServiceState.CANCELLED and s.billing_to == TODAY


def test_change_plan_only_to_allowed_targets_with_confirmation(staff_client, db):
    target, other = ServiceDefinitionFactory(name="Giga"), ServiceDefinitionFactory(name="Other")
    definition = ServiceDefinitionFactory(name="Mega")
    definition.allowed_targets = [target]
    s = _service(definition=definition)
    db.commit()
    page = staff_client.get(f"/staff/services/{s.id}/change-plan").get_data(as_text=True)
    assert "Giga" in page and "Other" not in page
    resp = staff_client.post(f"/staff/services/{s.id}/change-plan", data={"reason": "Upgrade", "target": other.id})
    assert resp.status_code == 422 and "Choose one of the tariffs" in resp.get_data(as_text=True)
    resp = staff_client.post(f"/staff/services/{s.id}/change-plan", data={"reason": "Upgrade", "target": target.id})
    assert resp.status_code == 200 and "Difference" in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(CustomerService)) == 1
    resp = staff_client.post(f"/staff/services/{s.id}/change-plan",
                             data={"reason": "Upgrade", "target": target.id, "confirm": "yes"})
    assert resp.status_code == 302
    s = _reload(db, s)
    assert s.replaced_by_id is not None
    successor = db.get(CustomerService, s.replaced_by_id)
    assert successor.definition_id == target.id
    assert _audit(db, s.id, "service.change_scheduled") or _audit(db, s.id, "service.changed")


def test_htmx_inline_action_refreshes_the_panel(staff_client, db):
    s = _service()
    db.commit()
    form = staff_client.htmx("GET", f"/staff/services/{s.id}/block").get_data(as_text=True)
    assert "<html" not in form and 'hx-target="#service-panel"' in form
    bad = staff_client.htmx("POST", f"/staff/services/{s.id}/block", data={"reason": ""})
    assert bad.status_code == 422 and bad.headers["HX-Retarget"] == "#service-actions"
    assert "Give a reason." in bad.get_data(as_text=True)
    resp = staff_client.htmx("POST", f"/staff/services/{s.id}/block", data={"reason": "Line fault"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="service-panel"' in text and "<html" not in text
    assert "Line fault" in text and "service.blocked" in text
    assert _reload(db, s).state == ServiceState.BLOCKED


# -- order ---------------------------------------------------------------------------------------


def test_order_a_service(staff_client, db):
    customer = CustomerFactory()
    definition = ServiceDefinitionFactory(name="Fibre 500")
    ServiceDefinitionFactory(name="Retired", active=False)
    db.commit()
    page = staff_client.get(f"/staff/customers/{customer.id}/services/new").get_data(as_text=True)
    assert "Fibre 500" in page and "Retired" not in page
    resp = staff_client.post(f"/staff/customers/{customer.id}/services/new", data={
        "definition": definition.id, "ordered_on": TODAY.isoformat(), "price_override": "450.50",
        "installation_street": "Lipová 3", "installation_city": "Brno", "reason": "Phone order"})
    assert resp.status_code == 302
    service = db.scalar(select(CustomerService).where(CustomerService.customer_id == customer.id))
    assert service.state == ServiceState.ORDERED and service.price_override == Decimal("450.50")
    assert resp.headers["Location"].endswith(f"/staff/services/{service.id}")
    [entry] = _audit(db, service.id, "service.ordered")
    assert entry.customer_id == customer.id


@pytest.mark.parametrize("data, message", [
    ({"ordered_on": TODAY.isoformat()}, "Choose a tariff."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "price_override": "-1"}, "A price cannot be negative."),
    ({"definition": "DEF", "ordered_on": ""}, "Enter the order date."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "variable_symbol": "12ab"}, "Up to 10 digits."),
    ({"definition": "OLD", "ordered_on": TODAY.isoformat()}, "no longer offered"),
    ({"definition": "999999", "ordered_on": TODAY.isoformat()}, "Choose a tariff."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "price_override": "Infinity"}, "Enter a number."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "price_override": "NaN"}, "Enter a number."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "price_override": "1e999"}, "The price is too large."),
    ({"definition": "DEF", "ordered_on": TODAY.isoformat(), "price_override": "123456789012"},
     "The price is too large."),
])
def test_order_bad_input_is_422(staff_client, db, data, message):
    customer = CustomerFactory()
    definition, old = ServiceDefinitionFactory(), ServiceDefinitionFactory(active=False)
    db.commit()
    data = {k: {"DEF": str(definition.id), "OLD": str(old.id)}.get(v, v) for k, v in data.items()}
    resp = staff_client.post(f"/staff/customers/{customer.id}/services/new", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(CustomerService)) == 0
    assert db.scalar(select(func.count()).select_from(AuditEntry)
                     .where(AuditEntry.entity_type == "customer_service")) == 0


# -- scheduled steps and the CLI -----------------------------------------------------------------


def test_scheduled_block_is_applied_by_the_cli(app, staff_client, db):
    s = _service()
    db.commit()
    on = TODAY + timedelta(days=5)
    resp = staff_client.post(f"/staff/services/{s.id}/block", data={"reason": "Planned", "on": on.isoformat()})
    assert resp.status_code == 302
    assert _reload(db, s).state == ServiceState.ACTIVE
    runner = app.test_cli_runner()
    early = runner.invoke(args=["services", "apply-scheduled", "--date", (on - timedelta(days=1)).isoformat()])
    assert early.exit_code == 0 and "0 scheduled steps carried out" in early.output
    assert _reload(db, s).state == ServiceState.ACTIVE
    result = runner.invoke(args=["services", "apply-scheduled", "--date", on.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 scheduled step carried out" in result.output
    s = _reload(db, s)
    assert s.state == ServiceState.BLOCKED
    [entry] = _audit(db, s.id, "service.blocked")
    assert entry.actor_type.value == "system" and entry.changes["scheduled_by"]
    text = staff_client.get(f"/staff/services/{s.id}").get_data(as_text=True)
    assert "Nothing is scheduled." in text


def test_cli_rejects_a_bad_date(app):
    result = app.test_cli_runner().invoke(args=["services", "apply-scheduled", "--date", "2025-13-01"])
    assert result.exit_code != 0 and "Invalid value" in result.output


def test_refusals_show_before_the_confirmation_page(staff_client, db):
    target = ServiceDefinitionFactory(name="Giga")
    definition = ServiceDefinitionFactory(name="Mega")
    definition.allowed_targets = [target]
    s = _service(definition=definition, billing_from=TODAY - timedelta(days=10))
    db.commit()
    resp = staff_client.post(f"/staff/services/{s.id}/cancel", data={"reason": "x", "on": TODAY.isoformat()})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "earliest possible end date" in text and 'value="yes"' not in text
    resp = staff_client.post(f"/staff/services/{s.id}/change-plan", data={
        "reason": "x", "target": target.id, "on": (TODAY - timedelta(days=20)).isoformat()})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "takes effect after billing started" in text and 'value="yes"' not in text
    assert _events(db, s.id) == [] and _audit(db, s.id) == []
    # a cancellation already scheduled: a plan change is refused before confirming
    assert staff_client.post(f"/staff/services/{s.id}/cancel", data={"reason": "x", "confirm": "yes"}).status_code == 302
    resp = staff_client.post(f"/staff/services/{s.id}/change-plan", data={"reason": "x", "target": target.id})
    assert resp.status_code == 422 and "already has a cancellation scheduled" in resp.get_data(as_text=True)


# -- a step opened as its own page -----------------------------------------------------------------


def _step_service(db, slug):
    state = {"activate": ServiceState.ORDERED, "unblock": ServiceState.BLOCKED}.get(slug, ServiceState.ACTIVE)
    definition = ServiceDefinitionFactory(name="Mega")
    definition.allowed_targets = [ServiceDefinitionFactory(name="Giga")]
    s = _service(state, definition=definition)
    db.commit()
    return s


@pytest.mark.parametrize("slug", ["activate", "block", "unblock", "change-plan", "cancel"])
def test_step_page_opened_directly_is_a_plain_form(staff_client, db, slug):
    """Opened in a new tab the step page has no service panel: its form must not aim at one."""
    from tests.web.standalone import assert_standalone

    s = _step_service(db, slug)
    resp = staff_client.get(f"/staff/services/{s.id}/{slug}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in html
    assert_standalone(html, slug)
    assert f'action="/staff/services/{s.id}/{slug}"' in html and "hx-post" not in html
    # Bad input without JavaScript: the whole page again, the message next to the field.
    bad = staff_client.post(f"/staff/services/{s.id}/{slug}", data={"reason": ""})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "<html" in text and "Give a reason." in text
    assert_standalone(text, slug)
    assert "hx-post" not in text


@pytest.mark.parametrize("slug", ["activate", "block", "unblock", "change-plan", "cancel"])
def test_step_page_opened_directly_carries_out_the_step(staff_client, db, slug):
    s = _step_service(db, slug)
    data = {"reason": "From its own page"}
    if slug == "change-plan":
        data["target"] = s.definition.allowed_targets[0].id
    if slug == "cancel":
        data["waive_notice"] = "y"
    resp = staff_client.post(f"/staff/services/{s.id}/{slug}", data=data)
    if slug in ("change-plan", "cancel"):
        # The confirmation is a whole page too, and its Confirm is a plain form.
        text = resp.get_data(as_text=True)
        assert resp.status_code == 200 and "<html" in text and 'name="confirm" value="yes"' in text
        from tests.web.standalone import assert_standalone
        assert_standalone(text, slug)
        assert "hx-post" not in text
        data["confirm"] = "yes"
        resp = staff_client.post(f"/staff/services/{s.id}/{slug}", data=data)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/staff/services/{s.id}")
    assert _audit(db, s.id)


def test_step_inside_the_service_page_keeps_htmx(staff_client, db):
    s = _step_service(db, "cancel")
    page = staff_client.get(f"/staff/services/{s.id}").get_data(as_text=True)
    assert 'hx-target="#service-actions"' in page and 'id="service-actions"' in page
    form = staff_client.htmx("GET", f"/staff/services/{s.id}/cancel").get_data(as_text=True)
    assert f'hx-post="/staff/services/{s.id}/cancel"' in form and 'hx-target="#service-panel"' in form
    confirm = staff_client.htmx("POST", f"/staff/services/{s.id}/cancel",
                                data={"reason": "x", "waive_notice": "y"}).get_data(as_text=True)
    assert 'name="confirm" value="yes"' in confirm and 'hx-target="#service-panel"' in confirm
