"""The e-mail outbox as staff handle it: a message that failed (or that the customer says
never arrived) is sent again — a new send of the same stored message, audited."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.mail import resend_email
from portal.models import EmailState, OutboundEmail


class CannotResend(DomainError):
    """The message is still queued, or its stored copy is gone."""


def resend(session: Session, actor: Actor, email: OutboundEmail) -> OutboundEmail:
    """Send `email` again, to the same address, with the same text: only a message that was
    sent or failed (a queued one is still on its way), and only while its copy is stored.
    The new send is a row of its own; the audit entry names both."""
    if email.state == EmailState.QUEUED:
        raise CannotResend(_("This e-mail is still being sent."))
    new = resend_email(email)
    if new is None:
        raise CannotResend(_("The stored copy of this e-mail is gone; it cannot be sent again."))
    record(session, actor, "email.resent", "outbound_email", new.id,
           {"resent_from": email.id, "to": email.to, "subject": email.subject, "state": new.state,
            "error": new.error}, customer_id=email.customer_id)
    return new
