"""/api/v1/requests: customer requests as staff see them — the queue (the staff queue's
filters), one request, its conversation (staff notes included, marked `internal`), and the
staff steps: a comment or note, a state action, assignment, carrying out a plan change or
cancellation. Every step goes through portal.domain.customer_requests, the functions the
staff pages call (audit, e-mail to the customer), with the staff right `requests.handle`."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import select

from portal.api.auth import api_actor, requires
from portal.api.fields import Schema, enum, ident, query_ident, timestamp
from portal.api.paging import PageArgs, cursor_page, page_schema
from portal.api.problems import refusal
from portal.domain import DomainError
from portal.domain import customer_requests as rules
from portal.extensions import db
from portal.models import ActorType, CustomerRequest, RequestComment, RequestKind, RequestState

RIGHT = rules.HANDLE_RIGHT

blp = Blueprint("api_requests", __name__, url_prefix="/api/v1/requests",
                description="Customer requests: the staff queue, the conversation and the staff steps.")

_ACTIONS = list(rules.STAFF_ACTIONS)
_STATES = ["open", "all", *(s.value for s in RequestState)]
_ASSIGNEES = ["anyone", "me", "unassigned"]


class RequestSchema(Schema):
    id = ma.fields.Integer(required=True)
    customer_id = ma.fields.Integer(required=True)
    customer_number = ma.fields.Function(lambda req: req.customer.customer_number, required=True,
                                         metadata={"type": "string"})
    kind = enum(RequestKind, required=True)
    subject = ma.fields.String(required=True)
    state = enum(RequestState, required=True)
    assignee_id = ma.fields.Integer(allow_none=True)
    customer_service_id = ma.fields.Integer(allow_none=True)
    payload = ma.fields.Dict(required=True, metadata={"description": "What carrying the request out needs "
                                                                     "(target plan, new address…) and its outcome."})
    created_by_type = enum(ActorType, required=True)
    created_by_id = ma.fields.Integer(allow_none=True)
    allowed_actions = ma.fields.Function(rules.allowed_staff_actions, required=True,
                                         metadata={"type": "array", "items": {"type": "string", "enum": _ACTIONS},
                                                   "description": "The state actions allowed now."})
    can_carry_out = ma.fields.Function(rules.can_carry_out, required=True, metadata={"type": "boolean"})
    created_at = timestamp(required=True)
    updated_at = timestamp(required=True)


class CommentSchema(Schema):
    id = ma.fields.Integer(required=True)
    request_id = ma.fields.Integer(required=True)
    author_type = enum(ActorType, required=True)
    author_id = ma.fields.Integer(allow_none=True)
    author_name = ma.fields.String(required=True)
    body = ma.fields.String(required=True)
    internal = ma.fields.Boolean(required=True, metadata={"description": "A staff note: never shown to the customer."})
    created_at = timestamp(required=True)


class RequestFilterArgs(PageArgs):
    kind = enum(RequestKind)
    state = ma.fields.String(validate=ma.validate.OneOf(_STATES),
                             metadata={"description": "A state, `open` (not finished; the default) or `all`.",
                                       "enum": _STATES})
    assignee = ma.fields.String(validate=ma.validate.OneOf(_ASSIGNEES),
                                metadata={"description": "`me`: the token's operator.", "enum": _ASSIGNEES})
    customer_id = query_ident()


class CommentFilterArgs(PageArgs):
    internal = ma.fields.Boolean(metadata={"description": "Only staff notes (true) or only the conversation "
                                                          "with the customer (false)."})


class CommentCreateSchema(Schema):
    body = ma.fields.String(required=True, validate=ma.validate.Length(max=rules.MAX_BODY))
    internal = ma.fields.Boolean(load_default=False,
                                 metadata={"description": "A staff note (not e-mailed, changes no state)."})
    wait_for_customer = ma.fields.Boolean(load_default=False,
                                          metadata={"description": "Then wait for the customer's answer."})


class StateChangeSchema(Schema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(_ACTIONS), metadata={"enum": _ACTIONS})
    text = ma.fields.String(load_default="", validate=ma.validate.Length(max=rules.MAX_BODY),
                            metadata={"description": "The resolution or reason (resolve, reject): the customer "
                                                     "sees it."})


class AssignSchema(Schema):
    assignee_id = ident(required=True, allow_none=True, metadata={"description": "An operator; null: nobody."})


class CarryOutSchema(Schema):
    on = ma.fields.Date(allow_none=True, load_default=None,
                        metadata={"description": "Effective on (default: the date the customer asked for)."})
    waive_notice = ma.fields.Boolean(load_default=False)
    message = ma.fields.String(load_default="", validate=ma.validate.Length(max=rules.MAX_BODY),
                               metadata={"description": "To the customer (default: a sentence saying what was "
                                                        "done)."})


def _request_or_404(request_id: int) -> CustomerRequest:
    found = rules.request_for_staff(db.session, request_id, current_user.location_ids)
    if found is None:
        abort(404)
    return found


def _comments(request_id: int):
    return select(RequestComment).where(RequestComment.request_id == request_id)


@blp.route("")
@requires(RIGHT)
@blp.arguments(RequestFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(RequestSchema))
def list_requests(limit=None, cursor=None, kind=None, state="open", assignee="anyone", customer_id=None):
    """List customer requests (ordered by id)."""
    stmt = rules.staff_requests_query(current_user.location_ids, operator_id=current_user.id,
                                      kind=kind.value if kind else None, state=state, assignee=assignee,
                                      customer_id=customer_id)
    return cursor_page(stmt, CustomerRequest.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:request_id>")
@requires(RIGHT)
@blp.response(200, RequestSchema)
def get_request(request_id: int):
    """Get a customer request."""
    return _request_or_404(request_id)


@blp.route("/<int:request_id>/comments")
@requires(RIGHT)
@blp.arguments(CommentFilterArgs, location="query", as_kwargs=True)
@blp.response(200, page_schema(CommentSchema))
def list_comments(request_id: int, limit=None, cursor=None, internal=None):
    """List a request's comments and staff notes (oldest first)."""
    stmt = _comments(_request_or_404(request_id).id)
    if internal is not None:
        stmt = stmt.where(RequestComment.internal.is_(internal))
    return cursor_page(stmt, RequestComment.id, {"limit": limit, "cursor": cursor})


@blp.route("/<int:request_id>/comments/<int:comment_id>")
@requires(RIGHT)
@blp.response(200, CommentSchema)
def get_comment(request_id: int, comment_id: int):
    """Get one comment or staff note of a request."""
    comment = db.session.scalar(_comments(_request_or_404(request_id).id).where(RequestComment.id == comment_id))
    if comment is None:
        abort(404)
    return comment


@blp.route("/<int:request_id>/comments", methods=["POST"])
@requires(RIGHT)
@blp.arguments(CommentCreateSchema)
@blp.response(201, CommentSchema)
def add_comment(body: dict, request_id: int):
    """Write to the customer (e-mailed) or add a staff note (request.answered / request.noted)."""
    req = _request_or_404(request_id)
    try:
        comment = rules.add_staff_comment(db.session, req, body["body"], api_actor(), internal=body["internal"],
                                          wait_for_customer=body["wait_for_customer"])
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return comment, 201, {"Location": f"/api/v1/requests/{req.id}/comments/{comment.id}"}


@blp.route("/<int:request_id>/state", methods=["POST"])
@requires(RIGHT)
@blp.arguments(StateChangeSchema)
@blp.response(200, RequestSchema)
def change_state(body: dict, request_id: int):
    """Start, wait for the customer, resolve, reject, close or reopen a request."""
    req = _request_or_404(request_id)
    try:
        rules.change_state(db.session, req, body["action"], api_actor(), text=body["text"])
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _request_or_404(request_id)


@blp.route("/<int:request_id>/assign", methods=["POST"])
@requires(RIGHT)
@blp.arguments(AssignSchema)
@blp.response(200, RequestSchema)
def assign(body: dict, request_id: int):
    """Assign a request to an operator who handles requests, or to nobody (request.assigned)."""
    req = _request_or_404(request_id)
    try:
        rules.assign(db.session, req, body["assignee_id"], api_actor())
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _request_or_404(request_id)


@blp.route("/<int:request_id>/carry-out", methods=["POST"])
@requires(RIGHT)
@blp.arguments(CarryOutSchema)
@blp.response(200, RequestSchema)
def carry_out(body: dict, request_id: int):
    """Carry out a plan change or cancellation and resolve the request, all or nothing."""
    req = _request_or_404(request_id)
    try:
        rules.carry_out(db.session, req, api_actor(), on=body["on"], waive_notice=body["waive_notice"],
                        message=body["message"])
    except DomainError as error:
        return refusal(error)
    db.session.commit()
    return _request_or_404(request_id)
