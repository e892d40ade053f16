"""Configuration: defaults, PORTAL_* environment overrides, explicit overrides, and the
refusal to run production with a weak SECRET_KEY."""
from __future__ import annotations

from datetime import timedelta

import pytest
from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import create_app
from portal.config import DEV_SECRET_KEY
from portal.extensions import db as _db

LONG_KEY = "k3y-" + "x" * 60


@pytest.fixture
def make_app(tmp_path):
    """create_app() over a throwaway SQLite file; engines are disposed afterwards."""
    apps = []

    def make(overrides: dict | None = None):
        base = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'config.db'}",
            "HUEY_URL": "memory://",
            "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
        app = create_app({**base, **(overrides or {})})
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            _db.engine.dispose()


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch):
    """The developer's own PORTAL_* settings must not leak into these tests."""
    import os

    for key in list(os.environ):
        if key.startswith("PORTAL_") and key not in ("PORTAL_TEST_DATABASE_URL",):
            monkeypatch.delenv(key)


# --- production refuses weak keys ------------------------------------------------------------


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "", None, "short", "x" * 31])
def test_production_refuses_a_default_or_short_secret_key(make_app, key):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        make_app({"ENV_NAME": "production", "SECRET_KEY": key})


def test_production_refuses_to_start_without_a_key_set(make_app):
    with pytest.raises(RuntimeError):
        make_app({"ENV_NAME": "production"})


def test_production_with_a_long_key_starts_hardened(make_app):
    app = make_app({"ENV_NAME": "production", "SECRET_KEY": LONG_KEY})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert not app.config.get("TESTING")


def test_production_key_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_ENV_NAME", "production")
    with pytest.raises(RuntimeError):
        make_app()
    monkeypatch.setenv("PORTAL_SECRET_KEY", LONG_KEY)
    app = make_app()
    assert app.config["ENV_NAME"] == "production"
    assert app.config["SECRET_KEY"] == LONG_KEY
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_development_keeps_cookies_usable_over_http(make_app):
    app = make_app()
    assert app.config["ENV_NAME"] == "development"
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_testing_config(make_app):
    app = make_app({"TESTING": True})
    assert app.config["ENV_NAME"] == "testing"
    assert app.config["SECRET_KEY"] != DEV_SECRET_KEY
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    assert app.config["RATELIMIT_ENABLED"] is True


def test_defaults(make_app):
    app = make_app()
    c = app.config
    assert c["SESSION_COOKIE_NAME"] == "portal_session"
    assert c["WTF_CSRF_TIME_LIMIT"] is None
    assert "X-CSRFToken" in c["WTF_CSRF_HEADERS"]
    assert c["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)
    assert c["SESSION_IDLE_TIMEOUT"] < c["PERMANENT_SESSION_LIFETIME"]
    assert c["PASSWORD_RESET_MAX_AGE"] <= timedelta(hours=24)
    assert c["PROXY_FIX"] == 0
    assert c["SQLALCHEMY_DATABASE_URI"] == c["DATABASE_URL"]


def test_default_database_and_folders_live_in_instance(tmp_path):
    from pathlib import Path

    from portal.config import load_config

    class FakeApp:
        instance_path = str(tmp_path)

        def __init__(self):
            from flask import Config

            self.config = Config(str(tmp_path))

    fake = FakeApp()
    load_config(fake, None)
    assert fake.config["DATABASE_URL"] == f"sqlite:///{Path(tmp_path) / 'portal.db'}"
    assert fake.config["MAIL_OUTBOX_DIR"] == str(Path(tmp_path) / "outbox")
    assert fake.config["DOCUMENTS_DIR"] == str(Path(tmp_path) / "documents")


# --- environment overrides -------------------------------------------------------------------


def test_environment_overrides_a_string(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_DEFAULT_CURRENCY", "EUR")
    monkeypatch.setenv("PORTAL_SUPPLIER_NAME", "Other Net a.s.")
    app = make_app()
    assert app.config["DEFAULT_CURRENCY"] == "EUR"
    assert app.config["SUPPLIER_NAME"] == "Other Net a.s."


def test_environment_values_take_the_type_of_the_default(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_PAGE_SIZE", "50")
    monkeypatch.setenv("PORTAL_OPERATOR_TOTP_REQUIRED", "yes")
    monkeypatch.setenv("PORTAL_MAIL_USE_TLS", "0")
    monkeypatch.setenv("PORTAL_SESSION_IDLE_TIMEOUT", "600")
    monkeypatch.setenv("PORTAL_LANGUAGES", "en, cs, de")
    monkeypatch.setenv("PORTAL_OPERATOR_TOTP_EXEMPT", '["a@example.com", "b@example.com"]')
    app = make_app()
    assert app.config["PAGE_SIZE"] == 50
    assert app.config["OPERATOR_TOTP_REQUIRED"] is True
    assert app.config["MAIL_USE_TLS"] is False
    assert app.config["SESSION_IDLE_TIMEOUT"] == timedelta(seconds=600)
    assert app.config["LANGUAGES"] == ["en", "cs", "de"]
    assert app.config["OPERATOR_TOTP_EXEMPT"] == ["a@example.com", "b@example.com"]


def test_environment_sets_settings_without_a_default(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_MAIL_SERVER", "smtp.example.com")
    app = make_app()
    assert app.config["MAIL_SERVER"] == "smtp.example.com"


def test_explicit_overrides_beat_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_DEFAULT_CURRENCY", "EUR")
    app = make_app({"DEFAULT_CURRENCY": "USD"})
    assert app.config["DEFAULT_CURRENCY"] == "USD"


def test_the_test_database_variable_is_not_configuration(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_DATABASE_URL", "postgresql://nowhere/none")
    monkeypatch.setenv("PORTAL_BENCH_DATABASE_URL", "postgresql://nowhere/none")
    app = make_app()
    assert "TEST_DATABASE_URL" not in app.config
    assert "BENCH_DATABASE_URL" not in app.config
    assert app.config["DATABASE_URL"].startswith("sqlite")


def test_environment_database_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("PORTAL_DATABASE_URL", url)
    app = create_app({"HUEY_URL": "memory://", "MAIL_OUTBOX_DIR": str(tmp_path / "o")})
    try:
        assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    finally:
        with app.app_context():
            _db.engine.dispose()


# --- behind a proxy --------------------------------------------------------------------------


def _echo_routes(app):
    @app.get("/_echo")
    def echo():
        return {"ip": request.remote_addr, "secure": request.is_secure, "host": request.host}


def test_proxy_fix_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_PROXY_FIX", "1")
    app = make_app({"TESTING": True})
    assert app.config["PROXY_FIX"] == 1
    assert isinstance(app.wsgi_app, ProxyFix)
    assert app.wsgi_app.x_for == 1 and app.wsgi_app.x_proto == 1
    _echo_routes(app)
    resp = app.test_client().get("/_echo", headers={
        "X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example"})
    assert resp.json == {"ip": "203.0.113.5", "secure": True, "host": "portal.example"}
    # Over HTTPS (as the proxy says), HSTS is sent.
    resp = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "max-age=" in resp.headers.get("Strict-Transport-Security", "")


def test_proxy_fix_trusts_only_as_many_hops_as_configured(make_app, monkeypatch):
    monkeypatch.setenv("PORTAL_PROXY_FIX", "1")
    app = make_app({"TESTING": True})
    _echo_routes(app)
    # A client-supplied X-Forwarded-For is prepended to; only the proxy's own entry counts.
    resp = app.test_client().get("/_echo", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.5"})
    assert resp.json["ip"] == "203.0.113.5"


def test_without_proxy_fix_forwarded_headers_are_ignored(make_app):
    app = make_app({"TESTING": True})
    assert not isinstance(app.wsgi_app, ProxyFix)
    _echo_routes(app)
    resp = app.test_client().get("/_echo", headers={"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"})
    assert resp.json["ip"] == "127.0.0.1"
    assert resp.json["secure"] is False
