"""The immutability guard: an issued invoice's number, lines, VAT rows and totals never change
(`protect_issued_invoices` installs it on every ORM session)."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from portal.domain.billing.errors import InvoiceImmutable
from portal.models import (
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceVat,
)

# ---------------------------------------------------------------- immutability guard

# What may change on an issued invoice: the cached payment state, the stored PDF, and the
# state (only to cancelled). Everything else is the tax document itself.
MUTABLE_INVOICE_FIELDS = frozenset({"paid_amount", "paid_at", "credited_amount", "document_id", "state", "updated_at"})


def _changed(state, key: str) -> tuple[bool, object]:
    hist = state.attrs[key].history
    if not hist.has_changes():
        return False, None
    new = hist.added[0] if hist.added else None
    if hist.deleted and hist.added and hist.deleted[0] == new:
        return False, new
    return True, new


def _guard_invoices(session: Session, flush_context, instances) -> None:
    """Refuse, before anything reaches the database, to modify or delete an issued
    invoice's number, lines, VAT rows or totals (ORM flushes)."""
    for obj in session.dirty:
        if isinstance(obj, Invoice):
            st = inspect(obj)
            if not st.persistent:
                continue
            for attr in st.mapper.column_attrs:
                changed, new = _changed(st, attr.key)
                if not changed:
                    continue
                if attr.key == "state":
                    if new == InvoiceState.CANCELLED:
                        continue
                elif attr.key in MUTABLE_INVOICE_FIELDS:
                    continue
                raise InvoiceImmutable(
                    _("Invoice %(number)s is issued: its %(field)s cannot change; issue a credit note.",
                      number=obj.number, field=attr.key))
        elif isinstance(obj, (InvoiceLine, InvoiceVat)):
            st = inspect(obj)
            if st.persistent and any(_changed(st, a.key)[0] for a in st.mapper.column_attrs
                                     if a.key != "updated_at"):
                raise InvoiceImmutable(_("The lines and VAT rows of an issued invoice cannot change; "
                                         "issue a credit note."))
    for obj in session.deleted:
        if isinstance(obj, (Invoice, InvoiceLine, InvoiceVat)):
            raise InvoiceImmutable(_("Issued invoices, their lines and VAT rows are never deleted; "
                                     "issue a credit note."))
    for obj in session.new:
        if isinstance(obj, (InvoiceLine, InvoiceVat)):
            inv = obj.invoice
            if inv is None and obj.invoice_id is not None:
                inv = session.get(Invoice, obj.invoice_id)
            if inv is not None and inv not in session.new:
                raise InvoiceImmutable(_("Invoice %(number)s is issued: no line or VAT row can be added to it.",
                                         number=inv.number))


def protect_issued_invoices() -> bool:
    """Install the guard (`_guard_invoices`) on every ORM session, process-wide; idempotent.
    create_app calls it (wiring, not import side effects: importing this module changes
    nothing). Returns True when it was installed by this call."""
    if event.contains(Session, "before_flush", _guard_invoices):
        return False
    event.listen(Session, "before_flush", _guard_invoices)
    return True


def unprotect_issued_invoices() -> None:
    """Remove the guard (for tests that installed it themselves)."""
    if event.contains(Session, "before_flush", _guard_invoices):
        event.remove(Session, "before_flush", _guard_invoices)
