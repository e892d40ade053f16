"""The reminder letter is dated on its own issue date, and lists the due dates of what it
reminds — read from the PDF's text (pypdf), for a reminder a dunning run issued."""
from __future__ import annotations

import io
from datetime import date

import pypdf
from sqlalchemy import select

from portal.documents import document_for, kind_for, read_document
from portal.domain.dunning import run_dunning
from portal.models import Reminder
from tests.domain.lifecycle_fixtures import (
    SYSTEM,
    customer_with_email,
    default_ladder,
    invoice,
    service,
)


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def _letters(db, customer):
    out = []
    for r in db.scalars(select(Reminder).where(Reminder.customer_id == customer.id).order_by(Reminder.id)):
        out.append((r, _pdf_text(read_document(document_for(db, kind_for(r), r)))))
    return out


def test_each_letter_is_dated_on_its_own_issue_day(db):
    default_ladder()
    customer, _ = customer_with_email()
    service(customer)
    invoice(customer, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 15))
    invoice(customer, issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15))
    run_dunning(db, on=date(2026, 11, 22), actor=SYSTEM)  # level 1 for November's invoice
    first_letter = _letters(db, customer)[0][1]
    run_dunning(db, on=date(2027, 1, 20), actor=SYSTEM)  # level 2, both invoices
    (first, text1), (second, text2) = _letters(db, customer)
    assert text1 == first_letter  # a stored letter stays as it was sent
    assert first.issued_on == date(2026, 11, 22) and second.issued_on == date(2027, 1, 20)
    header1 = next(line for line in text1.splitlines() if "Customer no." in line)
    header2 = next(line for line in text2.splitlines() if "Customer no." in line)
    assert "22. 11. 2026" in header1
    assert "20. 1. 2027" in header2 and "15. 11. 2026" not in header2 and "22. 11. 2026" not in header2
    assert text2.rstrip().splitlines()[-1].startswith("Payment reminder 2 · ") and "20. 1. 2027" in text2.splitlines()[-1]
    # The table lists what it reminds with their due dates; the deadline is counted from the issue day.
    assert "15. 11. 2026" in text2 and "15. 12. 2026" in text2
    assert "by 27. 1. 2027" in text2


def test_a_letter_stored_for_a_deleted_reminder_is_never_served_for_a_new_one_with_its_id(db):
    """A letter is stored once per reminder, found by the reminder's id. When a reminder is
    deleted and the database gives its id again (SQLite reuses the highest id), the new
    reminder gets its own letter, not the old one with the old date."""
    default_ladder()
    customer, _ = customer_with_email()
    service(customer)
    invoice(customer, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 15))
    run_dunning(db, on=date(2026, 11, 22), actor=SYSTEM)
    (old, old_text), = _letters(db, customer)
    assert "22. 11. 2026" in old_text
    fields = {"id": old.id, "case_id": old.case_id, "customer_id": customer.id, "level": old.level,
              "amount_due": old.amount_due, "fee": old.fee, "invoices": list(old.invoices)}
    db.delete(old)
    db.flush()
    reused = Reminder(**fields, issued_on=date(2027, 1, 20), pay_by=date(2027, 1, 27))
    db.add(reused)
    db.flush()
    text = _pdf_text(read_document(document_for(db, kind_for(reused), reused)))
    header = next(line for line in text.splitlines() if "Customer no." in line)
    assert "20. 1. 2027" in header and "22. 11. 2026" not in header
