"""Kinds of jobs and their handlers: the registry `@job_handler` fills, what a handler gets
(JobContext), and the errors a job fails with."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from portal.domain.actors import Actor


class UnknownJobKind(ValueError):
    """No handler is registered for this kind of job."""


class JobError(Exception):
    """The job cannot run (a missing module, a missing upload); the message becomes its error."""


# --- handlers ---------------------------------------------------------------------------------


@dataclass
class JobContext:
    """What a handler gets: the job's session (do not commit it), its parameters (without the
    actor), the actor who asked for it, and the progress callback."""

    job_id: int
    session: Session
    params: dict[str, Any]
    actor: Actor
    progress: Callable[..., None]


Handler = Callable[[JobContext], "dict | None"]


@dataclass(frozen=True)
class _Registration:
    kind: str
    fn: Handler
    requires: tuple[str, ...]


_HANDLERS: dict[str, _Registration] = {}


def job_handler(kind: str, *, requires: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """Register `fn(ctx: JobContext) -> dict | None` as the handler of `kind`. `requires`
    names parameters `enqueue()` refuses to go without. The returned dict (JSON-safe after
    conversion: dates, decimals, dataclasses, model objects as their id) becomes the result."""
    if not kind or len(kind) > 40:
        raise ValueError("a job kind is 1 to 40 characters")

    def register(fn: Handler) -> Handler:
        existing = _HANDLERS.get(kind)
        if existing is not None and _qualified(existing.fn) != _qualified(fn):
            raise ValueError(f"job kind {kind!r} already has a handler: {_qualified(existing.fn)}")
        _HANDLERS[kind] = _Registration(kind, fn, tuple(requires))
        return fn

    return register


def unregister_handler(kind: str) -> None:
    _HANDLERS.pop(kind, None)


def registered_kinds() -> list[str]:
    return sorted(_HANDLERS)


def _qualified(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


# --- periodic tasks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Periodic:
    """Work huey's consumer runs on a schedule, in an app context, without a job row (a row a
    minute would bury the jobs people asked for). `fn(app)`."""

    name: str
    schedule: Callable  # huey.crontab(...)
    fn: Callable


_PERIODIC: dict[str, Periodic] = {}


def periodic(name: str, schedule: Callable) -> Callable[[Callable], Callable]:
    """Register `fn(app)` to run on `schedule` (huey's crontab) on every app's queue."""

    def register(fn: Callable) -> Callable:
        _PERIODIC[name] = Periodic(name, schedule, fn)
        return fn

    return register
