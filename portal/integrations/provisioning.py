"""The provisioning worker: applies the outbox (portal.models.ProvisioningChange) through the
driver and records each service's network state.

A pass takes the identities whose state is pending, or failed with its retry due; for each,
only the newest unapplied row matters (it is the whole desired state, not a delta), so it is
applied and every older unapplied row is marked applied with it. Each identity is applied in
its own savepoint: one that fails (the driver raised) is marked failed with the error and a
retry after RADIUS_RETRY_BASE_SECONDS · 2ⁿ (at most an hour); the others go on. A row written
while the pass ran leaves the identity pending for the next pass.

The FreeRADIUS SQL driver writes into the same database, so applying is a transaction of
the portal's; a driver talking to a device would be called the same way."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from portal.integrations import radius
from portal.models import NetworkIdentity, NetworkState, ProvisioningChange
from portal.models.base import utcnow

log = logging.getLogger("portal.provisioning")
RETRY_CAP = 3600.0
BATCH = 500


@dataclass
class SyncResult:
    applied: int = 0
    failed: int = 0

    def as_dict(self) -> dict:
        return {"applied": self.applied, "failed": self.failed}


Driver = Callable[[Session, ProvisioningChange], None]


def radius_driver(config) -> Driver:
    settings = radius.RadiusSettings.from_config(config)

    def apply(session: Session, change: ProvisioningChange) -> None:
        radius.apply(session, change, settings)

    apply.prepare = lambda session: radius.ensure_groups(session, settings)  # type: ignore[attr-defined]
    return apply


def retry_delay(attempts: int, base: float) -> timedelta:
    return timedelta(seconds=min(base * (2 ** max(attempts - 1, 0)), RETRY_CAP))


def _due(session: Session, now: datetime, limit: int) -> list[NetworkIdentity]:
    return list(session.scalars(
        select(NetworkIdentity).where(or_(
            NetworkIdentity.network_state == NetworkState.PENDING,
            (NetworkIdentity.network_state == NetworkState.FAILED) & (NetworkIdentity.next_retry_at <= now),
        )).order_by(NetworkIdentity.id).limit(limit)))


def _sync_one(session: Session, identity: NetworkIdentity, driver: Driver, now: datetime, base: float) -> bool:
    newest = session.scalar(select(ProvisioningChange).where(ProvisioningChange.identity_id == identity.id)
                            .order_by(ProvisioningChange.id.desc()).limit(1))
    if newest is None:
        identity.network_state, identity.synced_at = NetworkState.IN_SYNC, now
        return True
    try:
        with session.begin_nested():
            driver(session, newest)
    except Exception as exc:  # noqa: BLE001 — any driver failure is recorded, never fatal for the pass
        log.warning("provisioning %s failed: %s", identity.username, exc)
        identity.attempts += 1
        identity.network_state = NetworkState.FAILED
        identity.network_error = f"{type(exc).__name__}: {exc}"[:300]
        identity.next_retry_at = now + retry_delay(identity.attempts, base)
        return False
    session.execute(update(ProvisioningChange).where(
        ProvisioningChange.identity_id == identity.id, ProvisioningChange.id <= newest.id,
        ProvisioningChange.applied_at.is_(None)).values(applied_at=now))
    newer = session.scalar(select(exists().where(ProvisioningChange.identity_id == identity.id,
                                                 ProvisioningChange.id > newest.id)))
    identity.network_state = NetworkState.PENDING if newer else NetworkState.IN_SYNC
    identity.network_error, identity.attempts, identity.next_retry_at = "", 0, None
    identity.synced_at = now
    return True


def run_pass(session: Session, driver: Driver, *, retry_base: float = 30.0, now: datetime | None = None,
             limit: int | None = None) -> SyncResult:
    """Apply what is due, committing after each batch. Returns the counts."""
    result = SyncResult()
    prepare = getattr(driver, "prepare", None)
    if prepare is not None:
        prepare(session)
        session.commit()
    seen: set[int] = set()
    while True:
        now_ = now or utcnow()
        batch = [i for i in _due(session, now_, BATCH) if i.id not in seen]
        if not batch:
            break
        for identity in batch:
            seen.add(identity.id)
            if _sync_one(session, identity, driver, now_, retry_base):
                result.applied += 1
            else:
                result.failed += 1
        session.commit()
        if limit is not None and len(seen) >= limit:
            break
    return result
