"""Idempotency-Key on POST: a retry with the same key and the same request gets the first
answer again (nothing is done twice); the same key with another request is refused (422);
a retry while the first is still being carried out gets 409. Answers are kept a day."""
from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import Response, g, request
from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import IdempotentAnswer
from portal.models.base import utcnow
from portal.web.problems import problem

HEADER = "Idempotency-Key"
KEEP = timedelta(days=1)
# Headers worth replaying (a Location of a created resource); never a Set-Cookie.
_REPLAYED_HEADERS = ("Location", "Content-Disposition")


def _request_hash() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode("latin-1")):
        digest.update(part.encode() + b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def before_write():
    """Blueprint hook, after authentication: replay, refuse, or mark the key as in flight."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return None
    if not 1 <= len(key) <= 255:
        return problem(422, _("An Idempotency-Key is 1 to 255 characters."),
                       errors=[{"field": HEADER, "in": "header", "message": _("An Idempotency-Key is 1 to 255 characters.")}])
    token = g.api_token
    wanted = _request_hash()
    db.session.execute(delete(IdempotentAnswer).where(IdempotentAnswer.created_at < utcnow() - KEEP))
    answer = IdempotentAnswer(token_id=token.id, key=key, request_hash=wanted, headers={})
    db.session.add(answer)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        kept = db.session.scalar(select(IdempotentAnswer).where(IdempotentAnswer.token_id == token.id,
                                                                IdempotentAnswer.key == key))
        if kept is None:  # pruned meanwhile: a rare race; the client retries
            return problem(409, _("A request with this Idempotency-Key is being carried out; try again."))
        if kept.request_hash != wanted:
            message = _("This Idempotency-Key was used for another request.")
            return problem(422, message, errors=[{"field": HEADER, "in": "header", "message": message}])
        if kept.status is None:
            return problem(409, _("A request with this Idempotency-Key is being carried out; try again."))
        response = Response(kept.body or b"", status=kept.status, content_type=kept.content_type)
        for name, value in (kept.headers or {}).items():
            response.headers[name] = value
        response.headers["Idempotent-Replayed"] = "true"
        return response
    g.idempotent_answer_id = answer.id
    return None


def after_write(response: Response) -> Response:
    """Keep the answer; forget the key after a server error, so a retry may succeed."""
    answer_id = g.pop("idempotent_answer_id", None)
    if answer_id is None:
        return response
    db.session.rollback()  # whatever the view left: only the kept answer is written here
    answer = db.session.get(IdempotentAnswer, answer_id)
    if answer is None:
        return response
    if response.status_code >= 500 or response.status_code == 429 or response.direct_passthrough:
        db.session.delete(answer)
    else:
        answer.status = response.status_code
        answer.content_type = response.content_type or ""
        answer.headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
        answer.body = response.get_data()
    db.session.commit()
    return response
