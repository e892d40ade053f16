"""Outbound e-mail. Every message is written as an .eml file to the outbox folder (what the
staff outbox shows and re-sends); with MAIL_SERVER it is then sent by SMTP, without it only
logged, which is how development and tests read them."""
from __future__ import annotations

import logging
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, render_template

from portal.documents import customer_supplier, invoice_supplier
from portal.extensions import db
from portal.models import Customer, EmailState, OutboundEmail
from portal.models.base import utcnow

log = logging.getLogger("portal.mail")


def send_email(to: str, subject: str, template: str, *, customer_id: int | None = None,
               attachments: list[tuple[str, str, bytes]] | None = None, **context) -> OutboundEmail:
    """Render `templates/emails/<template>.txt` and deliver it. Records an OutboundEmail row
    in the caller's transaction; delivery failures are recorded, never raised."""
    context.setdefault("supplier", _supplier(customer_id, context))
    body = render_template(f"emails/{template}.txt", **context)
    msg = EmailMessage()
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="portal.local")
    msg.set_content(body)
    for filename, mime, data in attachments or []:
        maintype, subtype = mime.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)

    row = OutboundEmail(to=to, subject=subject[:300], template=template, customer_id=customer_id)
    db.session.add(row)
    db.session.flush()
    _deliver(msg, row)
    return row


# Messages that carry a one-time link or code: staff see that one was sent, never its text.
SECRET_TEMPLATES = frozenset({"password_reset", "operator_invitation", "agreement_code", "cancellation_link",
                              "login_failures"})


def stored_message(row: OutboundEmail) -> EmailMessage | None:
    """The message as it was sent (its .eml in the outbox), or None when it is gone."""
    if not row.body_path:
        return None
    try:
        data = Path(row.body_path).read_bytes()
    except OSError:
        return None
    return BytesParser(policy=policy.default).parsebytes(data)


def resend_email(original: OutboundEmail) -> OutboundEmail | None:
    """A new send of `original`'s stored message (new Message-ID and Date), recorded as a row
    of its own pointing at the first send. None when the stored message is gone."""
    msg = stored_message(original)
    if msg is None:
        return None
    del msg["Message-ID"]
    del msg["Date"]
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="portal.local")
    row = OutboundEmail(to=original.to, subject=original.subject, template=original.template,
                        customer_id=original.customer_id, resent_from_id=original.resent_from_id or original.id)
    db.session.add(row)
    db.session.flush()
    _deliver(msg, row)
    return row


def _deliver(msg: EmailMessage, row: OutboundEmail) -> None:
    """Keep the message in the outbox (what staff see and re-send), then hand it to the SMTP
    server if one is set; a failure is recorded on the row, never raised."""
    try:
        row.body_path = str(_write_outbox(msg, row.id))
        if current_app.config.get("MAIL_SERVER"):
            _smtp_send(msg)
        else:
            log.info("e-mail to %s: %s (written to %s)", row.to, row.subject, row.body_path)
        row.state = EmailState.SENT
        row.sent_at = utcnow()
        row.error = ""
    except (OSError, smtplib.SMTPException) as exc:
        row.state = EmailState.FAILED
        row.error = str(exc)[:2000]
        log.warning("e-mail to %s failed: %s", row.to, exc)


def _supplier(customer_id: int | None, context: dict) -> dict:
    """The supplier an e-mail signs with: the one its invoice's PDF prints, else the
    customer's (their location's partner), else the SUPPLIER_* settings — the documents'
    own function, so an e-mail and a PDF never name two suppliers."""
    invoice = context.get("invoice")
    if invoice is not None:
        return invoice_supplier(invoice)
    customer = context.get("customer")
    if customer is None and customer_id is not None:
        customer = db.session.get(Customer, customer_id)
    return customer_supplier(customer)


def _write_outbox(msg: EmailMessage, email_id: int) -> Path:
    outbox = Path(current_app.config["MAIL_OUTBOX_DIR"])
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{utcnow():%Y%m%dT%H%M%S}-{email_id:06d}.eml"
    path.write_bytes(bytes(msg))
    return path


def _smtp_send(msg: EmailMessage) -> None:
    cfg = current_app.config
    with smtplib.SMTP(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=20) as smtp:
        if cfg.get("MAIL_USE_TLS"):
            smtp.starttls(context=ssl.create_default_context())
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"] or "")
        smtp.send_message(msg)
