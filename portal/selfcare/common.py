"""What every selfcare module shares: who is acting, whose rows these are, the guard on
changes (staff viewing as the customer may only read), and the list page size."""
from __future__ import annotations

from functools import wraps

from flask import abort, g, request
from flask_login import current_user

from portal.domain.actors import Actor
from portal.web.access import customer_required

PER_PAGE = 25


def customer_actor() -> Actor:
    return Actor.customer(current_user, ip=request.remote_addr, request_id=g.get("request_id"))


def current_customer_id() -> int:
    return current_user.customer_id


def customer_writes(view):
    """A selfcare change: a logged-in customer, and not staff viewing as the customer
    (those sessions are read-only)."""

    @wraps(view)
    @customer_required
    def wrapped(*args, **kwargs):
        if current_user.impersonator_id:
            abort(403)
        return view(*args, **kwargs)

    return wrapped
