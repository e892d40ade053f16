"""Selfcare reminders: the list, the letter PDF (the very document staff serve), the
dashboard and invoices links; another customer's reminder is a 404."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.models import CaseState, Reminder, StoredDocument
from tests.selfcare.conftest import make_reminder, text


def reminder_of(db, world, *, level=1, state=CaseState.REMINDED) -> Reminder:
    reminder = make_reminder(world.customer, [world.invoice], level=level, state=state)
    db.commit()
    return reminder


def test_list_shows_the_reminder_with_its_invoices(customer_client, mine, theirs, db):
    mine_r = reminder_of(db, mine, level=3)
    theirs_r = reminder_of(db, theirs, level=2)
    html = text(customer_client.get("/reminders"))
    assert "Reminder no. 3" in html and "Reminder no. 1" in html and "Reminder no. 2" not in html
    assert mine.invoice.number in html and theirs.invoice.number not in html
    assert "655.00" in html or "655,00" in html
    assert f"/reminders/{mine_r.id}/pdf" in html and f"/reminders/{theirs_r.id}/pdf" not in html
    assert 'class="table-wrap" role="region"' in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>")[0]


def test_empty_list(customer_client, customer_login):
    assert "You have received no payment reminders." in text(customer_client.get("/reminders"))


def test_pdf_is_the_stored_letter_staff_download(customer_client, mine, db, staff_client_for_reminders):
    reminder = reminder_of(db, mine)
    resp = customer_client.get(f"/reminders/{reminder.id}/pdf")
    assert resp.status_code == 200 and resp.data.startswith(b"%PDF-")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    staff = staff_client_for_reminders.get(f"/staff/dunning/reminders/{reminder.id}/pdf")
    assert staff.status_code == 200 and staff.headers["ETag"] == resp.headers["ETag"]
    assert db.scalar(select(func.count()).select_from(StoredDocument)) == 1
    assert db.get(Reminder, reminder.id).document_id is not None


def test_another_customers_reminder_is_404(customer_client, mine, theirs, db):
    theirs_r = reminder_of(db, theirs)
    assert customer_client.get(f"/reminders/{theirs_r.id}/pdf").status_code == 404
    assert customer_client.get("/reminders/999999/pdf").status_code == 404
    assert db.scalar(select(func.count()).select_from(StoredDocument)) == 0


def test_needs_a_customer_login(client, staff_client_for_reminders, theirs, db):
    theirs_r = reminder_of(db, theirs)
    for url in ("/reminders", f"/reminders/{theirs_r.id}/pdf"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url
        assert staff_client_for_reminders.get(url).status_code == 403, url


def test_dashboard_announces_an_open_case_and_invoices_link(customer_client, mine, db):
    # The world's reminder belongs to a closed case: listed, linked from invoices, not announced.
    assert 'id="reminder-heading"' not in text(customer_client.get("/"))
    reminder = reminder_of(db, mine)
    html = text(customer_client.get("/"))
    assert 'id="reminder-heading"' in html and f"/reminders/{reminder.id}/pdf" in html
    assert 'href="/reminders"' in text(customer_client.get("/invoices")).split("<main", 1)[-1]
    reminder.case.state = CaseState.CLOSED
    db.commit()
    assert 'id="reminder-heading"' not in text(customer_client.get("/"))
    assert f"/reminders/{reminder.id}/pdf" in text(customer_client.get("/reminders"))  # history stays listed


def test_czech_page(customer_client, mine, db, customer_login):
    from portal.models import Language

    reminder_of(db, mine)
    customer_login.language = Language.CS
    db.commit()
    assert customer_client.get("/reminders").status_code == 200


def test_invoices_page_links_reminders_only_when_there_are_some(customer_client, customer_login, db):
    assert 'href="/reminders"' not in text(customer_client.get("/invoices")).split("<main", 1)[-1]
