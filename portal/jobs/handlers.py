"""What the portal's handlers share: the domain function looked up when the job runs, parameter
parsing, result summaries; and `ping`."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from portal.jobs.registry import JobContext, JobError, job_handler

# --- the portal's handlers --------------------------------------------------------------------


def domain_function(modules: str | tuple[str, ...], name: str) -> Callable:
    """Import `name` from the first of `modules` that has it, when the job runs: a kind whose
    module is not installed fails its jobs with a clear error instead of breaking every
    import of this module."""
    for module in (modules,) if isinstance(modules, str) else modules:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        fn = getattr(mod, name, None)
        if fn is not None:
            return fn
    where = modules if isinstance(modules, str) else " or ".join(modules)
    raise JobError(f"{name}() from {where} is not available in this installation.")


def _accepts(fn: Callable, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise JobError(f"{value!r} is not a date (YYYY-MM-DD).") from exc


def _summary(obj: Any, id_key: str, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {id_key: getattr(obj, "id", None)}
    for field in fields:
        if hasattr(obj, field):
            out[field] = getattr(obj, field)
    return out


@job_handler("ping")
def ping(ctx: JobContext) -> dict:
    """Does nothing: `flask jobs ping` uses it to prove a consumer is listening."""
    return {"pong": True, "at": datetime.now(UTC)}
