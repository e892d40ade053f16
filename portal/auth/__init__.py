"""Log in, log out, reset, second factor — for both faces (customers at /login,
operators at /staff/login; separate populations, same rules)."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from portal.auth import enrolment, invitations, views  # noqa: E402,F401
