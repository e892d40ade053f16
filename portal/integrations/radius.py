"""The FreeRADIUS SQL driver: makes FreeRADIUS's standard tables (portal.models.radius) say
what a service's desired state says, for FreeRADIUS's stock rlm_sql queries to read.

- accept → radcheck Cleartext-Password; radreply Framed-IP-Address (when it has one) and the
  rate-limit attributes of the configured NAS type;
- walled garden → the same check and address (the garden recognises the customer by it) and
  the user in the walled-garden group (radusergroup), whose radgroupreply rows carry the NAS
  type's walled-garden attributes (kept in step with the configuration at every pass);
- reject → no rows: FreeRADIUS finds no user and rejects.

`render_config` writes a complete FreeRADIUS configuration that reads the portal's database.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from portal.models import Desired, ProvisioningChange
from portal.models.radius import nas, radcheck, radgroupreply, radreply, radusergroup


class ProfileError(ValueError):
    """The configuration names a NAS type without a profile, or a template that cannot be filled."""


@dataclass(frozen=True)
class RadiusSettings:
    nas_type: str = "mikrotik"
    group: str = "walled-garden"
    profiles: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config) -> RadiusSettings:
        return cls(config.get("RADIUS_NAS_TYPE", "mikrotik"), config.get("RADIUS_WALLED_GARDEN_GROUP", "walled-garden"),
                   dict(config.get("RADIUS_PROFILES") or {}))

    def profile(self) -> dict:
        if self.nas_type not in self.profiles:
            raise ProfileError(f"RADIUS_NAS_TYPE {self.nas_type!r} has no entry in RADIUS_PROFILES")
        return self.profiles[self.nas_type]


def _fill(rows: list, values: dict) -> list[tuple[str, str, str]]:
    out = []
    for attribute, op, template in rows:
        try:
            value = str(template).format(**values)
        except (KeyError, ValueError) as exc:
            raise ProfileError(f"cannot fill {attribute} = {template!r}: {exc}") from None
        out.append((attribute, op, value))
    return out


def reply_rows(change: ProvisioningChange, settings: RadiusSettings) -> list[tuple[str, str, str]]:
    attrs = change.attributes or {}
    rows = []
    if attrs.get("ip_address"):
        rows.append(("Framed-IP-Address", ":=", attrs["ip_address"]))
    if change.desired == Desired.ACCEPT and attrs.get("down_kbps") and attrs.get("up_kbps"):
        down, up = int(attrs["down_kbps"]), int(attrs["up_kbps"])
        rows += _fill(settings.profile().get("accept", []), {
            "down_kbps": down, "up_kbps": up, "down_bps": down * 1000, "up_bps": up * 1000,
            "ip_address": attrs.get("ip_address") or ""})
    return rows


def ensure_groups(session: Session, settings: RadiusSettings) -> None:
    """The walled-garden group's reply attributes, as the configuration says."""
    wanted = _fill(settings.profile().get("walled_garden", []), {})
    have = [(r.attribute, r.op, r.value) for r in session.execute(
        select(radgroupreply).where(radgroupreply.c.groupname == settings.group).order_by(radgroupreply.c.id))]
    if have != wanted:
        session.execute(delete(radgroupreply).where(radgroupreply.c.groupname == settings.group))
        for attribute, op, value in wanted:
            session.execute(insert(radgroupreply).values(groupname=settings.group, attribute=attribute, op=op,
                                                         value=value))


def apply(session: Session, change: ProvisioningChange, settings: RadiusSettings,
          previous_username: str | None = None) -> None:
    """Make the tables say what `change` says for its username (idempotent: the user's rows
    are replaced). Runs in the caller's transaction."""
    names = {change.username} | ({previous_username} if previous_username else set())
    for table in (radcheck, radreply, radusergroup):
        session.execute(delete(table).where(table.c.username.in_(names)))
    if change.desired == Desired.REJECT:
        return
    user = change.username
    session.execute(insert(radcheck).values(username=user, attribute="Cleartext-Password", op=":=",
                                            value=change.attributes["password"]))
    for attribute, op, value in reply_rows(change, settings):
        session.execute(insert(radreply).values(username=user, attribute=attribute, op=op, value=value))
    if change.desired == Desired.WALLED_GARDEN:
        session.execute(insert(radusergroup).values(username=user, groupname=settings.group, priority=1))


def nas_clients(session: Session) -> list[dict]:
    return [dict(r._mapping) for r in session.execute(select(nas).order_by(nas.c.id))]
