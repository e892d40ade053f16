"""Password guessing against one account, without locking its owner out.

Three counts, all in Flask-Limiter's storage (per process on memory://, shared by every worker
on Redis):
- per client address, any account (`LOGIN_LIMIT_PER_IP`, the route's limit);
- per account *and* address (`LOGIN_LIMIT_PER_ACCOUNT`, the route's limit): a guesser's
  address gets 429, the owner's address does not;
- per account, any address, failures only (here). Past `LOGIN_ACCOUNT_SLOWDOWN_AFTER` of them
  within `LOGIN_ACCOUNT_FAILURE_WINDOW` the account is under attack: every address that then
  fails on it must wait before its next try, a delay doubling with each of its failures
  (`LOGIN_SLOWDOWN_DELAY` up to `LOGIN_SLOWDOWN_MAX_DELAY`). An address that has not failed is
  never held back, so the owner still logs in (or uses the e-mailed reset link), and many
  addresses each get a guess or two instead of five a minute. The owner is e-mailed when the
  account comes under attack, at most once per `LOGIN_FAILURE_ALERT_INTERVAL`.

A storage failure (Redis down) lets the attempt through: the route limits decide then, as
Flask-Limiter's own settings say."""
from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from flask import current_app

from portal.extensions import limiter

log = logging.getLogger(__name__)


def _seconds(value) -> int:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return max(1, int(seconds))


def _storage():
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    return limiter.storage


def _keys(face: str, email: str, ip: str | None) -> tuple[str, str, str, str]:
    account = f"login-throttle:{face}:{email}"
    pair = f"{account}|{ip or '-'}"
    return f"{account}:failures", f"{pair}:failures", f"{pair}:wait", f"{account}:alerted"


def wait_seconds(face: str, email: str, ip: str | None) -> int:
    """How long this address must still wait before it may try this account again; 0 when it
    may try now (always, for an address that has not failed while the account was under attack)."""
    storage = _storage()
    if storage is None:
        return 0
    _account, _pair, wait, _alerted = _keys(face, email, ip)
    try:
        if storage.get(wait) <= 0:
            return 0
        return max(1, math.ceil(storage.get_expiry(wait) - time.time()))
    except Exception:  # noqa: BLE001 — a limiter outage must not become a 500 at login
        log.warning("login throttle: storage unavailable", exc_info=True)
        return 0


def record_failure(face: str, email: str, ip: str | None) -> tuple[bool, int]:
    """Count a failed login of `email` from `ip`. Returns (alert, failures): alert is True for
    the one failure that should make us tell the owner (the account just came under attack
    and they have not been told within the alert interval); failures is the account's count."""
    storage = _storage()
    if storage is None:
        return False, 0
    config = current_app.config
    account, pair, wait, alerted = _keys(face, email, ip)
    window = _seconds(config["LOGIN_ACCOUNT_FAILURE_WINDOW"])
    try:
        account_failures = storage.incr(account, window)
        pair_failures = storage.incr(pair, window)
        if account_failures < int(config["LOGIN_ACCOUNT_SLOWDOWN_AFTER"]):
            return False, account_failures
        delay = min(_seconds(config["LOGIN_SLOWDOWN_DELAY"]) * 2 ** min(pair_failures - 1, 30),
                    _seconds(config["LOGIN_SLOWDOWN_MAX_DELAY"]))
        storage.clear(wait)
        storage.incr(wait, delay)
        # incr is atomic: of many failing workers exactly one sees 1, and sends the e-mail.
        first = storage.incr(alerted, _seconds(config["LOGIN_FAILURE_ALERT_INTERVAL"])) == 1
        return first, account_failures
    except Exception:  # noqa: BLE001
        log.warning("login throttle: storage unavailable", exc_info=True)
        return False, 0


def record_success(face: str, email: str, ip: str | None) -> None:
    """The owner got in from this address: its own failures are forgiven (the account's are
    not — the attack may go on elsewhere)."""
    storage = _storage()
    if storage is None:
        return
    _account, pair, wait, _alerted = _keys(face, email, ip)
    try:
        storage.clear(pair)
        storage.clear(wait)
    except Exception:  # noqa: BLE001
        log.warning("login throttle: storage unavailable", exc_info=True)
