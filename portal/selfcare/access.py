"""What a selfcare login's role opens: one table from endpoint to area, checked before every
selfcare view (a limited login asking for another area gets a 403 page that says why) and
offered to templates as `selfcare_may(endpoint)` so the nav and the overview hide the rest."""
from __future__ import annotations

from flask import request
from flask_login import current_user

from portal.domain.selfcare_logins import may_open, role_labels
from portal.selfcare import bp
from portal.web.htmx import render

# Endpoints outside this table (overview, agreements, profile, security, the e-mailed
# cancellation link) are open to every role.
ENDPOINT_AREAS: dict[str, str] = {
    "selfcare.invoices": "billing",
    "selfcare.invoice_detail": "billing",
    "selfcare.invoice_pdf": "billing",
    "selfcare.statement": "billing",
    "selfcare.payments": "billing",
    "selfcare.services": "services",
    "selfcare.service_detail": "services",
    "selfcare.plan_change": "services",
    "selfcare.plan_change_confirm": "services",
    "selfcare.cancel": "services",
    "selfcare.cancel_choose": "services",
    "selfcare.cancel_done": "services",
    "selfcare.requests": "services",
    "selfcare.request_create": "services",
    "selfcare.request_detail": "services",
    "selfcare.request_comment": "services",
    "selfcare.users": "users",
    "selfcare.user_invite": "users",
    "selfcare.user_action": "users",
}


def selfcare_may(endpoint: str) -> bool:
    """Whether the logged-in customer login's role opens this endpoint (True for anyone else:
    other checks decide for them)."""
    area = ENDPOINT_AREAS.get(endpoint)
    if area is None or not (current_user.is_authenticated and current_user.is_customer):
        return True
    return may_open(current_user, area)


@bp.before_request
def _role_guard():
    if not selfcare_may(request.endpoint or ""):
        return render("selfcare/role_refused.html", status=403, role=role_labels()[current_user.role])
    return None


@bp.app_context_processor
def _role_helpers():
    return {"selfcare_may": selfcare_may}
