"""Webhook delivery: the outbox's events fanned out to the endpoints that subscribe to them,
then sent, signed per the Standard Webhooks specification, with retries.

A pass (`run_pass`, from the periodic job or `flask webhooks deliver`):

1. **Fan-out.** Events not dispatched yet, oldest first, become one delivery per active
   endpoint subscribed to their type (an event nobody wants is just marked dispatched). Each
   event is claimed with an UPDATE … WHERE dispatched_at IS NULL, so two passes never make
   the same deliveries (and the unique (event, endpoint) pair guards it too).
2. **Delivery.** Due deliveries are claimed in batches (their next try moved a few minutes
   ahead, so a second pass leaves them alone and a pass that dies retries them later), then
   sent outside any transaction, one thread per endpoint, in event order per endpoint. A
   delivery waits while an earlier delivery of the same endpoint and subject is still
   pending: a receiver sees a service's events in the order they happened.
3. **Results.** A 2xx answer delivers. Anything else (other status, timeout, refused
   connection, a redirect — never followed) counts an attempt and sets the next try with
   exponential back-off and jitter (30 s · 2ⁿ, at most an hour), until `give_up_at` (a day
   after the event): then the delivery is failed.

Nobody waits for an endpoint but this pass: connect and read have short timeouts; an endpoint
that fails is left alone for the rest of the pass (its other deliveries keep their turn);
every endpoint's share of a batch is bounded in time; the pass stops claiming work when its
time budget is spent. Events older than WEBHOOKS_KEEP_DAYS go with their finished deliveries."""
from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import secrets
import socket
import ssl
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, delete, exists, select, update
from sqlalchemy.orm import Session, aliased, selectinload
from standardwebhooks import Webhook

from portal.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.models.base import utcnow

log = logging.getLogger("portal.webhooks")

GIVE_UP_AFTER = timedelta(days=1)
ROTATION_GRACE = timedelta(hours=24)
BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0
CLAIM_FOR = timedelta(minutes=5)  # a claimed delivery is retried after this if its pass died
USER_AGENT = "portal-webhooks/1"
PRUNE_EVERY = 3600.0  # seconds: the history is pruned hourly, not at every pass
_last_prune: float | None = None  # in this process
RESPONSE_READ_LIMIT = 64 * 1024


@dataclass
class Settings:
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    budget_seconds: float = 50.0  # per pass
    endpoint_seconds: float = 5.0  # one endpoint's share of a batch
    batch: int = 200
    threads: int = 8
    keep: timedelta = timedelta(days=30)  # delivered and failed history, then pruned

    @classmethod
    def from_config(cls, config) -> Settings:
        return cls(
            connect_timeout=float(config.get("WEBHOOKS_CONNECT_TIMEOUT", 3.0)),
            read_timeout=float(config.get("WEBHOOKS_READ_TIMEOUT", 10.0)),
            budget_seconds=float(config.get("WEBHOOKS_PASS_SECONDS", 50.0)),
            keep=timedelta(days=int(config.get("WEBHOOKS_KEEP_DAYS", 30))),
        )


@dataclass
class PassResult:
    dispatched: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    deferred: int = 0
    pruned: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: "whsec_" + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s · 2ⁿ⁻¹, at most an hour, ±20 %."""
    seconds = min(BACKOFF_BASE * 2 ** max(0, attempts - 1), BACKOFF_CAP)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


# --------------------------------------------------------------------------------- fan-out

def prune(session: Session, keep: timedelta, now: datetime | None = None, chunk: int = 5000) -> int:
    """Forget events older than `keep` with their finished deliveries (a pending one keeps
    its event); commits. Returns how many events went."""
    cutoff = (now or utcnow()) - keep
    pruned = 0
    while True:
        ids = list(session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.created_at < cutoff, WebhookEvent.dispatched_at.is_not(None),
                                          ~exists().where(WebhookDelivery.event_id == WebhookEvent.id,
                                                          WebhookDelivery.state == DeliveryState.PENDING))
            .order_by(WebhookEvent.id).limit(chunk)))
        if not ids:
            return pruned
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids)))
        session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        session.commit()
        pruned += len(ids)
        if len(ids) < chunk:
            return pruned


def dispatch(session: Session, now: datetime | None = None, limit: int = 500) -> int:
    """Make the deliveries of up to `limit` undispatched events; commits. Returns how many
    events were dispatched."""
    now = now or utcnow()
    events = session.execute(
        select(WebhookEvent.id, WebhookEvent.type, WebhookEvent.subject, WebhookEvent.created_at)
        .where(WebhookEvent.dispatched_at.is_(None)).order_by(WebhookEvent.id).limit(limit)
    ).all()
    if not events:
        return 0
    claimed = set(session.scalars(
        update(WebhookEvent)
        .where(WebhookEvent.id.in_([e.id for e in events]), WebhookEvent.dispatched_at.is_(None))
        .values(dispatched_at=now).returning(WebhookEvent.id)
    ))
    endpoints = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.event_types)
                                .where(WebhookEndpoint.active.is_(True))).all()
    rows = []
    for event in events:
        if event.id not in claimed:
            continue
        for endpoint in endpoints:
            if event.type in (endpoint.event_types or ()):
                rows.append({"event_id": event.id, "endpoint_id": endpoint.id, "subject": event.subject,
                             "state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now,
                             "give_up_at": event.created_at + GIVE_UP_AFTER, "last_error": "",
                             "created_at": now, "updated_at": now})
    if rows:
        session.execute(WebhookDelivery.__table__.insert(), rows)
    session.commit()
    return len(claimed)


# -------------------------------------------------------------------------------- sending

@dataclass
class _Message:
    delivery_id: int
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Outcome:
    delivery_id: int
    attempted: bool
    status: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(endpoint: WebhookEndpoint, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers; during a rotation's grace both secrets sign
    (space-separated signatures), so a receiver with either secret verifies."""
    signatures = " ".join(Webhook(s).sign(msg_id, at, body) for s in endpoint.secrets_at(at))
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def body_of(event: WebhookEvent) -> bytes:
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()


def message_id(event_id: int) -> str:
    """The same for every attempt and replay of the event, so a receiver can drop repeats."""
    return f"evt_{event_id}"


class _Connection:
    """One keep-alive connection to one endpoint, for the messages of one batch."""

    def __init__(self, url: str, settings: Settings):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.settings = settings
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        timeout = self.settings.connect_timeout
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.settimeout(self.settings.read_timeout)
        return conn

    def post(self, target: str, headers: dict[str, str], body: bytes) -> int:
        for fresh in (False, True):
            reused = self.conn is not None and not fresh
            if self.conn is None or fresh:
                self.close()
                self.conn = self._open()
            try:
                self.conn.request("POST", target, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read(RESPONSE_READ_LIMIT)
                if response.will_close or not response.isclosed():
                    self.close()  # closing, or a body longer than we read
                return response.status
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _send_group(messages: list[_Message], settings: Settings, deadline: float) -> list[_Outcome]:
    """Send one endpoint's messages in order; stop at its first failure (the rest keep their
    turn for the next pass) or when its time is up."""
    if not messages:
        return []
    outcomes: list[_Outcome] = []
    conn = _Connection(messages[0].url, settings)
    own_deadline = min(deadline, time.monotonic() + settings.endpoint_seconds)
    try:
        for i, msg in enumerate(messages):
            if time.monotonic() >= own_deadline:
                outcomes += [_Outcome(m.delivery_id, attempted=False) for m in messages[i:]]
                break
            parts = urlsplit(msg.url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                status = conn.post(target, msg.headers, msg.body)
                outcome = _Outcome(msg.delivery_id, attempted=True, status=status,
                                   error="" if 200 <= status < 300 else f"HTTP {status}")
            except Exception as exc:  # noqa: BLE001 — whatever the endpoint does, it is this delivery's failure
                if not isinstance(exc, OSError | http.client.HTTPException):
                    log.warning("webhook delivery %s failed unexpectedly", msg.delivery_id, exc_info=True)
                outcome = _Outcome(msg.delivery_id, attempted=True, error=_describe(exc))
            outcomes.append(outcome)
            if not outcome.ok:
                outcomes += [_Outcome(m.delivery_id, attempted=False) for m in messages[i + 1:]]
                break
    finally:
        conn.close()
    return outcomes


# -------------------------------------------------------------------------------- the pass

def _due(session: Session, now: datetime, limit: int, skip_endpoints: set[int]) -> list[int]:
    earlier = aliased(WebhookDelivery)
    blocked = exists().where(and_(
        earlier.endpoint_id == WebhookDelivery.endpoint_id, earlier.subject == WebhookDelivery.subject,
        earlier.state == DeliveryState.PENDING, earlier.event_id < WebhookDelivery.event_id))
    stmt = (select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now, ~blocked,
                   WebhookEndpoint.active.is_(True))  # an inactive endpoint's deliveries wait
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    if skip_endpoints:
        stmt = stmt.where(WebhookDelivery.endpoint_id.not_in(skip_endpoints))
    return list(session.scalars(stmt))


def _claim(session: Session, ids: list[int], now: datetime, until: datetime) -> list[WebhookDelivery]:
    claimed = list(session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), WebhookDelivery.state == DeliveryState.PENDING,
               WebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=until).returning(WebhookDelivery.id)
    ))
    session.commit()
    if not claimed:
        return []
    return list(session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.id.in_(claimed))
        .options(selectinload(WebhookDelivery.event), selectinload(WebhookDelivery.endpoint))
        .order_by(WebhookDelivery.event_id)
    ))


def _result_row(delivery: WebhookDelivery, outcome: _Outcome, now: datetime, result: PassResult) -> dict:
    """The delivery's columns after `outcome` (every row has every key: one executemany)."""
    row = {"b_id": delivery.id, "b_claimed": delivery.next_attempt_at, "state": delivery.state, "attempts": delivery.attempts,
           "next_attempt_at": now, "last_attempt_at": delivery.last_attempt_at,
           "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
           "delivered_at": delivery.delivered_at, "updated_at": now}
    if not outcome.attempted:
        result.deferred += 1  # not tried: due again, in its turn
        return row
    attempts = delivery.attempts + 1
    row.update(attempts=attempts, last_attempt_at=now, last_status_code=outcome.status,
               last_error=outcome.error[:300])
    if outcome.ok:
        row.update(state=DeliveryState.DELIVERED, delivered_at=now, next_attempt_at=None)
        result.delivered += 1
    elif now >= delivery.give_up_at:
        row.update(state=DeliveryState.FAILED, next_attempt_at=None)
        result.failed += 1
    else:
        row.update(next_attempt_at=min(now + backoff(attempts), delivery.give_up_at))
        result.retrying += 1
    return row


_table = WebhookDelivery.__table__
# Only while the claim holds: a replay meanwhile (a new next try) is not overwritten.
_WRITE_RESULT = (update(_table).where(_table.c.id == bindparam("b_id"), _table.c.next_attempt_at == bindparam("b_claimed"))
                 .values({c: bindparam(c) for c in ("state", "attempts", "next_attempt_at", "last_attempt_at",
                                                    "last_status_code", "last_error", "delivered_at", "updated_at")}))


def deliver_batch(session: Session, settings: Settings, deadline: float, skip_endpoints: set[int],
                  result: PassResult, pool: ThreadPoolExecutor) -> int:
    """Claim, send and record one batch of due deliveries; commits. Returns how many were claimed."""
    now = utcnow()
    deliveries = _claim(session, _due(session, now, settings.batch, skip_endpoints), now, now + CLAIM_FOR)
    if not deliveries:
        return 0
    sent_at = utcnow()
    groups: dict[int, list[_Message]] = defaultdict(list)
    for d in deliveries:
        body = body_of(d.event)
        groups[d.endpoint_id].append(_Message(d.id, d.endpoint.url,
                                              signed_headers(d.endpoint, message_id(d.event_id), sent_at, body), body))
    outcomes: dict[int, _Outcome] = {}
    futures = {endpoint_id: pool.submit(_send_group, msgs, settings, deadline) for endpoint_id, msgs in groups.items()}
    for endpoint_id, future in futures.items():
        for outcome in future.result():
            outcomes[outcome.delivery_id] = outcome
            if outcome.attempted and not outcome.ok:
                skip_endpoints.add(endpoint_id)  # down: not tried again in this pass
    now = utcnow()
    rows = [_result_row(d, outcomes.get(d.id, _Outcome(d.id, attempted=False)), now, result) for d in deliveries]
    session.connection().execute(_WRITE_RESULT, rows)
    session.commit()
    return len(deliveries)


def run_pass(session: Session, settings: Settings | None = None) -> PassResult:
    """Fan out what is new, then deliver what is due until nothing is or the budget is spent."""
    settings = settings or Settings()
    deadline = time.monotonic() + settings.budget_seconds
    result = PassResult()
    skip: set[int] = set()
    global _last_prune
    if _last_prune is None or time.monotonic() - _last_prune >= PRUNE_EVERY:
        result.pruned = prune(session, settings.keep)
        _last_prune = time.monotonic()
    with ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="webhooks") as pool:
        while time.monotonic() < deadline:
            dispatched = dispatch(session)
            result.dispatched += dispatched
            claimed = deliver_batch(session, settings, deadline, skip, result, pool)
            if not dispatched and not claimed:
                break
    if any(result.as_dict().values()):
        log.info("webhooks pass: %s", result.as_dict())
    return result
