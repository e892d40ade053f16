"""Bulk lifecycle steps (block, unblock, cancel) over many services at once, in three steps:

    preview(...)  → which services the step affects and which are skipped (and why), plus a
                    signature of exactly that outcome; writes nothing
    apply(..., signature=…, dry_run=True)   → carries the step out and reports; the caller
                    rolls back (nothing stays)
    apply(..., signature=…)                 → carries the step out for real

`apply` recomputes the preview over the same service ids and refuses (`PreviewChanged`)
when its signature differs from the one the operator saw: what is applied is always what
was previewed. It is all or nothing — a refusal of any row raises and the caller rolls back.

Also here: the service filter shared by the staff list, its CSV export and the bulk
selection (`ServiceFilter`, `filtered_services`), so "apply to everything the filter shows"
means exactly the rows the list shows.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from portal.domain import DomainError
from portal.domain import lifecycle as lc
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import (
    Customer,
    CustomerService,
    NetworkIdentity,
    NetworkState,
    ServiceEventKind,
    ServiceState,
)

ACTIONS = ("block", "unblock", "cancel")
MAX_SERVICES = 500


class BulkError(DomainError):
    """The bulk request itself is not acceptable (no services, too many, unknown action)."""


class PreviewChanged(BulkError):
    """The services changed since the preview: what would be applied is not what was shown."""


# -- the filter --------------------------------------------------------------------------------


def search_key(text: str) -> str:
    """Lower-cased and accent-free, as Customer.name_key stores names ("Novák" → "novak")."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().strip()


@dataclass(frozen=True)
class ServiceFilter:
    state: ServiceState | None = None
    definition_id: int | None = None
    location_id: int | None = None
    text: str = ""
    customer_id: int | None = None
    network_state: NetworkState | None = None  # only services with network identity

    def is_empty(self) -> bool:
        return not (self.state or self.definition_id or self.location_id or self.text or self.customer_id
                    or self.network_state)


def filtered_services(flt: ServiceFilter, location_ids: Collection[int] | None) -> Select:
    """Services matching `flt` within the operator's locations (None = all), newest first,
    with customer and definition loaded in the same round trips (no query per row)."""
    stmt = (
        select(CustomerService)
        .join(Customer, Customer.id == CustomerService.customer_id)
        .options(selectinload(CustomerService.customer).selectinload(Customer.location),
                 selectinload(CustomerService.definition))
        .order_by(CustomerService.id.desc())
    )
    if location_ids is not None:
        stmt = stmt.where(Customer.location_id.in_(list(location_ids)))
    if flt.state is not None:
        stmt = stmt.where(CustomerService.state == flt.state)
    if flt.definition_id is not None:
        stmt = stmt.where(CustomerService.definition_id == flt.definition_id)
    if flt.location_id is not None:
        stmt = stmt.where(Customer.location_id == flt.location_id)
    if flt.customer_id is not None:
        stmt = stmt.where(CustomerService.customer_id == flt.customer_id)
    if flt.network_state is not None:
        stmt = stmt.join(NetworkIdentity, NetworkIdentity.customer_service_id == CustomerService.id).where(
            NetworkIdentity.network_state == flt.network_state)
    text = (flt.text or "").strip()
    if text:
        key = search_key(text)
        stmt = stmt.where(or_(
            Customer.customer_number.ilike(f"{_escape(text)}%", escape="\\"),
            Customer.name_key.like(f"{_escape(key)}%", escape="\\"),
            Customer.variable_symbol == text,
        ))
    return stmt


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def services_by_ids(session: Session, ids: Iterable[int], location_ids: Collection[int] | None) -> list[CustomerService]:
    """The services with these ids that the operator may see (others are silently left out:
    to the operator they do not exist), oldest id first."""
    ids = sorted({int(i) for i in ids})
    if not ids:
        return []
    if len(ids) > MAX_SERVICES:
        raise BulkError(_("Choose at most %(n)d services at once.", n=MAX_SERVICES), field="ids")
    stmt = filtered_services(ServiceFilter(), location_ids).where(CustomerService.id.in_(ids))
    return sorted(session.scalars(stmt.options(selectinload(CustomerService.events))).all(), key=lambda s: s.id)


def services_by_filter(session: Session, flt: ServiceFilter, location_ids: Collection[int] | None) -> list[CustomerService]:
    if flt.is_empty():
        raise BulkError(_("Choose services, or filter the list first: a bulk step never applies to every service."),
                        field="ids")
    rows = session.scalars(
        filtered_services(flt, location_ids).options(selectinload(CustomerService.events)).limit(MAX_SERVICES + 1)
    ).all()
    if len(rows) > MAX_SERVICES:
        raise BulkError(_("The filter matches more than %(n)d services; narrow it down.", n=MAX_SERVICES), field="ids")
    return sorted(rows, key=lambda s: s.id)


# -- preview -----------------------------------------------------------------------------------


@dataclass
class BulkRow:
    service: CustomerService
    why: str = ""  # empty = affected

    @property
    def affected(self) -> bool:
        return not self.why


@dataclass
class BulkPreview:
    action: str
    on: date
    waive_notice: bool
    rows: list[BulkRow] = field(default_factory=list)

    @property
    def affected(self) -> list[BulkRow]:
        return [r for r in self.rows if r.affected]

    @property
    def skipped(self) -> list[BulkRow]:
        return [r for r in self.rows if not r.affected]

    @property
    def ids(self) -> list[int]:
        return [r.service.id for r in self.rows]

    @property
    def signature(self) -> str:
        """sha256 of what the preview says: the action, date, waiver and, per service, its
        state, its pending steps and whether (and why not) it is affected."""
        payload = {
            "action": self.action,
            "on": self.on.isoformat(),
            "waive_notice": self.waive_notice,
            "rows": [[r.service.id, r.service.state.value, r.service.customer_id,
                      sorted(e.id for e in lc.pending_events(r.service)), r.why] for r in self.rows],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _why_not(service: CustomerService, action: str, on: date, today: date, waive_notice: bool) -> str:
    """Why the step would be refused for this service ("" = it would be carried out) — the
    same rules the lifecycle functions apply."""
    sources, _to = lc.RULES[action]
    if service.state not in sources:
        return f"The service is {service.state.value}."
    pending = lc.pending_events(service)
    if action == "cancel":
        earliest = lc.earliest_end_date(service, today)
        if on < earliest and not waive_notice:
            return f"The earliest possible end date is {earliest.isoformat()}."
        if service.billing_from is not None and on < service.billing_from:
            return f"Billing started only on {service.billing_from.isoformat()}."
        for e in pending:
            if e.kind in (ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED):
                return f"A step is already scheduled for {e.scheduled_for.isoformat()}."
    else:
        kind = ServiceEventKind.BLOCKED if action == "block" else ServiceEventKind.UNBLOCKED
        for e in pending:
            if e.kind == kind:
                return f"The same step is already scheduled for {e.scheduled_for.isoformat()}."
    return ""


def preview(services: Iterable[CustomerService], action: str, *, on: date, today: date,
            waive_notice: bool = False) -> BulkPreview:
    """What a bulk `action` on `on` would do to each service. Writes nothing."""
    if action not in ACTIONS:
        raise BulkError(_("Choose block, unblock or cancel."), field="action")
    services = list(services)
    if not services:
        raise BulkError(_("No services are chosen."), field="ids")
    waive = bool(waive_notice) and action == "cancel"
    result = BulkPreview(action=action, on=on, waive_notice=waive)
    for s in sorted(services, key=lambda s: s.id):
        result.rows.append(BulkRow(s, _why_not(s, action, on, today, waive)))
    return result


# -- apply -------------------------------------------------------------------------------------


@dataclass
class BulkResult:
    action: str
    on: date
    applied: list[int]
    scheduled: bool
    skipped: int
    dry_run: bool


def apply(session: Session, services: Iterable[CustomerService], action: str, *, on: date, reason: str,
          actor: Actor, signature: str, today: date, waive_notice: bool = False, dry_run: bool = False) -> BulkResult:
    """Carry out the previewed step for every affected service, after checking that the
    preview over the same services still has `signature`. Writes one lifecycle event and
    audit entry per service and one `services.bulk` audit entry. On `dry_run` the caller
    rolls the transaction back; the result says what would have happened."""
    reason = (reason or "").strip()
    if not reason:
        raise BulkError(_("Give a reason."), field="reason")
    current = preview(services, action, on=on, today=today, waive_notice=waive_notice)
    if current.signature != (signature or ""):
        raise PreviewChanged(_("The services changed since the preview (a state or a scheduled step): "
                               "preview again before applying."))
    applied = []
    for row in current.affected:
        s = row.service
        if action == "block":
            lc.block(session, s, actor=actor, on=on, reason=reason, today=today)
        elif action == "unblock":
            lc.unblock(session, s, actor=actor, on=on, reason=reason, today=today)
        else:
            lc.cancel(session, s, actor=actor, on=on, reason=reason, waive_notice=current.waive_notice, today=today)
        applied.append(s.id)
    record(session, actor, "services.bulk", "customer_service", None, {
        "action": action, "on": on, "reason": reason, "service_ids": applied,
        "skipped_ids": [r.service.id for r in current.skipped], "signature": current.signature,
        "dry_run": dry_run,
    })
    session.flush()
    return BulkResult(action=action, on=on, applied=applied, scheduled=on > today,
                      skipped=len(current.skipped), dry_run=dry_run)
