"""The POST step every staff and selfcare action shares: call the rule; if it refuses, roll
back (nothing half-saved) and show the refusal; else commit and go on (usually a redirect
with a message, so a reload does not send the form again)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import flash, redirect

from portal.domain import DomainError
from portal.extensions import db
from portal.web.htmx import is_htmx

T = TypeVar("T")
R = TypeVar("R")


def carry_out(rule: Callable[[], T], *, refused: Callable[[DomainError], R], done: Callable[[T], R]) -> R:
    """`rule()` in the request's transaction: a DomainError rolls it back and answers
    `refused(error)`; success commits and answers `done(result)`."""
    try:
        result = rule()
    except DomainError as error:
        db.session.rollback()
        return refused(error)
    db.session.commit()
    return done(result)


def refused(error: DomainError, target: str):
    """A refused button (no form to show it beside): the refusal as an error notice, and back
    to `target`."""
    flash(str(error), "error")
    return redirect(target)


def see_other(url: str):
    """After a saved form: a redirect, or for an htmx-submitted form an HX-Redirect (htmx
    would otherwise swap the next page into the form)."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


def saved(message: str, target: str, *, htmx_form: bool = False, code: int = 302, category: str = "success"):
    """After a change: the message as a notice (a success unless said), and a redirect to
    `target` (`htmx_form`: the form is submitted by htmx, see `see_other`)."""
    flash(message, category)
    return see_other(target) if htmx_form else redirect(target, code)
