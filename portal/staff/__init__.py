"""The operators' face, at /staff: one module per area. Every view declares its right
(`@requires(...)`, 403 without it) and limits what it shows to the operator's locations
(`portal.staff.common.scoped_customer_or_404`, `portal.web.access.in_operator_locations`)."""
from flask import Blueprint

bp = Blueprint("staff", __name__)

from portal.staff import (  # noqa: E402,F401
    agreements,
    api_tokens,
    audit,
    billing,
    catalogue,
    customer_access,
    customer_contacts,
    customers,
    dunning,
    network,
    operators,
    outbox,
    payments,
    requests,
    services,
    views,
    webhooks,
)
