"""Configuration: defaults here; `instance/portal.cfg` (a Python file) and `PORTAL_*`
environment variables override them, in that order."""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 — refused in production


class DefaultConfig:
    # "development" | "production" | "testing"
    ENV_NAME = "development"
    SECRET_KEY = DEV_SECRET_KEY
    DATABASE_URL: str | None = None  # default: sqlite file in instance/

    # Sessions: hardened cookies; the server-side session row is the real authority.
    SESSION_COOKIE_NAME = "portal_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # True in production (set by create_app)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    SESSION_IDLE_TIMEOUT = timedelta(hours=2)
    # The cookie's lifetime runs from login like the session row's expires_at: re-signing
    # and re-sending an unchanged cookie on every response (~0.1 ms) would extend nothing.
    SESSION_REFRESH_EACH_REQUEST = False

    # CSRF: no time limit — a long-open page must still submit (the token is bound to the session).
    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_HEADERS = ["X-CSRFToken", "X-CSRF-Token"]

    # Rate limits: in-memory counts per worker process; use Redis in production.
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    LOGIN_LIMIT_PER_IP = "20 per minute;200 per hour"
    # Per account AND client address (a guesser's address is refused, not the owner's); the
    # second-factor step counts per account.
    LOGIN_LIMIT_PER_ACCOUNT = "5 per minute;30 per hour"
    # One account failing from many addresses is slowed, not locked (portal/security/throttle.py).
    LOGIN_ACCOUNT_SLOWDOWN_AFTER = 10
    LOGIN_ACCOUNT_FAILURE_WINDOW = timedelta(hours=1)
    LOGIN_SLOWDOWN_DELAY = timedelta(seconds=5)
    LOGIN_SLOWDOWN_MAX_DELAY = timedelta(minutes=15)
    LOGIN_FAILURE_ALERT_INTERVAL = timedelta(hours=24)
    # /cancel is open to anyone: limit how often one address may ask for cancellation links.
    CANCEL_LIMIT_PER_IP = "10 per hour"
    # /pay/<token> is open to anyone holding a link: limit how fast one address may try tokens.
    PAY_LINK_LIMIT_PER_IP = "30 per minute;300 per hour"
    # The largest request body (bank statements are the largest uploads): more is a 413.
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    # Files on request replies (both faces): each at most this big, at most this many a reply.
    REQUEST_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
    REQUEST_ATTACHMENT_MAX_COUNT = 5
    RATELIMIT_HEADERS_ENABLED = False

    # Mail: without MAIL_SERVER, messages are written as .eml files to instance/outbox/.
    MAIL_SERVER: str | None = None
    MAIL_PORT = 587
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_USE_TLS = True
    MAIL_FROM = "Portal <noreply@example.com>"
    MAIL_OUTBOX_DIR: str | None = None  # default: instance/outbox

    PASSWORD_RESET_MAX_AGE = timedelta(hours=1)
    # A pay link works until this many days after its invoice's due date (its reminder's
    # pay-by date): long enough to outlive the dunning ladder, since the link printed on a
    # stored PDF cannot be renewed. The expiry is inside each link, so changing this changes
    # only links made afterwards.
    PAY_LINK_DAYS = 90

    # Money and the supplier printed on documents (the partner record wins when present).
    DEFAULT_CURRENCY = "CZK"
    SUPPLIER_NAME = "Example Net s.r.o."
    SUPPLIER_ADDRESS = "Příkladná 1, 110 00 Praha 1"
    SUPPLIER_COMPANY_ID = "12345679"
    SUPPLIER_VAT_ID = "CZ12345679"
    SUPPLIER_IBAN = "CZ6508000000192000145399"
    SUPPLIER_EMAIL = "billing@example.com"
    SUPPLIER_PHONE = "+420 800 000 000"

    # Languages offered; the user's setting wins, else Accept-Language.
    LANGUAGES = ["en", "cs"]
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "Europe/Prague"

    # Behind a reverse proxy: number of proxies to trust for X-Forwarded-* (0 = none).
    PROXY_FIX = 0

    DOCUMENTS_DIR: str | None = None  # default: instance/documents
    HUEY_URL: str | None = None  # default: sqlite file in instance/; redis://… in production
    HUEY_NAME = "portal"  # queue name (one Redis may serve several portals)
    # A running job's worker renews its lease every JOB_LEASE_SECONDS / 4; a job whose lease
    # is older than JOB_LEASE_SECONDS lost its worker (killed, machine gone): interrupted.
    JOB_LEASE_SECONDS = 120
    BILLING_BATCH_SIZE = 500  # customers per committed batch of a billing run
    JOB_TEST_BATCH_DELAY = 0.0  # tests only: seconds a job waits after each progress report
    UPLOADS_DIR: str | None = None  # default: instance/uploads; shared storage with remote workers
    # Bank statements are refused when for an account the portal does not know: the partners'
    # IBAN and local account, and these (IBAN or "prefix-number/bank"), e.g. a second account.
    STATEMENT_ACCOUNTS: list[str] = []

    # Operators must enrol TOTP; the demo operator may be exempt.
    OPERATOR_TOTP_REQUIRED = False
    OPERATOR_TOTP_EXEMPT = ["operator@example.com"]
    # How long the e-mailed link of a new operator (created without a password) stays valid.
    OPERATOR_INVITATION_MAX_AGE = timedelta(days=3)
    # How long a selfcare invitation link (staff or the account owner invites a login) stays valid.
    CUSTOMER_INVITATION_MAX_AGE = timedelta(days=7)

    PAGE_SIZE = 25

    # /api/v1: requests per token (per client address without one); counted in
    # RATELIMIT_STORAGE_URI, so Redis in production.
    API_RATE_LIMIT = "1200 per minute"
    API_PAGE_SIZE = 50
    API_MAX_PAGE_SIZE = 500

    # Webhooks: endpoints must be https://, except http:// on loopback when this is True
    # (tests, a receiver on the same machine). Timeouts per request; a delivery pass (every
    # minute on the job consumer) stops claiming work after WEBHOOKS_PASS_SECONDS.
    WEBHOOKS_ALLOW_HTTP_LOOPBACK = False
    WEBHOOKS_CONNECT_TIMEOUT = 3.0
    WEBHOOKS_READ_TIMEOUT = 10.0
    WEBHOOKS_PASS_SECONDS = 50.0
    WEBHOOKS_KEEP_DAYS = 30  # delivered and failed deliveries, with their events, then pruned

    # RADIUS (portal.integrations.radius). The reply attributes per NAS type are configuration:
    # RADIUS_NAS_TYPE picks one of RADIUS_PROFILES; each lists [attribute, op, value template]
    # for an accepted service ("accept") and for the walled-garden group ("walled_garden").
    # Templates see down_kbps, up_kbps, down_bps, up_bps, ip_address. Mikrotik-Rate-Limit is
    # "rx/tx" from the router's side: the customer's upload first.
    RADIUS_ENABLED = True
    RADIUS_NAS_TYPE = "mikrotik"
    RADIUS_WALLED_GARDEN_GROUP = "walled-garden"
    RADIUS_PROFILES = {
        "mikrotik": {
            "accept": [["Mikrotik-Rate-Limit", ":=", "{up_kbps}k/{down_kbps}k"]],
            "walled_garden": [["Mikrotik-Address-List", ":=", "walled-garden"]],
        },
        "wispr": {
            "accept": [["WISPr-Bandwidth-Max-Up", ":=", "{up_bps}"], ["WISPr-Bandwidth-Max-Down", ":=", "{down_bps}"]],
            "walled_garden": [["Framed-Pool", ":=", "walled-garden"]],
        },
    }
    RADIUS_LOCAL_SECRET = "testing123"  # the 127.0.0.1 client of `flask radius config` (FreeRADIUS's example)
    RADIUS_RETRY_BASE_SECONDS = 30.0  # a failed apply is retried after 30 s · 2ⁿ, at most an hour

    # Absolute links in e-mails sent outside a request (CLI, jobs).
    BASE_URL = "http://127.0.0.1:5000"


class TestingConfig(DefaultConfig):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key"
    RATELIMIT_ENABLED = True
    WEBHOOKS_ALLOW_HTTP_LOOPBACK = True  # the tests' receivers listen on 127.0.0.1


def _coerce(raw: str, default: object) -> object:
    """Environment values are strings; read them in the type of the default."""
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, timedelta):
        return timedelta(seconds=int(raw))
    if isinstance(default, list):
        return json.loads(raw) if raw.strip().startswith("[") else [p.strip() for p in raw.split(",")]
    return raw


def load_config(app, overrides: dict | None = None) -> None:
    """Defaults → instance/portal.cfg → PORTAL_* environment → explicit overrides."""
    base = TestingConfig if (overrides or {}).get("TESTING") else DefaultConfig
    app.config.from_object(base)
    app.config.from_pyfile("portal.cfg", silent=True)
    for key, raw in os.environ.items():
        if not key.startswith("PORTAL_"):
            continue
        name = key[len("PORTAL_"):]
        if name in {"TEST_DATABASE_URL", "BENCH_DATABASE_URL"}:
            continue
        default = app.config.get(name)
        app.config[name] = _coerce(raw, default) if default is not None else raw
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'portal.db'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    # A pooled connection the server has cut (restart, failover, pgbouncer restart, an idle
    # timeout) is found by a cheap ping at checkout and replaced, instead of costing the
    # request that draws it a 500; connections are renewed hourly in any case.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": True,
        "pool_recycle": 3600,
        **(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}),
    }
    app.config["MAIL_OUTBOX_DIR"] = app.config.get("MAIL_OUTBOX_DIR") or str(instance / "outbox")
    app.config["DOCUMENTS_DIR"] = app.config.get("DOCUMENTS_DIR") or str(instance / "documents")
    app.config["UPLOADS_DIR"] = app.config.get("UPLOADS_DIR") or str(instance / "uploads")
    if not app.config.get("HUEY_URL"):
        app.config["HUEY_URL"] = f"sqlite:///{instance / 'jobs.db'}"

    if app.config["ENV_NAME"] == "production":
        if app.config["SECRET_KEY"] in {DEV_SECRET_KEY, "", None} or len(str(app.config["SECRET_KEY"])) < 32:
            raise RuntimeError(
                "Refusing to start in production with the default or a short SECRET_KEY: "
                "set PORTAL_SECRET_KEY to a random value of at least 32 characters."
            )
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
        # Flask's own default is "http", so setdefault() would never apply.
        if app.config.get("PREFERRED_URL_SCHEME", "http") == "http":
            app.config["PREFERRED_URL_SCHEME"] = "https"
