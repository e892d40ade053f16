"""The operators' face, at /staff. Every view declares its right; lists are limited to the
operator's locations."""
from flask import Blueprint

bp = Blueprint("staff", __name__)

from portal.staff import views  # noqa: E402,F401
