"""The network section of a staff service page (credentials, MAC, address, network state,
what is still to be sent) and the network-state labels the services list filters by. Kept
apart from portal.staff.network (its routes) so the service page can use it without a cycle."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from portal.domain import network as rules
from portal.extensions import db
from portal.models import CustomerService, IpPool, NetworkState


def network_state_labels() -> dict[str, str]:
    return {NetworkState.IN_SYNC.value: _("In sync"), NetworkState.PENDING.value: _("Pending"),
            NetworkState.FAILED.value: _("Failed")}


def network_state_or_none(value):
    if isinstance(value, NetworkState):
        return value
    try:
        return NetworkState(value) if value else None
    except ValueError:
        return None  # an unknown value in the URL means "any"


def network_panel(service: CustomerService, can_act: bool) -> dict:
    identity = rules.identity_of(db.session, service)
    pools = []
    if identity is not None and can_act:
        pools = list(db.session.scalars(select(IpPool).where(IpPool.location_id == service.customer.location_id)
                                        .order_by(IpPool.name)))
    return {
        "identity": identity,
        "address": rules.address_text(identity.ip_address) if identity else "",
        "pending": rules.pending_changes(db.session, service)[:5] if identity else [],
        "pools": pools,
        "labels": network_state_labels(),
        "can_act": can_act and service.state.value != "cancelled",
    }
