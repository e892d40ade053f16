"""Acceptance of an issued agreement — by an e-mailed one-time code after the customer opened
the PDF, or by staff for a signed paper copy (domain.md §3 "Agreement lifecycle") — and, for
types that require confirmation, the reminder and the blocking of an agreement left unaccepted
(`enforce_acceptance`, run daily by `flask agreements enforce-acceptance`); accepting (or
invalidating) it unblocks what it blocked.

Nothing here commits; the caller owns the transaction. Every change writes its audit entry.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload

from portal.documents import document_for, kind_for
from portal.domain import lifecycle
from portal.domain.actors import Actor
from portal.domain.agreement_errors import (
    AgreementError,
    AgreementStateError,
    CodeExpired,
    CodeInvalid,
    DocumentNotOpened,
    TooManyAttempts,
    TooManyCodes,
)
from portal.domain.audit import record
from portal.domain.recipients import acceptance_email
from portal.links import external_url
from portal.mail import send_email
from portal.models import (
    AcceptanceMethod,
    ActorType,
    Agreement,
    AgreementAcceptance,
    AgreementState,
    AgreementType,
    AuditEntry,
    CustomerService,
    EmailState,
    ServiceState,
)
from portal.models.accounts import OneTimeCode
from portal.models.base import utcnow

CODE_PURPOSE = "agreement_acceptance"
CODE_DIGITS = 6
CODE_VALID_MINUTES = 15
CODE_MAX_ATTEMPTS = 5
# Each code allows 5 guesses; capping codes per hour keeps guessing a 6-digit code hopeless.
CODES_PER_HOUR = 5
OPENED_ACTION = "agreement.document_opened"
REMINDED_ACTION = "agreement.acceptance_reminded"
BLOCKED_ACTION = "agreement.services_blocked"
UNBLOCKED_ACTION = "agreement.services_unblocked"
# The portal's days are local days (BABEL_DEFAULT_TIMEZONE); this one outside an app.
DEFAULT_TIME_ZONE = "Europe/Prague"


def _audit(session: Session, actor: Actor, action: str, agreement: Agreement, changes: dict | None = None) -> None:
    record(session, actor, action, "agreement", agreement.id, changes or {}, customer_id=agreement.customer_id)


# --- acceptance -----------------------------------------------------------------------------

def _current_document(session: Session, agreement: Agreement):
    """The agreement's current stored PDF (re-rendered as a new version if what it prints
    has changed since — then the customer must open that one)."""
    return document_for(session, kind_for(agreement), agreement)


def _require_acceptable(agreement: Agreement, login) -> None:
    if agreement.customer_id != login.customer_id:
        raise AgreementStateError(_("This agreement is not yours."))
    if agreement.state != AgreementState.ISSUED:
        raise AgreementStateError(
            _("Agreement %(number)s is %(state)s; only an issued agreement can be accepted.",
              number=agreement.number or agreement.id, state=agreement.state.value)
        )


def mark_document_opened(session: Session, agreement: Agreement, login, *, ip: str | None = None) -> AuditEntry:
    """Record that `login` opened the agreement's current PDF (the sha256 it was served).
    Acceptance by code requires such a record for the document being accepted."""
    doc = agreement.current_document
    if doc is None:
        raise DocumentNotOpened(_("The agreement has no document yet."))
    actor = Actor(ActorType.CUSTOMER, login.customer_id, login.email, ip)
    return record(session, actor, OPENED_ACTION, "agreement", agreement.id,
                  {"login_id": login.id, "document_id": doc.id, "sha256": doc.sha256},
                  customer_id=agreement.customer_id)


def document_opened(session: Session, agreement: Agreement, login, sha256: str) -> bool:
    """Has `login` opened the agreement's document with this sha256?"""
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action == OPENED_ACTION, AuditEntry.entity_type == "agreement",
                                 AuditEntry.entity_id == agreement.id)
    ).all()
    return any((e.changes or {}).get("login_id") == login.id and (e.changes or {}).get("sha256") == sha256
               for e in entries)


def _code_hash(code_id_salt: str, code: str) -> str:
    return hashlib.sha256(f"{code_id_salt}:{code}".encode()).hexdigest()


def _salt(agreement: Agreement, login) -> str:
    return f"{CODE_PURPOSE}:{agreement.id}:{login.id}"


def _pending_codes(session: Session, agreement: Agreement, login) -> list[OneTimeCode]:
    return list(session.scalars(
        select(OneTimeCode).where(
            OneTimeCode.purpose == CODE_PURPOSE, OneTimeCode.subject_type == "agreement",
            OneTimeCode.subject_id == agreement.id, OneTimeCode.customer_login_id == login.id,
            OneTimeCode.used_at.is_(None),
        ).order_by(OneTimeCode.id.desc())
    ))


def request_acceptance_code(session: Session, agreement: Agreement, login, *, ip: str | None = None) -> None:
    """E-mail a 6-digit one-time code to `login` for accepting `agreement`: only an issued
    agreement of the login's own customer, whose current PDF the login has opened. The code
    is stored hashed, expires in 15 minutes, allows 5 attempts; a new code replaces any
    pending one; at most 5 codes an hour."""
    _require_acceptable(agreement, login)
    doc = _current_document(session, agreement)
    if not document_opened(session, agreement, login, doc.sha256):
        raise DocumentNotOpened(_("Open the agreement's PDF first: you accept the document you have read."))
    now = utcnow()
    recent = session.scalar(
        select(func.count()).select_from(OneTimeCode).where(
            OneTimeCode.purpose == CODE_PURPOSE, OneTimeCode.subject_type == "agreement",
            OneTimeCode.subject_id == agreement.id, OneTimeCode.customer_login_id == login.id,
            OneTimeCode.created_at > now - timedelta(hours=1),
        )
    )
    if recent >= CODES_PER_HOUR:
        raise TooManyCodes(_("You have asked for too many codes; please try again in an hour."))
    for old in _pending_codes(session, agreement, login):
        old.expires_at = min(old.expires_at, now)  # superseded: only the newest code works
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    session.add(OneTimeCode(
        purpose=CODE_PURPOSE, subject_type="agreement", subject_id=agreement.id,
        code_hash=_code_hash(_salt(agreement, login), code), customer_login_id=login.id, email=login.email,
        expires_at=now + timedelta(minutes=CODE_VALID_MINUTES), attempts=0,
    ))
    session.flush()
    send_email(login.email, f"Code to accept agreement {agreement.number}", "agreement_code",
               customer_id=agreement.customer_id, code=code, agreement=agreement, minutes=CODE_VALID_MINUTES)
    actor = Actor(ActorType.CUSTOMER, login.customer_id, login.email, ip)
    _audit(session, actor, "agreement.code_sent", agreement, {"login_id": login.id, "email": login.email})


def accept_with_code(session: Session, agreement: Agreement, login, code: str, *, ip: str | None,
                     user_agent: str | None) -> AgreementAcceptance:
    """issued → accepted by the customer with the e-mailed code. The code must be the newest
    pending one, unexpired, unused, within 5 attempts; a wrong code counts an attempt. The
    evidence records the login, time, ip, user agent and the sha256 of the document opened.

    On a refused code the attempt count has been changed: the caller commits (not rolls
    back) so the count sticks."""
    _require_acceptable(agreement, login)
    doc = _current_document(session, agreement)
    if not document_opened(session, agreement, login, doc.sha256):
        raise DocumentNotOpened(_("Open the agreement's PDF first: you accept the document you have read."))
    pending = _pending_codes(session, agreement, login)
    if not pending:
        raise CodeInvalid(_("No code is waiting: send yourself a new code."), field="code")
    otc = pending[0]
    now = utcnow()
    if otc.expires_at <= now:
        raise CodeExpired(_("The code has expired: send yourself a new one."), field="code")
    if otc.attempts >= CODE_MAX_ATTEMPTS:
        raise TooManyAttempts(_("Too many wrong attempts: send yourself a new code."), field="code")
    given = "".join((code or "").split())
    if not hmac.compare_digest(otc.code_hash, _code_hash(_salt(agreement, login), given)):
        otc.attempts += 1
        session.flush()
        left = CODE_MAX_ATTEMPTS - otc.attempts
        if left <= 0:
            raise TooManyAttempts(_("Too many wrong attempts: send yourself a new code."), field="code")
        raise CodeInvalid(_("The code is not right (%(left)d attempts left).", left=left), field="code")
    otc.used_at = now
    acceptance = AgreementAcceptance(
        agreement=agreement, customer_login_id=login.id, at=now, ip=(ip or None) and ip[:45],
        user_agent=(user_agent or None) and user_agent[:300], method=AcceptanceMethod.EMAIL_CODE,
        document_sha256=doc.sha256,
    )
    session.add(acceptance)
    agreement.state = AgreementState.ACCEPTED
    agreement.accepted_at = now
    session.flush()
    actor = Actor(ActorType.CUSTOMER, login.customer_id, login.email, ip)
    _audit(session, actor, "agreement.accepted", agreement, {
        "state": ["issued", "accepted"], "method": "email_code", "login_id": login.id,
        "document_sha256": doc.sha256, "user_agent": acceptance.user_agent,
    })
    unblock_after_acceptance(session, agreement, actor=actor, on=local_date(now))
    return acceptance


def accept_by_staff(session: Session, agreement: Agreement, *, operator_actor: Actor, note: str = "") -> AgreementAcceptance:
    """issued → accepted on a signed paper copy, recorded by an operator (method staff). The
    evidence carries the sha256 of the current document — the one printed for signing."""
    if operator_actor.type != ActorType.OPERATOR:
        raise AgreementError(_("Only an operator records a signed paper copy."))
    if agreement.state != AgreementState.ISSUED:
        raise AgreementStateError(
            _("Agreement %(number)s is %(state)s; only an issued agreement can be accepted.",
              number=agreement.number or agreement.id, state=agreement.state.value)
        )
    doc = _current_document(session, agreement)
    now = utcnow()
    acceptance = AgreementAcceptance(
        agreement=agreement, operator_id=operator_actor.id, at=now, ip=operator_actor.ip,
        method=AcceptanceMethod.STAFF, document_sha256=doc.sha256,
    )
    session.add(acceptance)
    agreement.state = AgreementState.ACCEPTED
    agreement.accepted_at = now
    session.flush()
    _audit(session, operator_actor, "agreement.accepted", agreement, {
        "state": ["issued", "accepted"], "method": "staff", "note": (note or "").strip(),
        "document_sha256": doc.sha256,
    })
    unblock_after_acceptance(session, agreement, actor=operator_actor, on=local_date(now))
    return acceptance


# --- acceptance enforcement -----------------------------------------------------------------
#
# domain.md §3: "If the type requires confirmation: a reminder after remind_days and blocking
# after block_days without acceptance." Days count from the local day the agreement was
# issued; an annex is an agreement of its own type like any other.

def _time_zone() -> ZoneInfo:
    name = current_app.config.get("BABEL_DEFAULT_TIMEZONE") if has_app_context() else None
    return ZoneInfo(name or DEFAULT_TIME_ZONE)


def local_date(moment: datetime) -> date:
    """The portal's local day (BABEL_DEFAULT_TIMEZONE) of a timezone-aware moment."""
    return moment.astimezone(_time_zone()).date()


def issue_date(agreement: Agreement) -> date | None:
    """The local day the agreement was issued (issued_at is stored in UTC: an agreement
    issued at 23:30 UTC in winter was issued the next day in Prague). None before issue."""
    return local_date(agreement.issued_at) if agreement.issued_at is not None else None


def _enforced(agreement: Agreement) -> bool:
    return (agreement.state == AgreementState.ISSUED and agreement.type.requires_confirmation
            and agreement.issued_at is not None)


def reminder_date(agreement: Agreement) -> date | None:
    """The day an issued, unaccepted agreement of a type that requires confirmation is
    reminded: issue day + the type's remind_days. None when the rule does not apply (the type
    does not require confirmation, has no remind_days, or the agreement is not issued)."""
    if not _enforced(agreement) or agreement.type.remind_days is None:
        return None
    return issue_date(agreement) + timedelta(days=agreement.type.remind_days)


def blocking_date(agreement: Agreement) -> date | None:
    """The day the services of an issued, unaccepted agreement of a type that requires
    confirmation are blocked: issue day + the type's block_days. None when the rule does not
    apply (as for `reminder_date`, with block_days)."""
    if not _enforced(agreement) or agreement.type.block_days is None:
        return None
    return issue_date(agreement) + timedelta(days=agreement.type.block_days)


def acceptance_deadline(agreement: Agreement) -> date | None:
    """The last day the customer can accept the agreement before its services are blocked:
    the day before `blocking_date`. None when nothing will be blocked."""
    block_on = blocking_date(agreement)
    return block_on - timedelta(days=1) if block_on is not None else None


def awaiting_acceptance(session: Session, customer_id: int) -> list[Agreement]:
    """The customer's issued agreements (and annexes) still waiting for acceptance, oldest
    first, with their types loaded (one query)."""
    return list(session.scalars(
        select(Agreement).options(joinedload(Agreement.type))
        .where(Agreement.customer_id == customer_id, Agreement.state == AgreementState.ISSUED)
        .order_by(Agreement.issued_at, Agreement.id)
    ))


def _accept_link(agreement: Agreement) -> str:
    """The absolute address of the acceptance page in selfcare (the reminder is sent outside a
    web request)."""
    return external_url("selfcare.agreement_accept", agreement_id=agreement.id)


@dataclass
class AcceptanceEnforcement:
    """What one `enforce_acceptance` run did."""

    on: date
    agreements_considered: int = 0
    reminders: int = 0
    emails_sent: int = 0
    agreements_blocked: int = 0
    services_blocked: int = 0

    def as_dict(self) -> dict:
        return {"on": self.on.isoformat(), "agreements_considered": self.agreements_considered,
                "reminders": self.reminders, "emails_sent": self.emails_sent,
                "agreements_blocked": self.agreements_blocked, "services_blocked": self.services_blocked}

    def summary(self) -> str:
        return "\n".join([
            f"Agreement acceptance on {self.on.isoformat()}",
            f"  unaccepted agreements considered: {self.agreements_considered}",
            f"  reminders: {self.reminders} (e-mails sent: {self.emails_sent})",
            f"  agreements blocked: {self.agreements_blocked}, services blocked: {self.services_blocked}",
        ])


def _done_actions(session: Session, agreement_ids: list[int]) -> dict[str, set[int]]:
    """{audit action: agreement ids} of the reminders and blocks already recorded."""
    done: dict[str, set[int]] = {REMINDED_ACTION: set(), BLOCKED_ACTION: set()}
    for start in range(0, len(agreement_ids), 500):
        chunk = agreement_ids[start:start + 500]
        for action, entity_id in session.execute(
            select(AuditEntry.action, AuditEntry.entity_id).where(
                AuditEntry.entity_type == "agreement", AuditEntry.entity_id.in_(chunk),
                AuditEntry.action.in_([REMINDED_ACTION, BLOCKED_ACTION]))
        ):
            done[action].add(entity_id)
    return done


def enforce_acceptance(session: Session, *, today: date, actor: Actor) -> AcceptanceEnforcement:
    """The daily run of the acceptance rule (domain.md §3 "Agreement lifecycle") over every
    agreement (or annex) in state issued whose type requires confirmation, counting days from
    the local day it was issued:

    * on or after issue day + remind_days: the customer is e-mailed once — the agreement's
      number, the link to accept it and, when the type blocks, the day services are blocked.
      The audit entry `agreement.acceptance_reminded` records it and is what keeps a later
      run from reminding again (also when no address was known or the mail failed).
    * on or after issue day + block_days: the agreement's services that are active are
      blocked (lifecycle.block; the event carries {"agreement_id": …}, so acceptance unblocks
      exactly these), audited as `agreement.services_blocked`, which keeps a later run from
      blocking again. With no active service nothing is recorded, and the next run looks
      again. Dunning exceptions do not apply: they are about debt, this is not.

    A type without requires_confirmation, or without remind_days / block_days, has no
    reminder / no blocking. Accepted, invalid and draft agreements are never touched. The
    caller commits."""
    result = AcceptanceEnforcement(on=today)
    agreements = session.scalars(
        select(Agreement)
        .join(AgreementType, AgreementType.id == Agreement.type_id)
        .options(contains_eager(Agreement.type), joinedload(Agreement.customer),
                 selectinload(Agreement.customer_services))
        .where(Agreement.state == AgreementState.ISSUED, Agreement.issued_at.is_not(None),
               AgreementType.requires_confirmation.is_(True),
               or_(AgreementType.remind_days.is_not(None), AgreementType.block_days.is_not(None)))
        .order_by(Agreement.id)
    ).unique().all()
    result.agreements_considered = len(agreements)
    done = _done_actions(session, [a.id for a in agreements])
    for agreement in agreements:
        remind_on, block_on = reminder_date(agreement), blocking_date(agreement)
        if remind_on is not None and remind_on <= today and agreement.id not in done[REMINDED_ACTION]:
            _remind(session, agreement, today=today, actor=actor, result=result)
        if block_on is not None and block_on <= today and agreement.id not in done[BLOCKED_ACTION]:
            _block_unaccepted(session, agreement, today=today, actor=actor, result=result)
    session.flush()
    return result


def _remind(session: Session, agreement: Agreement, *, today: date, actor: Actor,
            result: AcceptanceEnforcement) -> None:
    customer = agreement.customer
    to = acceptance_email(session, customer)
    block_on = blocking_date(agreement)
    email_id = None
    if to:
        lang = customer.language.value if customer.language else None
        with force_locale(lang):
            row = send_email(to, _("Please accept agreement %(number)s", number=agreement.number),
                             "agreement_acceptance_reminder", customer_id=customer.id, customer=customer,
                             agreement=agreement, link=_accept_link(agreement), block_on=block_on,
                             deadline=acceptance_deadline(agreement), today=today)
        email_id = row.id
        if row.state == EmailState.SENT:
            result.emails_sent += 1
        else:
            to = None
    result.reminders += 1
    _audit(session, actor, REMINDED_ACTION, agreement, {
        "reminded_on": today, "issued_on": issue_date(agreement), "remind_days": agreement.type.remind_days,
        "block_on": block_on, "emailed_to": to, "email_id": email_id,
    })


def _block_unaccepted(session: Session, agreement: Agreement, *, today: date, actor: Actor,
                      result: AcceptanceEnforcement) -> None:
    services = [s for s in agreement.customer_services
                if s.state == ServiceState.ACTIVE and s.customer_id == agreement.customer_id]
    if not services:
        return
    reason = (f"Agreement {agreement.number} not accepted within {agreement.type.block_days} days "
              f"of its issue ({issue_date(agreement).isoformat()})")
    for service in sorted(services, key=lambda s: s.id):
        lifecycle.block(session, service, actor=actor, on=today, today=today, reason=reason,
                        details={"agreement_id": agreement.id})
    result.agreements_blocked += 1
    result.services_blocked += len(services)
    _audit(session, actor, BLOCKED_ACTION, agreement, {
        "blocked_on": today, "issued_on": issue_date(agreement), "block_days": agreement.type.block_days,
        "services": sorted(s.id for s in services), "reason": reason,
    })


def services_blocked_for(session: Session, agreement: Agreement) -> list[CustomerService]:
    """The customer's services blocked now because `agreement` was not accepted: their
    blocking event (lifecycle.blocking_event) carries the agreement's id. A service blocked
    since for another cause (dunning, staff) is not among them."""
    services = session.scalars(
        select(CustomerService).options(selectinload(CustomerService.events))
        .where(CustomerService.customer_id == agreement.customer_id, CustomerService.state == ServiceState.BLOCKED)
        .order_by(CustomerService.id)
    ).all()
    out = []
    for service in services:
        event = lifecycle.blocking_event(service)
        if event is not None and (event.details or {}).get("agreement_id") == agreement.id:
            out.append(service)
    return out


def unblock_after_acceptance(session: Session, agreement: Agreement, *, actor: Actor,
                             on: date) -> list[CustomerService]:
    """Once the agreement no longer awaits acceptance — accepted, or invalidated (then it
    is no longer asked for) — unblock the services the acceptance rule blocked for it and
    that are still blocked for that reason (`services_blocked_for`), audited as
    `agreement.services_unblocked`. Returns them (none: nothing written)."""
    services = services_blocked_for(session, agreement)
    if not services:
        return []
    outcome = "invalidated" if agreement.state == AgreementState.INVALID else "accepted"
    reason = f"Agreement {agreement.number} {outcome}"
    for service in services:
        lifecycle.unblock(session, service, actor=actor, on=on, today=on, reason=reason)
    _audit(session, actor, UNBLOCKED_ACTION, agreement, {
        "unblocked_on": on, "services": [s.id for s in services],
    })
    return services
