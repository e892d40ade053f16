"""The customer's face, at /: one module per area. Every query is scoped to the logged-in
customer: lists filter by `current_user.customer_id`, single rows come from `owned_or_404`."""
from flask import Blueprint

bp = Blueprint("selfcare", __name__)

from portal.selfcare import (  # noqa: E402,F401
    acceptance,
    access,
    agreements,
    invoices,
    overview,
    pay,
    profile,
    reminders,
    requests,
    services,
    users,
)
