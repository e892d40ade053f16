"""Who may see what: anonymous → login, operators → 403, CSRF on every change, read-only
impersonation, and the isolation matrix (another customer's ids → 404, nothing changes)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from portal.models import (
    AuditEntry,
    AuthSession,
    Contact,
    CustomerRequest,
    RequestComment,
)
from tests.factories import OperatorFactory

PAGES = ["/", "/services", "/agreements", "/invoices", "/payments", "/reminders", "/requests", "/profile", "/security",
         "/statement", "/cancel/services"]


def detail_urls(w) -> list[str]:
    return [
        f"/services/{w.service.id}",
        f"/agreements/{w.agreement.id}",
        f"/agreements/{w.draft.id}",
        f"/invoices/{w.invoice.id}",
        f"/invoices/{w.paid_invoice.id}",
        f"/requests/{w.request.id}",
        f"/invoices/{w.invoice.id}/pdf",
        f"/reminders/{w.reminder.id}/pdf",
        f"/requests/{w.request.id}/attachments/{w.attachment.id}",
        f"/services/{w.service.id}/plan",
        f"/services/{w.service.id}/plan?target_id={w.target.id}&on=2099-01-01",
    ]


def post_actions(w) -> list[tuple[str, dict]]:
    """Every POST endpoint with a valid-looking body."""
    return [
        ("/requests", {"kind": "question", "subject": "Hi", "message": "Hello"}),
        (f"/requests/{w.request.id}/comments", {"body": "Hello"}),
        ("/profile/contacts", {"kind": "email", "value": "x@example.org", "purpose": "general"}),
        (f"/profile/contacts/{w.contact.id}/remove", {}),
        ("/profile/address", {"street": "A 1", "city": "B", "postal_code": "110 00", "country": "CZ"}),
        ("/profile/language", {"language": "en"}),
        ("/profile/notifications", {"notify_email": "y"}),
        ("/profile/password", {"current_password": "x", "new_password": "y", "confirm": "y"}),
        ("/security/totp", {}),
        ("/security/totp/confirm", {"code": "123456"}),
        ("/security/totp/disable", {"disable-proof": "x"}),
        ("/security/recovery-codes", {"codes-proof": "x"}),
        ("/security/sessions/logout-others", {}),
        (f"/services/{w.service.id}/plan", {"target_id": str(w.target.id), "on": "2099-01-01"}),
        ("/cancel/services", {"service_id": str(w.service.id), "end_date": "2099-01-01", "confirm": "yes"}),
    ]


def test_every_page_renders(customer_client, mine):
    for url in PAGES + detail_urls(mine)[:2] + detail_urls(mine)[3:]:
        assert customer_client.get(url).status_code == 200, url


def test_anonymous_goes_to_login(client, theirs):
    for url in PAGES[1:] + detail_urls(theirs):
        resp = client.get(url)
        assert resp.status_code == 302, url
        assert resp.headers["Location"].startswith("/login?next="), url
    for url, data in post_actions(theirs):
        resp = client.post(url, data=data)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url


def test_operator_gets_403(staff_client, theirs):
    for url in PAGES[1:] + detail_urls(theirs):
        assert staff_client.get(url).status_code == 403, url
    for url, data in post_actions(theirs):
        assert staff_client.post(url, data=data).status_code == 403, url


def test_csrf_is_required_for_every_change(customer_client, mine, db):
    before = db.scalar(select(func.count()).select_from(AuditEntry))
    for url, data in post_actions(mine):
        resp = customer_client.post(url, data=data, csrf=False)
        assert resp.status_code == 400, url
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_impersonation_is_read_only(customer_client, customer_login, mine, db):
    op = OperatorFactory()
    db.execute(update(AuthSession).where(AuthSession.customer_login_id == customer_login.id).values(impersonator_id=op.id))
    db.commit()
    assert customer_client.get("/profile").status_code == 200
    for url, data in post_actions(mine):
        assert customer_client.post(url, data=data).status_code == 403, url


def _state(db) -> tuple:
    return (
        db.scalar(select(func.count()).select_from(CustomerRequest)),
        db.scalar(select(func.count()).select_from(RequestComment)),
        db.scalar(select(func.count()).select_from(Contact)),
    )


def test_isolation_matrix(customer_client, mine, theirs, db):
    """Every selfcare URL with the other customer's ids is a 404, and changes nothing."""
    for url in detail_urls(theirs):
        assert customer_client.get(url).status_code == 404, url
        assert customer_client.htmx("GET", url).status_code == 404, url
    before = _state(db)
    foreign_posts = [
        (f"/requests/{theirs.request.id}/comments", {"body": "Hello"}),
        (f"/profile/contacts/{theirs.contact.id}/remove", {}),
        ("/requests", {"kind": "cancellation", "subject": "Bye", "message": "Cancel",
                       "service_id": str(theirs.service.id)}),
        ("/requests", {"kind": "plan_change", "subject": "Up", "message": "Faster",
                       "service_id": str(theirs.service.id), "target_definition_id": str(theirs.target.id)}),
        (f"/services/{theirs.service.id}/plan", {"target_id": str(theirs.target.id), "on": "2099-01-01"}),
        ("/cancel/services", {"service_id": str(theirs.service.id), "end_date": "2099-01-01", "confirm": "yes"}),
    ]
    for url, data in foreign_posts:
        assert customer_client.post(url, data=data).status_code == 404, url
    assert _state(db) == before
    # Nothing of theirs shows on my lists.
    for url, needle in (("/services", f"/services/{theirs.service.id}"),
                        ("/agreements", theirs.agreement.number),
                        ("/invoices", theirs.invoice.number),
                        ("/payments", theirs.paid_invoice.number),
                        ("/requests", f"/requests/{theirs.request.id}"),
                        ("/profile", theirs.contact.value)):
        assert needle not in customer_client.get(url).get_data(as_text=True), url


@pytest.mark.parametrize("url", ["/services/abc", "/invoices/999999", "/requests/0", "/agreements/-1"])
def test_unknown_ids_are_404(customer_client, mine, url):
    assert customer_client.get(url).status_code == 404
