"""Network identity of a service and the provisioning outbox.

- IP pools per location (CIDR ranges stored as integer bounds); `assign_address` takes the
  first free address of a pool with one SQL query (the first gap), never a Python scan, and
  the unique `network_identity.ip_address` is what guarantees an address is never given
  twice: a concurrent taker loses on the constraint and tries the next gap.
- Credentials are generated (`create_identity`, `regenerate_password`).
- `provision` writes, in the caller's transaction, what the network must now look like for a
  service (a `ProvisioningChange`: accept / walled garden / reject + attributes) and marks its
  network state pending. Every lifecycle step calls it (portal.domain.lifecycle), so do the
  scheduled and bulk steps that go through those functions; so do the changes here.

The worker (portal.integrations.provisioning) applies the outbox through a driver.
"""
from __future__ import annotations

import ipaddress
import re
import secrets

from flask_babel import gettext as _
from sqlalchemy import and_, exists, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from portal.domain import DomainError, events
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import (
    CustomerService,
    Desired,
    IpPool,
    Location,
    NetworkIdentity,
    NetworkState,
    ProvisioningChange,
    ServiceState,
)

PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679"  # no look-alikes
PASSWORD_LENGTH = 12
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class AddressUnavailable(DomainError):
    """The address is taken, outside the pool, or the pool is full."""


# -- addresses ---------------------------------------------------------------------------------


def address_text(value: int | None) -> str:
    return "" if value is None else str(ipaddress.IPv4Address(value))


def parse_address(text: str, field: str = "ip_address") -> int:
    try:
        return int(ipaddress.IPv4Address((text or "").strip()))
    except ValueError:
        raise DomainError(_("Enter an IPv4 address such as 192.0.2.10."), field=field) from None


def _parse_cidr(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network((text or "").strip(), strict=True)
    except ValueError:
        raise DomainError(_("Enter a network in CIDR form such as 100.64.0.0/24."), field="cidr") from None


def _usable(net: ipaddress.IPv4Network) -> tuple[int, int]:
    if net.prefixlen >= 31:
        return int(net.network_address), int(net.broadcast_address)
    return int(net.network_address) + 1, int(net.broadcast_address) - 1


# -- pools -------------------------------------------------------------------------------------


def _check_overlap(session: Session, first: int, last: int, pool_id: int | None) -> None:
    clash = session.scalar(select(IpPool).where(
        IpPool.first_address <= last, IpPool.last_address >= first,
        IpPool.id != (pool_id or 0)).limit(1))
    if clash is not None:
        raise DomainError(_("The range overlaps the pool “%(name)s” (%(cidr)s).", name=clash.name, cidr=clash.cidr),
                          field="cidr")


def save_pool(session: Session, *, actor: Actor, location: Location, name: str, cidr: str, note: str = "",
              pool: IpPool | None = None) -> IpPool:
    """Create a pool, or edit one. A pool's range may only change while no address outside
    the new range is given out from it."""
    name = (name or "").strip()
    if not name:
        raise DomainError(_("Give the pool a name."), field="name")
    net = _parse_cidr(cidr)
    first, last = _usable(net)
    _check_overlap(session, first, last, pool.id if pool else None)
    before = None
    if pool is None:
        pool = IpPool(location=location, name=name[:100], cidr=str(net), first_address=first, last_address=last,
                      note=(note or "")[:300])
        session.add(pool)
    else:
        outside = session.scalar(select(func.count()).select_from(NetworkIdentity).where(
            NetworkIdentity.ip_pool_id == pool.id,
            (NetworkIdentity.ip_address < first) | (NetworkIdentity.ip_address > last)))
        if outside:
            raise DomainError(_("%(count)s address(es) given out from this pool lie outside the new range.",
                                count=outside), field="cidr")
        before = {"name": pool.name, "cidr": pool.cidr, "location_id": pool.location_id}
        pool.location, pool.name, pool.cidr = location, name[:100], str(net)
        pool.first_address, pool.last_address, pool.note = first, last, (note or "")[:300]
    session.flush()
    after = {"name": pool.name, "cidr": pool.cidr, "location_id": pool.location_id}
    record(session, actor, "ip_pool.created" if before is None else "ip_pool.updated", "ip_pool", pool.id,
           {k: [None if before is None else before[k], v] for k, v in after.items()})
    return pool


def pool_usage(session: Session, pool: IpPool) -> tuple[int, int]:
    """(given out, size) of a pool."""
    used = session.scalar(select(func.count()).select_from(NetworkIdentity).where(
        NetworkIdentity.ip_address.between(pool.first_address, pool.last_address)))
    return int(used or 0), pool.last_address - pool.first_address + 1


def first_free_address(session: Session, pool: IpPool) -> int | None:
    """The lowest free address of the pool, in SQL: the pool's first address if free, else
    the lowest taken address + 1 whose successor is free (the first gap). None when full."""
    taken = NetworkIdentity.ip_address
    first_taken = session.scalar(select(literal(1)).where(taken == pool.first_address).select_from(NetworkIdentity))
    if first_taken is None:
        return pool.first_address
    nxt = aliased(NetworkIdentity)
    gap = session.scalar(
        select(func.min(taken + 1)).where(
            taken.between(pool.first_address, pool.last_address - 1),
            ~exists().where(nxt.ip_address == taken + 1),
        )
    )
    return int(gap) if gap is not None else None


# -- identities --------------------------------------------------------------------------------


def _password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _i in range(PASSWORD_LENGTH))


def identity_of(session: Session, service: CustomerService) -> NetworkIdentity | None:
    return session.scalar(select(NetworkIdentity).where(NetworkIdentity.customer_service_id == service.id))


def create_identity(session: Session, service: CustomerService, *, actor: Actor,
                    username: str | None = None) -> NetworkIdentity:
    """Give a service network credentials: the username (default: the customer number and
    the service id) and a generated password."""
    if identity_of(session, service) is not None:
        raise DomainError(_("The service already has network access."))
    username = (username or f"{service.customer.customer_number}-{service.id}").strip()
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", username):
        raise DomainError(_("A username is 1 to 64 letters, digits or . _ @ -."), field="username")
    if session.scalar(select(NetworkIdentity.id).where(NetworkIdentity.username == username)) is not None:
        raise DomainError(_("The username “%(name)s” is taken.", name=username), field="username")
    identity = NetworkIdentity(customer_service_id=service.id, username=username, password=_password(),
                               network_state=NetworkState.PENDING)
    session.add(identity)
    session.flush()
    record(session, actor, "network.identity_created", "customer_service", service.id,
           {"username": [None, username]}, customer_id=service.customer_id)
    provision(session, service, identity, reason="identity_created")
    return identity


def regenerate_password(session: Session, identity: NetworkIdentity, *, actor: Actor) -> str:
    identity.password = _password()
    service = identity.customer_service
    # The password itself never goes into the audit log.
    record(session, actor, "network.password_regenerated", "customer_service", service.id,
           {"username": [identity.username, identity.username]}, customer_id=service.customer_id)
    provision(session, service, identity, reason="password_regenerated")
    return identity.password


def set_mac(session: Session, identity: NetworkIdentity, mac: str, *, actor: Actor) -> None:
    mac = (mac or "").strip().lower().replace("-", ":")
    if mac and not MAC_RE.match(mac):
        raise DomainError(_("Enter a MAC address such as 00:11:22:33:44:55."), field="mac_address")
    before, identity.mac_address = identity.mac_address, mac or None
    service = identity.customer_service
    record(session, actor, "network.mac_changed", "customer_service", service.id,
           {"mac_address": [before, identity.mac_address]}, customer_id=service.customer_id)
    provision(session, service, identity, reason="mac_changed")


def assign_address(session: Session, identity: NetworkIdentity, *, actor: Actor, pool: IpPool | None = None,
                   address: str = "") -> str:
    """Give the identity an address: the given one (static; inside `pool` when one is named),
    or the first free one of `pool`. Replaces the address it had."""
    if pool is None and not (address or "").strip():
        raise DomainError(_("Choose a pool or enter an address."), field="ip_address")
    wanted = parse_address(address) if (address or "").strip() else None
    if wanted is not None and pool is not None and not pool.first_address <= wanted <= pool.last_address:
        raise AddressUnavailable(_("The address is not in the pool %(cidr)s.", cidr=pool.cidr), field="ip_address")
    before = identity.ip_address
    for _attempt in range(5):
        value = wanted if wanted is not None else first_free_address(session, pool)
        if value is None:
            raise AddressUnavailable(_("The pool %(cidr)s has no free address.", cidr=pool.cidr), field="ip_pool")
        try:
            with session.begin_nested():
                identity.ip_address, identity.ip_pool_id = value, pool.id if pool else None
                session.flush()
            break
        except IntegrityError:
            identity.ip_address = before
            if wanted is not None:
                raise AddressUnavailable(_("The address %(ip)s is already given out.", ip=address_text(wanted)),
                                         field="ip_address") from None
            # Someone took that gap meanwhile: the constraint said no, look again.
    else:
        raise AddressUnavailable(_("No free address could be taken; try again."), field="ip_pool")
    service = identity.customer_service
    record(session, actor, "network.address_assigned", "customer_service", service.id,
           {"ip_address": [address_text(before), address_text(identity.ip_address)],
            "ip_pool_id": [None, identity.ip_pool_id]}, customer_id=service.customer_id)
    provision(session, service, identity, reason="address_assigned")
    return address_text(identity.ip_address)


def release_address(session: Session, identity: NetworkIdentity, *, actor: Actor) -> None:
    if identity.ip_address is None:
        raise DomainError(_("The service has no address."))
    before = identity.ip_address
    identity.ip_address, identity.ip_pool_id = None, None
    session.flush()
    service = identity.customer_service
    record(session, actor, "network.address_released", "customer_service", service.id,
           {"ip_address": [address_text(before), None]}, customer_id=service.customer_id)
    provision(session, service, identity, reason="address_released")


# -- desired state and the outbox --------------------------------------------------------------


def desired_state(service: CustomerService, identity: NetworkIdentity) -> tuple[Desired, dict]:
    """What the network must look like for the service: active → accept (password, address,
    speeds), blocked → walled garden (same credentials and address, so the garden can tell the
    customer by the address), anything else → reject (no attributes)."""
    if service.state not in (ServiceState.ACTIVE, ServiceState.BLOCKED):
        return Desired.REJECT, {}
    attributes = {
        "password": identity.password,
        "ip_address": address_text(identity.ip_address) or None,
        "mac_address": identity.mac_address,
        "down_kbps": service.definition.down_kbps,
        "up_kbps": service.definition.up_kbps,
    }
    return (Desired.ACCEPT if service.state == ServiceState.ACTIVE else Desired.WALLED_GARDEN), attributes


def provision(session: Session, service: CustomerService, identity: NetworkIdentity | None = None, *,
              reason: str = "") -> ProvisioningChange | None:
    """Write the service's desired network state into the outbox (same transaction) and mark
    its network state pending. A service without network identity has nothing to write; an
    internet service (its definition has a speed profile) gets one when it is activated."""
    identity = identity or identity_of(session, service)
    if identity is None:
        if service.state != ServiceState.ACTIVE or service.definition.down_kbps is None:
            return None
        create_identity(session, service, actor=Actor.system("provisioning"))  # provisions it
        return None
    desired, attributes = desired_state(service, identity)
    change = ProvisioningChange(identity_id=identity.id, customer_service_id=service.id, username=identity.username,
                                desired=desired, attributes=attributes, reason=reason[:60])
    session.add(change)
    identity.network_state, identity.network_error = NetworkState.PENDING, ""
    identity.attempts, identity.next_retry_at = 0, None
    session.flush()
    public = {k: v for k, v in attributes.items() if k != "password"}
    events.emit(session, events.NETWORK_CHANGED, "customer_service", service.id, customer_id=service.customer_id,
                changes={"desired": [None, desired.value], "username": [None, identity.username],
                         **{k: [None, v] for k, v in public.items()}})
    return change


def carry_over(session: Session, service: CustomerService, successor: CustomerService) -> None:
    """A plan change: the successor takes over the identity (same credentials and address,
    the new speeds), and the network is told at once."""
    identity = identity_of(session, service)
    if identity is not None:
        identity.customer_service_id = successor.id
        session.flush()
        session.expire(identity, ["customer_service"])
    provision(session, successor, identity, reason="plan_changed")


def pending_changes(session: Session, service: CustomerService) -> list[ProvisioningChange]:
    """The outbox rows not applied yet for the service's identity (newest first)."""
    identity = identity_of(session, service)
    if identity is None:
        return []
    return list(session.scalars(select(ProvisioningChange).where(
        and_(ProvisioningChange.identity_id == identity.id, ProvisioningChange.applied_at.is_(None)))
        .order_by(ProvisioningChange.id.desc())))
