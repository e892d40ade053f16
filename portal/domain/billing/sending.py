"""Sending an invoice or credit note by e-mail with its PDF (`send_invoice`)."""
from __future__ import annotations

from datetime import date

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from portal.documents import document_for, kind_for, read_document
from portal.domain import audit
from portal.domain.actors import Actor
from portal.domain.billing.errors import InvoiceNotSent
from portal.domain.recipients import billing_email
from portal.links import pay_url
from portal.mail import send_email
from portal.models import (
    Invoice,
    InvoiceState,
    InvoiceType,
)


def send_invoice(session: Session, invoice: Invoice, *, actor: Actor, to: str | None = None):
    """E-mail an invoice (or credit note) with its stored PDF attached, in the customer's
    language, to `to` or else the customer's billing address (the one dunning writes to).
    Refused for a cancelled invoice and without an address. The e-mail goes through the
    outbox (an OutboundEmail row); audited. Returns the OutboundEmail."""
    if invoice.state == InvoiceState.CANCELLED:
        raise InvoiceNotSent(_("Invoice %(number)s is cancelled; it is not sent again.", number=invoice.number))
    customer = invoice.customer
    to = (to or "").strip() or billing_email(session, customer)
    if not to:
        raise InvoiceNotSent(_("The customer has no e-mail address to send the invoice to."), field="to")
    if "@" not in to or len(to) > 254 or any(ch.isspace() for ch in to):
        raise InvoiceNotSent(_("%(to)s is not an e-mail address.", to=repr(to)), field="to")
    doc = document_for(session, kind_for(invoice), invoice)
    data = read_document(doc)
    lang = customer.language.value if customer.language else None
    with force_locale(lang):
        subject = (_("Credit note %(number)s", number=invoice.number) if invoice.type == InvoiceType.CREDIT_NOTE
                   else _("Invoice %(number)s", number=invoice.number))
        row = send_email(to, subject, "invoice", customer_id=customer.id,
                         attachments=[(doc.file_name, "application/pdf", data)], invoice=invoice, customer=customer,
                         pay_link=pay_url(invoice, renew_on=date.today()))
    audit.record(session, actor, "invoice.sent", "invoice", invoice.id,
                 {"invoice": invoice.number, "to": to, "email_id": row.id, "state": row.state,
                  "document_sha256": doc.sha256}, customer_id=customer.id)
    return row
