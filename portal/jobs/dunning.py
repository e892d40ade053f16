"""Dunning and agreement acceptance runs as jobs."""
from __future__ import annotations

import dataclasses
from datetime import date

from portal.domain.actors import Actor
from portal.jobs.enqueueing import enqueue
from portal.jobs.handlers import _date, domain_function
from portal.jobs.registry import JobContext, job_handler
from portal.models import Job


def enqueue_dunning_run(on: date, *, actor: Actor) -> Job:
    """Queue a (real) dunning run on `on`."""
    return enqueue("dunning_run", {"on": on}, actor=actor)


@job_handler("dunning_run")
def dunning_run(ctx: JobContext) -> dict:
    """Remind and block as of `on` (default today); `dry_run` only reports what would happen."""
    run_dunning = domain_function("portal.domain.dunning", "run_dunning")
    result = run_dunning(
        ctx.session,
        on=_date(ctx.params.get("on")) or date.today(),
        actor=ctx.actor,
        progress=ctx.progress,
        dry_run=bool(ctx.params.get("dry_run")),
    )
    if hasattr(result, "as_dict"):
        return result.as_dict()
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return result


@job_handler("agreement_acceptance")
def agreement_acceptance(ctx: JobContext) -> dict:
    """Remind and block for agreements left unaccepted, as of `on` (default today)."""
    enforce_acceptance = domain_function("portal.domain.agreements", "enforce_acceptance")
    result = enforce_acceptance(ctx.session, today=_date(ctx.params.get("on")) or date.today(), actor=ctx.actor)
    return result.as_dict()
