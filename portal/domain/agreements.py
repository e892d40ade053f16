"""Agreements and annexes: drafting, issuing (number + stored PDF), invalidation, the annex a
plan change creates, and the agreement types. Acceptance — by an e-mailed one-time code or by
staff — and its enforcement live in `acceptance`, the refusals in `agreement_errors`; both are
importable from here too, as the faces and the jobs use them.

Nothing here commits; the caller owns the transaction. Every change writes its audit entry.
"""
from __future__ import annotations

import string
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.documents import document_for, kind_for
from portal.domain import DomainError  # re-exported: callers catch rules.DomainError
from portal.domain.acceptance import (  # re-exported: moved to acceptance
    BLOCKED_ACTION,
    CODE_DIGITS,
    CODE_MAX_ATTEMPTS,
    CODE_PURPOSE,
    CODE_VALID_MINUTES,
    CODES_PER_HOUR,
    DEFAULT_TIME_ZONE,
    OPENED_ACTION,
    REMINDED_ACTION,
    UNBLOCKED_ACTION,
    AcceptanceEnforcement,
    accept_by_staff,
    accept_with_code,
    acceptance_deadline,
    awaiting_acceptance,
    blocking_date,
    document_opened,
    enforce_acceptance,
    issue_date,
    local_date,
    mark_document_opened,
    reminder_date,
    request_acceptance_code,
    services_blocked_for,
    unblock_after_acceptance,
)
from portal.domain.actors import Actor
from portal.domain.agreement_errors import (  # re-exported: moved to agreement_errors
    AgreementError,
    AgreementStateError,
    AnnexNeedsParent,
    CodeExpired,
    CodeInvalid,
    DocumentNotOpened,
    NoteRequired,
    ServiceNotOwned,
    TooManyAttempts,
    TooManyCodes,
)
from portal.domain.audit import diff, record, snapshot
from portal.domain.numbering import format_number, next_number
from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    CustomerService,
)
from portal.models.agreements import Numbering, agreement_services
from portal.models.base import utcnow

__all__ = [
    "accept_by_staff", "accept_with_code", "acceptance_deadline", "AcceptanceEnforcement",
    "AgreementError", "AgreementStateError", "AnnexNeedsParent", "awaiting_acceptance",
    "BLOCKED_ACTION", "blocking_date", "CODE_DIGITS", "CODE_MAX_ATTEMPTS", "CODE_PURPOSE",
    "CODE_VALID_MINUTES", "CodeExpired", "CodeInvalid", "CODES_PER_HOUR", "covering_agreement",
    "create_agreement", "create_annex_for_plan_change", "DEFAULT_TIME_ZONE", "document_opened",
    "DocumentNotOpened", "DomainError", "enforce_acceptance", "invalidate_agreement",
    "issue_agreement", "issue_date", "local_date", "mark_document_opened", "NoteRequired",
    "numbering_scope", "OPENED_ACTION", "REMINDED_ACTION", "reminder_date",
    "request_acceptance_code", "ServiceNotOwned", "services_blocked_for", "TooManyAttempts",
    "TooManyCodes", "TYPE_FIELDS", "unblock_after_acceptance", "UNBLOCKED_ACTION",
    "update_agreement_type",
]



# --- numbering and drafting -----------------------------------------------------------------

def numbering_scope(agreement_type: AgreementType, customer=None) -> str:
    """The number_sequence scope of an agreement type: one counter for all agreements
    (global), per type, or per type and customer. `customer` is needed only for per_customer
    (portal/demo/ calls this with the type alone, for per-type numbering)."""
    if agreement_type.numbering == Numbering.GLOBAL:
        return "agreement"
    if agreement_type.numbering == Numbering.PER_CUSTOMER:
        if customer is None:
            raise AgreementError(_("Agreement type %(name)s is numbered per customer; a customer is needed.",
                                   name=agreement_type.name))
        return f"agreement:{agreement_type.id}:customer:{customer.id}"
    return f"agreement:{agreement_type.id}"


def _audit(session: Session, actor: Actor, action: str, agreement: Agreement, changes: dict | None = None) -> None:
    record(session, actor, action, "agreement", agreement.id, changes or {}, customer_id=agreement.customer_id)


def create_agreement(session: Session, agreement_type: AgreementType, customer, services, *, actor: Actor,
                     valid_from: date | None = None, parent: Agreement | None = None, summary: str = "") -> Agreement:
    """A draft agreement of `customer` covering `services`. Every service must be the
    customer's own; an annex type needs the parent agreement (of the same customer)."""
    services = list(services)
    foreign = [s for s in services if s.customer_id != customer.id]
    if foreign:
        raise ServiceNotOwned(
            _("Service %(ids)s does not belong to customer %(customer)s.",
              ids=", ".join(str(s.id) for s in foreign), customer=customer.customer_number),
            field="services",
        )
    if agreement_type.is_annex and parent is None:
        raise AnnexNeedsParent(_("%(name)s is an annex: choose the agreement it amends.", name=agreement_type.name),
                               field="parent")
    if parent is not None and parent.customer_id != customer.id:
        raise AnnexNeedsParent(_("The parent agreement belongs to another customer."), field="parent")
    if parent is not None and parent.state == AgreementState.INVALID:
        raise AnnexNeedsParent(_("Agreement %(number)s is invalid; an annex cannot amend it.", number=parent.number),
                               field="parent")
    agreement = Agreement(
        type=agreement_type, customer=customer, customer_services=services, valid_from=valid_from,
        parent=parent, summary=summary or "", state=AgreementState.DRAFT,
    )
    session.add(agreement)
    session.flush()
    _audit(session, actor, "agreement.created", agreement, {
        "type_id": agreement_type.id, "service_ids": [s.id for s in services],
        "parent_id": parent.id if parent else None, "valid_from": valid_from,
    })
    return agreement


def issue_agreement(session: Session, agreement: Agreement, *, actor: Actor, on: date | None = None) -> Agreement:
    """draft → issued: the next gapless number of the type's scope for the year of `on`
    (default today), formatted by the type's number_format ({year}, {seq}, {customer_number},
    {type_code}); conclusion date `on`; the PDF rendered and stored as the current document.
    Only drafts are issued."""
    if agreement.state != AgreementState.DRAFT:
        raise AgreementStateError(
            _("Only a draft can be issued; agreement %(number)s is %(state)s.",
              number=agreement.number or agreement.id, state=agreement.state.value)
        )
    on = on or date.today()
    atype = agreement.type
    customer = agreement.customer
    # Format check first, so a bad format costs no number (the counter is taken last).
    parts = {"year": on.year, "customer_number": customer.customer_number, "type_code": atype.code}
    format_number(atype.number_format, seq=0, **parts)
    seq = next_number(session, numbering_scope(atype, customer), on.year)
    agreement.sequence = seq
    agreement.number = format_number(atype.number_format, seq=seq, **parts)
    agreement.conclusion_date = on
    if agreement.valid_from is None:
        agreement.valid_from = on
    agreement.issued_at = utcnow()
    agreement.state = AgreementState.ISSUED
    session.flush()
    doc = document_for(session, kind_for(agreement), agreement)
    agreement.current_document_id = doc.id
    _audit(session, actor, "agreement.issued", agreement, {
        "state": ["draft", "issued"], "number": agreement.number, "sequence": seq,
        "conclusion_date": on, "document_id": doc.id, "document_sha256": doc.sha256,
    })
    return agreement


def invalidate_agreement(session: Session, agreement: Agreement, *, actor: Actor, note: str) -> Agreement:
    """any → invalid, with a note saying why (required). The number stays taken."""
    note = (note or "").strip()
    if not note:
        raise NoteRequired(_("Say why the agreement is invalid."), field="note")
    if agreement.state == AgreementState.INVALID:
        raise AgreementStateError(_("Agreement %(number)s is already invalid.", number=agreement.number or agreement.id))
    before = agreement.state
    agreement.state = AgreementState.INVALID
    agreement.invalid_note = note
    session.flush()
    _audit(session, actor, "agreement.invalidated", agreement, {"state": [before, "invalid"], "note": note})
    if before == AgreementState.ISSUED:
        unblock_after_acceptance(session, agreement, actor=actor, on=local_date(utcnow()))
    return agreement


# --- plan change annex ----------------------------------------------------------------------

def _price(service: CustomerService) -> Decimal:
    d = service.definition
    return service.price_override if service.price_override is not None else d.price


def _money(value: Decimal) -> str:
    return f"{Decimal(value):.2f}"


def covering_agreement(session: Session, service: CustomerService) -> Agreement | None:
    """The main agreement (not an annex) covering `service`: the newest valid agreement that
    lists it, or the parent of the newest valid annex that does."""
    found = session.scalars(
        select(Agreement)
        .join(agreement_services, agreement_services.c.agreement_id == Agreement.id)
        .where(agreement_services.c.customer_service_id == service.id,
               Agreement.customer_id == service.customer_id,
               Agreement.state.in_([AgreementState.ISSUED, AgreementState.ACCEPTED]))
        .order_by(Agreement.parent_id.is_not(None), Agreement.id.desc())
    ).first()
    if found is None:
        return None
    return found.parent if found.parent is not None else found


def create_annex_for_plan_change(session: Session, old_service: CustomerService, new_service: CustomerService, *,
                                 actor: Actor, on: date, today: date | None = None) -> Agreement | None:
    """The annex a plan change creates (domain.md §3 "Plan change"): issued at once, amending
    the agreement that covers `old_service`, covering `new_service`, its summary naming the
    old → new tariff, both prices and the effective date `on`.

    Returns None — and changes nothing — when there is no annex type (AgreementType with
    is_annex) or no issued/accepted agreement covers the old service: the plan change itself
    must not fail for want of paperwork."""
    annex_type = session.scalars(
        select(AgreementType).where(AgreementType.is_annex.is_(True)).order_by(AgreementType.id)
    ).first()
    if annex_type is None:
        return None
    parent = covering_agreement(session, old_service)
    if parent is None:
        return None
    old_def, new_def = old_service.definition, new_service.definition
    old_name = old_def.customer_name or old_def.name
    new_name = new_def.customer_name or new_def.name
    currency = old_service.customer.location.currency.value if old_service.customer.location else "CZK"
    summary = (
        f"Change of {old_name} ({_money(_price(old_service))} {currency}) to {new_name} "
        f"({_money(_price(new_service))} {currency}) from {on:%d.%m.%Y}."
    )
    annex = create_agreement(session, annex_type, new_service.customer, [new_service], actor=actor,
                             valid_from=on, parent=parent, summary=summary)
    return issue_agreement(session, annex, actor=actor, on=today)


# --- agreement types ------------------------------------------------------------------------

TYPE_FIELDS = ("name", "template", "number_format", "remind_days", "block_days", "requires_confirmation")


def update_agreement_type(session: Session, agreement_type: AgreementType, *, actor: Actor, name: str, template: str,
                          number_format: str, remind_days: int | None, block_days: int | None,
                          requires_confirmation: bool, templates) -> AgreementType:
    """Edit a type's name, document template (one of `templates`, the files under
    templates/documents/agreements/), number format (must number: it needs {seq}), and the
    days after which an unaccepted agreement is reminded and the service blocked (none =
    never; block after the reminder). Audited with before → after. Issued numbers stay."""
    name = (name or "").strip()
    if not name:
        raise AgreementError(_("Give the type a name."), field="name")
    clash = session.scalar(select(AgreementType.id).where(func.lower(AgreementType.name) == name.lower(),
                                                          AgreementType.id != agreement_type.id))
    if clash is not None:
        raise AgreementError(_("Another agreement type is called “%(name)s”.", name=name), field="name")
    if template not in set(templates):
        raise AgreementError(_("There is no agreement template “%(template)s”.", template=template), field="template")
    number_format = (number_format or "").strip()
    format_number(number_format, seq=1, year=date.today().year, customer_number="C1", type_code=agreement_type.code)
    names = {n.split(":")[0] for _, n, _, _ in string.Formatter().parse(number_format) if n is not None}
    if "seq" not in names:
        raise AgreementError(_("The number format must contain {seq}, or every agreement would get the same number."),
                             field="number_format")
    for label, value in (("remind_days", remind_days), ("block_days", block_days)):
        if value is not None and not 0 < value <= 3650:
            raise AgreementError(_("Give a number of days between 1 and 3650, or leave it empty."), field=label)
    if remind_days is not None and block_days is not None and block_days <= remind_days:
        raise AgreementError(_("Blocking comes after the reminder: give more days than for the reminder."),
                             field="block_days")
    before = snapshot(agreement_type, list(TYPE_FIELDS))
    agreement_type.name = name
    agreement_type.template = template
    agreement_type.number_format = number_format
    agreement_type.remind_days = remind_days
    agreement_type.block_days = block_days
    agreement_type.requires_confirmation = bool(requires_confirmation)
    changes = diff(before, snapshot(agreement_type, list(TYPE_FIELDS)))
    session.flush()
    if changes:
        record(session, actor, "agreement_type.updated", "agreement_type", agreement_type.id, changes)
    return agreement_type
