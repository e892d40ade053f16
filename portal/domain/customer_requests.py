"""Customer requests from selfcare: a question, complaint, plan change, move or
cancellation, with a conversation. A request carries what staff need to carry it out in one
step (the service, the wished target definition, the new address) in its payload.

Staff notes (internal comments) never reach selfcare: every query here filters them out."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import (
    ActorType,
    Customer,
    CustomerRequest,
    CustomerService,
    RequestComment,
    RequestKind,
    RequestState,
    ServiceDefinition,
    ServiceState,
)

# What a customer may ask for in selfcare ("other" is for staff).
SELFCARE_KINDS = (
    RequestKind.QUESTION,
    RequestKind.COMPLAINT,
    RequestKind.PLAN_CHANGE,
    RequestKind.MOVE,
    RequestKind.CANCELLATION,
)
NEEDS_SERVICE = (RequestKind.PLAN_CHANGE, RequestKind.MOVE, RequestKind.CANCELLATION)
OPEN_STATES = (RequestState.NEW, RequestState.IN_PROGRESS, RequestState.WAITING_FOR_CUSTOMER)
MAX_BODY = 5000


def customer_services_for_requests(session: Session, customer_id: int) -> list[CustomerService]:
    """The services a request may be about (not cancelled), with their plan-change targets."""
    return list(session.scalars(
        select(CustomerService)
        .options(selectinload(CustomerService.definition).selectinload(ServiceDefinition.allowed_targets))
        .where(CustomerService.customer_id == customer_id, CustomerService.state != ServiceState.CANCELLED)
        .order_by(CustomerService.id)
    ))


def plan_targets(service: CustomerService) -> list[ServiceDefinition]:
    """Definitions a customer may ask to change this service to."""
    return [d for d in service.definition.allowed_targets if d.active and d.id != service.definition_id]


def _author_name(customer: Customer) -> str:
    return customer.display_name[:200]


def create_request(session: Session, customer: Customer, actor: Actor, *, kind: str, subject: str,
                   message: str, service: CustomerService | None = None,
                   target_definition_id: int | None = None, new_address: dict | None = None) -> CustomerRequest:
    """Open a request with its first comment. A plan change names the service and one of
    its allowed targets; a move names the service and the new address; a cancellation names
    the service. Errors name the field they belong to."""
    try:
        kind = RequestKind(kind)
    except ValueError as exc:
        raise DomainError(_("Choose what the request is about."), field="kind") from exc
    if kind not in SELFCARE_KINDS:
        raise DomainError(_("Choose what the request is about."), field="kind")
    subject = (subject or "").strip()
    message = (message or "").strip()
    if not subject:
        raise DomainError(_("Enter a subject."), field="subject")
    if len(subject) > 200:
        raise DomainError(_("Use at most 200 characters."), field="subject")
    if not message:
        raise DomainError(_("Write your message."), field="message")
    if len(message) > MAX_BODY:
        raise DomainError(_("Use at most %(n)d characters.", n=MAX_BODY), field="message")

    payload: dict = {}
    if kind in NEEDS_SERVICE:
        if service is None:
            raise DomainError(_("Choose the service."), field="service_id")
        if service.customer_id != customer.id:
            raise DomainError(_("Choose the service."), field="service_id")
        if service.state == ServiceState.CANCELLED:
            raise DomainError(_("This service is already cancelled."), field="service_id")
    else:
        service = service if service is not None and service.customer_id == customer.id else None
    if kind == RequestKind.PLAN_CHANGE:
        targets = {d.id: d for d in plan_targets(service)}
        if not targets:
            raise DomainError(_("This service cannot be changed online. Send us a question instead."),
                              field="service_id")
        if target_definition_id not in targets:
            raise DomainError(_("Choose one of the plans offered for this service."), field="target_definition_id")
        target = targets[target_definition_id]
        payload = {"from_definition_id": service.definition_id, "target_definition_id": target.id,
                   "target_name": target.customer_name}
    elif kind == RequestKind.MOVE:
        address = {k: (v or "").strip() for k, v in (new_address or {}).items()}
        for name, text in (("street", _("Enter the street and house number.")),
                           ("city", _("Enter the city.")),
                           ("postal_code", _("Enter the postal code."))):
            if not address.get(name):
                raise DomainError(text, field=f"new_{name}")
        payload = {"new_address": {k: address[k] for k in ("street", "city", "postal_code")}}
    elif kind == RequestKind.CANCELLATION:
        payload = {"requested_by": "customer"}

    request = CustomerRequest(
        customer_id=customer.id, kind=kind, subject=subject, state=RequestState.NEW,
        customer_service_id=service.id if service is not None else None, payload=payload,
        created_by_type=ActorType.CUSTOMER, created_by_id=customer.id,
    )
    session.add(request)
    session.flush()
    session.add(RequestComment(request_id=request.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                               author_name=_author_name(customer), body=message, internal=False))
    record(session, actor, "request.created", "customer_request", request.id,
           {"kind": [None, kind], "subject": [None, subject], "customer_service_id": [None, request.customer_service_id],
            "payload": [None, payload]},
           customer_id=customer.id)
    session.flush()
    return request


def add_customer_comment(session: Session, request: CustomerRequest, customer: Customer, body: str,
                         actor: Actor) -> RequestComment:
    """The customer answers. A request waiting for the customer goes back to in progress;
    a closed one takes no more comments (open a new request instead)."""
    if request.customer_id != customer.id:
        raise DomainError(_("This request is not yours."))
    body = (body or "").strip()
    if not body:
        raise DomainError(_("Write your message."), field="body")
    if len(body) > MAX_BODY:
        raise DomainError(_("Use at most %(n)d characters.", n=MAX_BODY), field="body")
    if request.state == RequestState.CLOSED:
        raise DomainError(_("This request is closed. Please open a new one."), field="body")
    comment = RequestComment(request_id=request.id, author_type=ActorType.CUSTOMER, author_id=customer.id,
                             author_name=_author_name(customer), body=body, internal=False)
    session.add(comment)
    changes: dict = {"comment": [None, body[:200]]}
    if request.state == RequestState.WAITING_FOR_CUSTOMER:
        # The answer staff waited for puts the request back on their desk.
        changes["state"] = [request.state.value, RequestState.IN_PROGRESS.value]
        request.state = RequestState.IN_PROGRESS
    session.flush()
    record(session, actor, "request.commented", "customer_request", request.id, changes,
           customer_id=customer.id)
    return comment


def requests_query(customer_id: int) -> Select:
    """The customer's requests, newest first (paginate it)."""
    return (
        select(CustomerRequest)
        .options(selectinload(CustomerRequest.customer_service).selectinload(CustomerService.definition))
        .where(CustomerRequest.customer_id == customer_id)
        .order_by(CustomerRequest.created_at.desc(), CustomerRequest.id.desc())
    )


def visible_comments(session: Session, request: CustomerRequest) -> list[RequestComment]:
    """The conversation as the customer sees it: never staff's internal notes."""
    return list(session.scalars(
        select(RequestComment)
        .where(RequestComment.request_id == request.id, RequestComment.internal.is_(False))
        .order_by(RequestComment.id)
    ))
