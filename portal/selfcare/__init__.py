"""The customer's face, at /. Every query is scoped to the logged-in customer."""
from flask import Blueprint

bp = Blueprint("selfcare", __name__)

from portal.selfcare import acceptance, views  # noqa: E402,F401
