"""Mandatory second factor for operators: with `OPERATOR_TOTP_REQUIRED` on, an operator
without TOTP (and not listed in `OPERATOR_TOTP_EXEMPT`) can open nothing of the staff face
but the enrolment page until they have set it up; logging out stays possible."""
from __future__ import annotations

from flask import current_app, redirect, request, url_for
from flask_login import current_user

from portal.auth import bp
from portal.domain.operators import needs_enrolment

# What such an operator may still reach: the enrolment page itself, logging in and out,
# static files.
ALLOWED_ENDPOINTS = {"staff.security", "auth.operator_logout", "auth.operator_logout_everywhere", "static"}


@bp.before_app_request
def _operator_must_enrol():
    if request.endpoint in ALLOWED_ENDPOINTS or not current_app.config.get("OPERATOR_TOTP_REQUIRED"):
        return None
    if not current_user.is_authenticated or not current_user.is_operator:
        return None
    if not needs_enrolment(current_user, current_app.config):
        return None
    target = url_for("staff.security")
    if request.headers.get("HX-Request") == "true":
        # htmx follows a redirect inside the swap; HX-Redirect changes the whole page.
        return "", 204, {"HX-Redirect": target}
    return redirect(target)
