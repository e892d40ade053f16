"""The portal: create_app() wires config, extensions, blueprints, CLI and error pages."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def configure_logging() -> None:
    """Once per process, by what runs the app (wsgi.py: gunicorn and the flask CLI), not per
    app built: tests build many apps and keep pytest's own log handling."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # WeasyPrint logs every step of parsing its own stylesheets at import, at INFO.
    for noisy in ("alembic.runtime.plugins", "weasyprint.progress", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from portal.config import load_config

    load_config(app, overrides)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if app.config.get("TESTING"):
        from portal.security.passwords import use_fast_hashing_for_tests

        use_fast_hashing_for_tests()

    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = int(app.config["PROXY_FIX"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)

    from portal.extensions import babel, csrf, db, limiter, login_manager, migrate

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite: enforce foreign keys, wait for locks instead of failing at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
            "connect_args": {"timeout": 30},
        }
    db.init_app(app)
    with app.app_context():
        from portal.db_setup import configure_engine

        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from portal.web.i18n import select_locale, select_timezone

    babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories=str(ROOT / "portal" / "translations"),
    )

    from portal.domain.billing import protect_issued_invoices

    protect_issued_invoices()  # an issued invoice never changes (ORM-level guard)

    from portal.domain.settlement import install_paid_unblocking

    install_paid_unblocking()  # a payment that settles a blocking debt unblocks at once

    from portal.security.sessions import init_sessions

    init_sessions(app)

    from portal.web import init_web

    init_web(app)

    from portal.auth import bp as auth_bp
    from portal.selfcare import bp as selfcare_bp
    from portal.staff import bp as staff_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(selfcare_bp)
    app.register_blueprint(staff_bp, url_prefix="/staff")

    from portal.api import init_api

    init_api(app)

    from portal.cli import register_cli

    register_cli(app)
    return app
