"""Changing a plan from the service page: preview (htmx block or full page), confirm, the
annex, and the request for staff when the plan is not changeable in selfcare."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from portal.domain.lifecycle import next_period_start
from portal.models import (
    Agreement,
    AgreementType,
    CustomerRequest,
    CustomerService,
    RequestKind,
    ServiceEvent,
    ServiceEventKind,
)
from tests.selfcare.conftest import field_error, text


def _on(world) -> date:
    return max(next_period_start(world.service.definition.period, date.today()), date.today())


def _counts(db) -> tuple:
    return (db.scalar(select(func.count()).select_from(CustomerService)),
            db.scalar(select(func.count()).select_from(ServiceEvent)),
            db.scalar(select(func.count()).select_from(CustomerRequest)))


def test_service_page_offers_the_allowed_targets(customer_client, mine):
    html = text(customer_client.get(f"/services/{mine.service.id}"))
    assert "Change plan" in html and "Internet 1000" in html
    assert f'hx-get="/services/{mine.service.id}/plan"' in html
    assert f'value="{_on(mine).isoformat()}"' in html  # default: next period start
    assert f"/cancel/services?service_id={mine.service.id}" in html


def test_preview_full_page_and_htmx_block(customer_client, mine, db):
    url = f"/services/{mine.service.id}/plan?target_id={mine.target.id}&on={_on(mine).isoformat()}"
    before = _counts(db)
    page = customer_client.get(url)
    assert page.status_code == 200
    html = text(page)
    assert "<html" in html and "Internet 300 → Internet 1000" in html
    assert "799" in html and "605" in html
    assert "Difference for the rest of this period" in html
    assert "An annex to agreement" in html and mine.agreement.number in html
    assert 'name="csrf_token"' in html and "Confirm the change" in html
    block = customer_client.htmx("GET", url)
    assert block.status_code == 200
    assert "<html" not in text(block) and 'id="plan-change"' in text(block)
    assert _counts(db) == before  # a preview writes nothing


def test_preview_on_a_day_in_the_period_is_prorated(customer_client, mine):
    on = _on(mine) + timedelta(days=10)
    html = text(customer_client.get(f"/services/{mine.service.id}/plan?target_id={mine.target.id}&on={on.isoformat()}"))
    assert "Difference for the rest of this period" in html


def test_preview_validation(customer_client, mine, theirs):
    base = f"/services/{mine.service.id}/plan"
    resp = customer_client.get(f"{base}?target_id={theirs.target.id}&on={_on(mine).isoformat()}")
    assert resp.status_code == 422 and "Choose one of the plans" in field_error(text(resp), "target_id")
    yesterday = date.today() - timedelta(days=1)
    resp = customer_client.get(f"{base}?target_id={mine.target.id}&on={yesterday.isoformat()}")
    assert resp.status_code == 422 and "past" in field_error(text(resp), "on")
    resp = customer_client.htmx("GET", f"{base}?target_id=&on=")
    assert resp.status_code == 422 and field_error(text(resp), "target_id") and field_error(text(resp), "on")


def test_confirm_changes_the_plan_and_makes_an_annex(customer_client, mine, db):
    annex_type = AgreementType(name="Annex", code="ANX", valid_from=date(2020, 1, 1), is_annex=True)
    db.add(annex_type)
    db.commit()
    on = _on(mine)
    resp = customer_client.post(f"/services/{mine.service.id}/plan",
                                data={"target_id": str(mine.target.id), "on": on.isoformat()})
    assert resp.status_code == 302, text(resp)
    db.expire_all()
    old = db.get(CustomerService, mine.service.id)
    successor = db.get(CustomerService, old.replaced_by_id)
    assert successor.definition_id == mine.target.id and successor.customer_id == mine.customer.id
    # A scheduled change is shown on the service that changes (not on a second service).
    assert resp.headers["Location"].endswith(f"/services/{old.id if on > date.today() else successor.id}")
    changed = db.scalars(select(ServiceEvent).where(ServiceEvent.customer_service_id == old.id,
                                                    ServiceEvent.kind == ServiceEventKind.CHANGED)).all()
    assert len(changed) == 1 and changed[0].effective_on == on
    annex = db.scalar(select(Agreement).where(Agreement.parent_id == mine.agreement.id))
    assert annex is not None and successor in annex.customer_services
    assert "Internet 1000" in text(customer_client.get(resp.headers["Location"]))


def test_not_selfcare_changeable_sends_a_request(customer_client, mine, db):
    mine.service.definition.selfcare_changeable = False
    db.commit()
    html = text(customer_client.get(f"/services/{mine.service.id}"))
    assert "made by our staff" in html
    on = _on(mine)
    before = db.scalar(select(func.count()).select_from(CustomerService))
    resp = customer_client.post(f"/services/{mine.service.id}/plan",
                                data={"target_id": str(mine.target.id), "on": on.isoformat()})
    assert resp.status_code == 302 and "/requests/" in resp.headers["Location"]
    req = db.scalar(select(CustomerRequest).where(CustomerRequest.kind == RequestKind.PLAN_CHANGE))
    assert req.payload["target_definition_id"] == mine.target.id
    assert req.payload["effective_on"] == on.isoformat()
    assert db.scalar(select(func.count()).select_from(CustomerService)) == before


def test_confirm_validation_and_refusals(customer_client, mine, db):
    url = f"/services/{mine.service.id}/plan"
    before = _counts(db)
    resp = customer_client.post(url, data={"target_id": "", "on": ""})
    assert resp.status_code == 422 and field_error(text(resp), "target_id")
    resp = customer_client.post(url, data={"target_id": str(mine.service.definition_id), "on": _on(mine).isoformat()})
    assert resp.status_code == 422 and field_error(text(resp), "target_id")
    assert _counts(db) == before
    # A second change while one is scheduled is refused by the rules, above the form.
    customer_client.post(url, data={"target_id": str(mine.target.id), "on": _on(mine).isoformat()})
    again = customer_client.post(url, data={"target_id": str(mine.target.id), "on": _on(mine).isoformat()})
    assert again.status_code == 422


def test_foreign_service_is_404_and_csrf_and_login(client, customer_client, mine, theirs, db):
    base = f"/services/{theirs.service.id}/plan"
    before = _counts(db)
    assert customer_client.get(base).status_code == 404
    assert customer_client.get(f"{base}?target_id={theirs.target.id}&on={_on(theirs).isoformat()}").status_code == 404
    assert customer_client.post(base, data={"target_id": str(theirs.target.id),
                                            "on": _on(theirs).isoformat()}).status_code == 404
    assert customer_client.post(f"/services/{mine.service.id}/plan", csrf=False,
                                data={"target_id": str(mine.target.id), "on": _on(mine).isoformat()}).status_code == 400
    assert _counts(db) == before


def _schedule_change(customer_client, mine, db):
    on = _on(mine)
    if on <= date.today():  # the 1st of the month: the change would be immediate
        on = next_period_start(mine.service.definition.period, date.today() + timedelta(days=1))
    resp = customer_client.post(f"/services/{mine.service.id}/plan",
                                data={"target_id": str(mine.target.id), "on": on.isoformat()})
    assert resp.status_code == 302, text(resp)
    db.expire_all()
    old = db.get(CustomerService, mine.service.id)
    return on, db.get(CustomerService, old.replaced_by_id)


def _en(d: date) -> str:
    return f"{d.strftime('%b')} {d.day}, {d.year}"


def test_a_scheduled_change_is_the_pending_change_of_one_service(customer_client, mine, db):
    """The successor of a scheduled plan change was listed as a second service, "Ordered"."""
    on, successor = _schedule_change(customer_client, mine, db)
    change = f"changes to Internet 1000 on {_en(on)}"
    for url in ("/services", "/"):
        html = text(customer_client.get(url))
        assert f"/services/{successor.id}" not in html, url
        assert "badge-ordered" not in html, url
        assert change in html, url
        assert html.count(f"/services/{mine.service.id}\"") == 1, url
    page = text(customer_client.get(f"/services/{mine.service.id}"))
    assert f"Scheduled: {change}" in page
    # Nor is it a service of its own to send a request about.
    assert f'<option value="{successor.id}"' not in text(customer_client.get("/requests"))
    # The successor's own address leads to the service that changes.
    resp = customer_client.get(f"/services/{successor.id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/services/{mine.service.id}")


def test_pending_plan_changes_domain(db, mine):
    from portal.domain.actors import Actor
    from portal.domain.lifecycle import (
        change_plan,
        pending_plan_changes,
        without_pending_successors,
    )
    from portal.models import ActorType, ServiceState

    mine.service.state = ServiceState.ACTIVE
    mine.service.billing_from = date.today() - timedelta(days=60)
    on = next_period_start(mine.service.definition.period, date.today() + timedelta(days=1))
    successor = change_plan(db, mine.service, mine.target, actor=Actor(ActorType.SYSTEM, None, "test"), on=on)
    db.flush()
    pending = pending_plan_changes(db, [mine.service, successor])
    assert list(pending) == [mine.service.id]
    assert pending[mine.service.id].target.id == mine.target.id and pending[mine.service.id].on == on
    assert without_pending_successors([mine.service, successor], pending) == [mine.service]
    assert pending_plan_changes(db, [successor]) == {}
