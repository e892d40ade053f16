"""Customer requests from selfcare: a question, complaint, plan change, move or
cancellation, with a conversation. A request carries what staff need to carry it out in one
step (the service, the wished target definition, the new address) in its payload.

Staff notes (internal comments) never reach selfcare: every query here filters them out."""
from __future__ import annotations

from datetime import date

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from portal.documents import document_for, read_document
from portal.domain import DomainError, lifecycle, plan_change
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.recipients import request_email
from portal.links import external_url
from portal.mail import send_email
from portal.models import (
    ActorType,
    Customer,
    CustomerRequest,
    CustomerService,
    DocumentKind,
    Operator,
    RequestComment,
    RequestKind,
    RequestState,
    Right,
    ServiceDefinition,
    ServiceState,
)
from portal.models.accounts import operator_roles, role_rights
from portal.models.base import utcnow

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
    """The services a request may be about (not cancelled), with their plan-change targets.
    The successor of a scheduled plan change is not one of them: it is that service's
    pending change."""
    services = list(session.scalars(
        select(CustomerService)
        .options(selectinload(CustomerService.definition).selectinload(ServiceDefinition.allowed_targets))
        .where(CustomerService.customer_id == customer_id, CustomerService.state != ServiceState.CANCELLED)
        .order_by(CustomerService.id)
    ))
    return lifecycle.without_pending_successors(services, lifecycle.pending_plan_changes(session, services))


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
        select(RequestComment).options(selectinload(RequestComment.attachments))
        .where(RequestComment.request_id == request.id, RequestComment.internal.is_(False))
        .order_by(RequestComment.id)
    ))


# -- staff: the queue, the conversation, assignment, state, carrying out --------------------------
#
# The state rules for staff (the customer's answer moves `waiting_for_customer` back to
# `in_progress`, see `add_customer_comment`):
#
#     =========  ==================================  ======================  ===============
#     action     from                                to                      text
#     =========  ==================================  ======================  ===============
#     start      new, waiting_for_customer           in_progress             —
#     wait       new, in_progress                    waiting_for_customer    —
#     resolve    new, in_progress, waiting…          resolved                resolution, shown
#     reject     new, in_progress, waiting…          closed                  reason, shown
#     close      resolved                            closed                  —
#     reopen     resolved, closed                    in_progress             —
#     =========  ==================================  ======================  ===============
#
# There is no `rejected` state: a rejected request is closed straight away, and its payload
# records the outcome (`payload["resolution"]`) next to the text the customer got.

STAFF_ACTIONS: dict[str, tuple[tuple[RequestState, ...], RequestState]] = {
    "start": ((RequestState.NEW, RequestState.WAITING_FOR_CUSTOMER), RequestState.IN_PROGRESS),
    "wait": ((RequestState.NEW, RequestState.IN_PROGRESS), RequestState.WAITING_FOR_CUSTOMER),
    "resolve": (OPEN_STATES, RequestState.RESOLVED),
    "reject": (OPEN_STATES, RequestState.CLOSED),
    "close": ((RequestState.RESOLVED,), RequestState.CLOSED),
    "reopen": ((RequestState.RESOLVED, RequestState.CLOSED), RequestState.IN_PROGRESS),
}
# Actions whose text goes to the customer (and must be given).
ACTIONS_WITH_TEXT = ("resolve", "reject")
CARRIED_OUT_KINDS = (RequestKind.PLAN_CHANGE, RequestKind.CANCELLATION)
HANDLE_RIGHT = "requests.handle"
_ACTION_AUDIT = {"resolve": "request.resolved", "reject": "request.rejected"}


class RequestActionRefused(DomainError):
    """The request's state (or what it asks for) does not allow this step."""


def _scoped(stmt, location_ids):
    return stmt if location_ids is None else stmt.where(Customer.location_id.in_(location_ids))


def staff_requests_query(location_ids, *, operator_id: int | None = None, kind: str | None = None,
                         state: str | None = "open", assignee: str | None = "anyone",
                         customer_id: int | None = None) -> Select:
    """The staff queue: requests of customers in the operator's locations (None = all),
    filtered by kind, state (a state, "open" for the unfinished ones, "all"/None for every
    one), assignee ("me" = `operator_id`, "unassigned", "anyone") and optionally one
    customer; newest first (by id: the primary key orders like the creation time), with the
    customer, the assignee and the service loaded (no query per row)."""
    stmt = (
        select(CustomerRequest)
        .join(Customer, Customer.id == CustomerRequest.customer_id)
        .options(selectinload(CustomerRequest.customer),
                 selectinload(CustomerRequest.assignee),
                 selectinload(CustomerRequest.customer_service).selectinload(CustomerService.definition))
        .order_by(CustomerRequest.id.desc())
    )
    stmt = _scoped(stmt, location_ids)
    if customer_id is not None:
        stmt = stmt.where(CustomerRequest.customer_id == customer_id)
    if kind:
        stmt = stmt.where(CustomerRequest.kind == RequestKind(kind))
    if state == "open":
        stmt = stmt.where(CustomerRequest.state.in_(OPEN_STATES))
    elif state and state != "all":
        stmt = stmt.where(CustomerRequest.state == RequestState(state))
    if assignee == "me":
        stmt = stmt.where(CustomerRequest.assignee_id == operator_id)
    elif assignee == "unassigned":
        stmt = stmt.where(CustomerRequest.assignee_id.is_(None))
    return stmt


def request_for_staff(session: Session, request_id, location_ids) -> CustomerRequest | None:
    """One request if its customer is in the operator's locations (None = all), else None."""
    try:
        ident = int(request_id)
    except (TypeError, ValueError):
        return None
    stmt = (
        select(CustomerRequest)
        .join(Customer, Customer.id == CustomerRequest.customer_id)
        .options(selectinload(CustomerRequest.customer), selectinload(CustomerRequest.assignee),
                 selectinload(CustomerRequest.customer_service).selectinload(CustomerService.definition))
        .where(CustomerRequest.id == ident)
    )
    return session.scalar(_scoped(stmt, location_ids))


def staff_conversation(session: Session, request: CustomerRequest) -> list[RequestComment]:
    """The whole conversation for staff, internal notes included (oldest first)."""
    return list(session.scalars(
        select(RequestComment).options(selectinload(RequestComment.attachments))
        .where(RequestComment.request_id == request.id).order_by(RequestComment.id)
    ))


def allowed_staff_actions(request: CustomerRequest) -> list[str]:
    """The state actions the rules allow from the request's current state (for buttons)."""
    return [a for a, (sources, _to) in STAFF_ACTIONS.items() if request.state in sources]


def can_carry_out(request: CustomerRequest) -> bool:
    """A plan change or a cancellation not yet done, still open, about a service."""
    return (request.kind in CARRIED_OUT_KINDS and request.state in OPEN_STATES
            and request.customer_service_id is not None and not request.payload.get("carried_out")
            and not (request.kind == RequestKind.CANCELLATION and request.payload.get("scheduled")))


def assignable_operators(session: Session, location_id: int | None = None) -> list:
    """Active operators holding `requests.handle` who may see a customer of `location_id`
    (an operator without locations sees all), by name."""
    handlers = (
        select(operator_roles.c.operator_id)
        .join(role_rights, role_rights.c.role_id == operator_roles.c.role_id)
        .join(Right, Right.id == role_rights.c.right_id)
        .where(Right.code == HANDLE_RIGHT)
    )
    operators = session.scalars(
        select(Operator).where(Operator.id.in_(handlers), Operator.active.is_(True)).order_by(Operator.name, Operator.id)
    ).all()
    return [op for op in operators
            if location_id is None or op.location_ids is None or location_id in op.location_ids]


def _who(actor: Actor) -> str:
    return (actor.name or "")[:200]


def _audit(session: Session, actor: Actor, action: str, request: CustomerRequest, changes: dict) -> None:
    record(session, actor, action, "customer_request", request.id, changes, customer_id=request.customer_id)


def assign(session: Session, request: CustomerRequest, assignee_id: int | None, actor: Actor):
    """Give the request to an operator (None = nobody). Only an active operator with the
    right to handle requests who sees the customer's location may take it."""
    before = request.assignee_id
    if assignee_id is not None:
        allowed = {op.id for op in assignable_operators(session, request.customer.location_id)}
        if assignee_id not in allowed:
            raise RequestActionRefused(_("Choose an operator who handles requests for this customer."),
                                       field="assignee_id")
    if before == assignee_id:
        return request
    request.assignee_id = assignee_id
    request.assignee = session.get(Operator, assignee_id) if assignee_id is not None else None
    session.flush()
    _audit(session, actor, "request.assigned", request, {"assignee_id": [before, assignee_id]})
    return request


def _clean_body(body: str, field: str) -> str:
    body = (body or "").strip()
    if not body:
        raise DomainError(_("Write the text."), field=field)
    if len(body) > MAX_BODY:
        raise DomainError(_("Use at most %(n)d characters.", n=MAX_BODY), field=field)
    return body


def _staff_comment(session: Session, request: CustomerRequest, body: str, actor: Actor, *,
                   internal: bool) -> RequestComment:
    comment = RequestComment(request_id=request.id, author_type=actor.type, author_id=actor.id,
                             author_name=_who(actor), body=body, internal=internal)
    session.add(comment)
    session.flush()
    return comment


def _selfcare_link(request: CustomerRequest) -> str:
    """The absolute address of the request in selfcare (e-mails are also sent outside a web
    request)."""
    return external_url("selfcare.request_detail", request_id=request.id)


def _notify_customer(session: Session, request: CustomerRequest, comment: RequestComment,
                     attachments: list | None = None) -> str | None:
    """E-mail a customer-visible comment to the customer, in their language; returns the
    address (None when we know none). Never called for internal notes."""
    customer = request.customer
    to = request_email(session, customer)
    if not to:
        return None
    lang = customer.language.value if customer.language else None
    with force_locale(lang):
        send_email(to, _("Your request: %(subject)s", subject=request.subject)[:300], "request_comment",
                   customer_id=customer.id, attachments=attachments, customer=customer, request=request,
                   comment=comment, link=_selfcare_link(request))
    return to


def add_staff_comment(session: Session, request: CustomerRequest, body: str, actor: Actor, *,
                      internal: bool, wait_for_customer: bool = False) -> RequestComment:
    """Staff write in the conversation. A comment (not `internal`) is shown to the customer
    and e-mailed to them; a new request goes to in progress, or — with `wait_for_customer` —
    to waiting for the customer. An internal note is never shown nor sent to the customer and
    changes no state. A closed request takes notes only."""
    body = _clean_body(body, "body")
    if not internal and request.state == RequestState.CLOSED:
        raise RequestActionRefused(_("This request is closed: reopen it to write to the customer."), field="body")
    comment = _staff_comment(session, request, body, actor, internal=internal)
    changes: dict = {"comment_id": [None, comment.id], "internal": [None, internal], "comment": [None, body[:200]]}
    if not internal:
        after = request.state
        if wait_for_customer and request.state in (RequestState.NEW, RequestState.IN_PROGRESS):
            after = RequestState.WAITING_FOR_CUSTOMER
        elif request.state == RequestState.NEW:
            after = RequestState.IN_PROGRESS
        if after != request.state:
            changes["state"] = [request.state.value, after.value]
            request.state = after
    session.flush()
    _audit(session, actor, "request.noted" if internal else "request.answered", request, changes)
    if not internal:
        sent_to = _notify_customer(session, request, comment)
        changes["emailed_to"] = [None, sent_to]
    return comment


def _set_resolution(request: CustomerRequest, outcome: str, text: str, actor: Actor, **extra) -> None:
    # A new dict: the JSON column notices reassignment, not changes inside.
    request.payload = {**(request.payload or {}),
                       "resolution": {"outcome": outcome, "text": text[:500], "by": _who(actor),
                                      "at": utcnow().isoformat(timespec="seconds"), **extra}}


def change_state(session: Session, request: CustomerRequest, action: str, actor: Actor,
                 text: str = "") -> RequestComment | None:
    """One of the STAFF_ACTIONS. `resolve` and `reject` need a text, which becomes a comment
    the customer sees (and gets by e-mail); the others take none. Returns that comment."""
    if action not in STAFF_ACTIONS:
        raise RequestActionRefused(_("Choose what to do with the request."), field="action")
    sources, target = STAFF_ACTIONS[action]
    if request.state not in sources:
        raise RequestActionRefused(_("A request in this state cannot be changed like that."), field="action")
    comment = None
    before = request.state
    changes: dict = {"state": [before.value, target.value]}
    if action in ACTIONS_WITH_TEXT:
        text = _clean_body(text, "text")
        comment = _staff_comment(session, request, text, actor, internal=False)
        _set_resolution(request, "resolved" if action == "resolve" else "rejected", text, actor)
        changes["comment_id"] = [None, comment.id]
        changes["resolution"] = [None, text[:200]]
    request.state = target
    session.flush()
    _audit(session, actor, _ACTION_AUDIT.get(action, "request.state_changed"), request, changes)
    if comment is not None:
        _notify_customer(session, request, comment)
    return comment


def carry_out_defaults(request: CustomerRequest, today: date | None = None) -> dict:
    """What the carry-out form proposes: the date the customer asked for (plan change:
    payload `effective_on`, else the first day of the next period; cancellation: payload
    `end_date`, else the earliest end date) and, for a plan change, the target."""
    today = today or date.today()
    service = request.customer_service
    out: dict = {"on": None, "target_id": None}
    if service is None:
        return out
    wished = _iso_date(request.payload.get("effective_on" if request.kind == RequestKind.PLAN_CHANGE
                                           else "end_date"))
    if request.kind == RequestKind.PLAN_CHANGE:
        out["target_id"] = request.payload.get("target_definition_id")
        out["on"] = wished or max(lifecycle.next_period_start(service.definition.period, today), today)
    elif request.kind == RequestKind.CANCELLATION:
        out["on"] = wished or lifecycle.earliest_end_date(service, today)
    if out["on"] is not None and out["on"] < today:
        out["on"] = today
    return out


def _iso_date(value) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def carry_out(session: Session, request: CustomerRequest, actor: Actor, *, on: date | None = None,
              waive_notice: bool = False, message: str = "", today: date | None = None) -> RequestComment:
    """Do what a plan-change or cancellation request asks, in one step: the plan change
    (`plan_change.change_plan` to the payload's `target_definition_id`, on `on` or the wished
    date) or the cancellation (`lifecycle.cancel` on `on`, at the earliest the end of the
    notice period unless staff `waive_notice`); then the request is resolved with a comment
    the customer sees and gets by e-mail (`message`, or a sentence saying what was done).

    All or nothing: the service steps run in a savepoint, so a refusal (the target is no
    longer allowed, the date is too early…) leaves no trace; the error names the form field
    (`on`, `target`). A cancellation the customer already scheduled in selfcare
    (payload `scheduled`) is not carried out again."""
    today = today or date.today()
    if request.kind not in CARRIED_OUT_KINDS:
        raise RequestActionRefused(_("Only a plan change or a cancellation can be carried out."))
    if request.state not in OPEN_STATES:
        raise RequestActionRefused(_("This request is already finished."))
    if request.payload.get("carried_out"):
        raise RequestActionRefused(_("This request has already been carried out."))
    if request.kind == RequestKind.CANCELLATION and request.payload.get("scheduled"):
        raise RequestActionRefused(_("The customer already scheduled this cancellation; resolve the request when "
                                     "the rest is done."))
    service = request.customer_service
    if service is None or service.customer_id != request.customer_id:
        raise RequestActionRefused(_("The request names no service of this customer."))
    if on is not None and on < today:
        raise RequestActionRefused(_("The date cannot be in the past."), field="on")
    message = (message or "").strip()
    if len(message) > MAX_BODY:
        raise DomainError(_("Use at most %(n)d characters.", n=MAX_BODY), field="message")
    reason = f"Request #{request.id}: {request.subject}"[:500]
    name = service.definition.customer_name or service.definition.name

    try:
        with session.begin_nested():
            if request.kind == RequestKind.PLAN_CHANGE:
                target = _plan_target(session, request)
                effective = on or carry_out_defaults(request, today)["on"]
                successor = plan_change.change_plan(session, service, target, actor=actor, on=effective,
                                                    reason=reason, today=today)
                done = {"kind": "plan_change", "successor_id": successor.id, "target_definition_id": target.id,
                        "effective_on": effective.isoformat()}
                default_text = _("Your plan %(old)s changes to %(new)s on %(date)s.", old=name,
                                 new=target.customer_name or target.name, date=effective.isoformat())
                document = None
            else:
                event = lifecycle.cancel(session, service, actor=actor, on=on, reason=reason,
                                         waive_notice=waive_notice, today=today)
                effective = event.effective_on
                done = {"kind": "cancellation", "event_id": event.id, "end_date": effective.isoformat(),
                        "waived_notice": bool(event.details.get("waived_notice"))}
                default_text = _("Your service %(name)s ends on %(date)s. It is billed until that day.",
                                 name=name, date=effective.isoformat())
                document = _confirmation(session, service)
                done["document_id"] = document.id
            text = message or default_text
            comment = _staff_comment(session, request, text, actor, internal=False)
            before = request.state
            request.payload = {**(request.payload or {}), "carried_out": done}
            _set_resolution(request, "carried_out", text, actor)
            request.state = RequestState.RESOLVED
            session.flush()
            _audit(session, actor, "request.carried_out", request,
                   {"state": [before.value, RequestState.RESOLVED.value], "carried_out": [None, done],
                    "comment_id": [None, comment.id]})
    except DomainError as exc:
        # lifecycle names its fields `on` and `target`; the form has `on` (and shows the
        # target as text, so a refused target is a message for the whole form).
        raise RequestActionRefused(str(exc), field="on" if exc.field == "on" else None) from exc
    attachments = None
    if document is not None:
        attachments = [(document.file_name, "application/pdf", read_document(document))]
    _notify_customer(session, request, comment, attachments)
    return comment


def _plan_target(session: Session, request: CustomerRequest) -> ServiceDefinition:
    target_id = request.payload.get("target_definition_id")
    target = session.get(ServiceDefinition, target_id) if isinstance(target_id, int) else None
    if target is None:
        raise RequestActionRefused(_("The request names no plan to change to."))
    return target


def _confirmation(session: Session, service: CustomerService):
    """The cancellation confirmation PDF (as selfcare sends it), stored with the service."""
    return document_for(session, DocumentKind.CANCELLATION_CONFIRMATION, service)
