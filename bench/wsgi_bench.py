"""What the page benchmark serves: the portal plus a bare Flask endpoint in the same gunicorn
(`gunicorn bench.wsgi_bench:app`), so both are measured in the same processes and run. The
bare endpoint and the empty reference page exist only here; the portal's own `wsgi.py` has no
such routes."""
from __future__ import annotations

from bench.server import BARE_PATH, add_floor_page, make_bare_app
from portal import create_app

portal_app = create_app()
add_floor_page(portal_app)
bare_app = make_bare_app()


def app(environ, start_response):
    if environ.get("PATH_INFO") == BARE_PATH:
        return bare_app(environ, start_response)
    return portal_app(environ, start_response)
