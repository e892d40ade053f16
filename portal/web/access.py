"""Access is structural: selfcare looks rows up through the logged-in customer, staff views
declare their right and pass lists through the operator's location scope."""
from __future__ import annotations

from functools import lru_cache, wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import bindparam, select

from portal.extensions import db


def customer_required(view):
    """Selfcare pages: a logged-in customer; anyone else goes to the customer login."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.customer_login", next=request.full_path.rstrip("?")))
        if not current_user.is_customer:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def operator_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.operator_login", next=request.full_path.rstrip("?")))
        if not current_user.is_operator:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def requires(*rights: str):
    """Staff views: `@requires("billing.run")` — 403 without every named right."""

    def decorator(view):
        @wraps(view)
        @operator_required
        def wrapped(*args, **kwargs):
            if not all(current_user.has_right(r) for r in rights):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_rights = rights
        return wrapped

    return decorator


def current_customer_id() -> int:
    return current_user.customer_id


@lru_cache(maxsize=128)
def _owned_statement(model, column):
    """Built once per model: building a statement and its cache key costs ~60 µs a request."""
    return select(model).where(model.id == bindparam("ident"), column == bindparam("customer_id"))


def owned_or_404(model, ident, customer_column=None):
    """The selfcare way to fetch by id: the row must belong to the logged-in customer."""
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        abort(404)
    column = customer_column if customer_column is not None else model.customer_id
    row = db.session.scalar(_owned_statement(model, column), {"ident": ident, "customer_id": current_customer_id()})
    if row is None:
        abort(404)
    return row


def in_operator_locations(stmt, location_column):
    """Limit a staff query to the operator's locations (none assigned = all)."""
    ids = current_user.location_ids
    return stmt if ids is None else stmt.where(location_column.in_(ids))
