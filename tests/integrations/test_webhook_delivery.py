"""Webhook delivery (portal/integrations/webhooks.py) against a real HTTP receiver on loopback,
started by the test: signatures verify with the standardwebhooks library, a 500 is retried,
a service's events arrive in order, a day of failures ends in `failed`, a rotation signs
with both secrets, a rolled-back change sends nothing."""
from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from portal.domain import lifecycle as lc
from portal.domain import webhooks as rules
from portal.domain.actors import Actor
from portal.integrations import webhooks as delivery
from portal.models import DeliveryState, ServiceState, WebhookDelivery, WebhookEvent
from portal.models.base import utcnow
from tests.domain.lifecycle_fixtures import service

SYSTEM = Actor.system("test")
TODAY = date(2026, 12, 4)
FAST = delivery.Settings(connect_timeout=1, read_timeout=2, budget_seconds=10)


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1:0 that records every request; `statuses` are
    answered in turn (then 200)."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 — http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?src=portal"

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _h, body in self.requests]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _endpoint(db, url, types=("service.blocked", "service.unblocked")):
    endpoint = rules.create_endpoint(db, SYSTEM, url=url, description="test", event_types=list(types),
                                     allow_http_loopback=True)
    db.commit()
    return endpoint


def _active_service(db):
    svc = service(state=ServiceState.ACTIVE)
    db.commit()
    return svc


def _block(db, svc):
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    db.commit()


def _unblock(db, svc):
    lc.unblock(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    db.commit()


def _deliveries(db):
    db.expire_all()
    return list(db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _due_now(db):
    """Make every pending delivery due (instead of waiting out the back-off)."""
    for d in _deliveries(db):
        if d.state == DeliveryState.PENDING:
            d.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.commit()


def test_delivered_and_the_signature_verifies(db, receiver):
    endpoint = _endpoint(db, receiver.url)
    svc = _active_service(db)
    _block(db, svc)
    result = delivery.run_pass(db, FAST)
    assert result.dispatched == 1 and result.delivered == 1
    [(headers, body)] = receiver.requests
    payload = Webhook(endpoint.secret).verify(body, headers)
    assert payload["type"] == "service.blocked" and payload["data"]["id"] == svc.id
    event = db.scalar(select(WebhookEvent))
    assert headers["webhook-id"] == f"evt_{event.id}"
    assert headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook(delivery.new_secret()).verify(body, headers)
    [d] = _deliveries(db)
    assert (d.state, d.attempts, d.last_status_code, d.next_attempt_at) == (DeliveryState.DELIVERED, 1, 200, None)
    assert d.delivered_at is not None


def test_a_500_is_retried_with_back_off_then_delivered(db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    receiver.statuses = [500]
    result = delivery.run_pass(db, FAST)
    assert (result.delivered, result.retrying) == (0, 1)
    [d] = _deliveries(db)
    assert (d.state, d.attempts, d.last_status_code, d.last_error) == (DeliveryState.PENDING, 1, 500, "HTTP 500")
    wait = (d.next_attempt_at - d.last_attempt_at).total_seconds()
    assert 20 <= wait <= 40  # 30 s ± jitter
    assert delivery.run_pass(db, FAST).delivered == 0  # not due yet
    _due_now(db)
    assert delivery.run_pass(db, FAST).delivered == 1
    [d] = _deliveries(db)
    assert (d.state, d.attempts, d.last_status_code) == (DeliveryState.DELIVERED, 2, 200)
    assert len(receiver.requests) == 2
    assert receiver.requests[0][0]["webhook-id"] == receiver.requests[1][0]["webhook-id"]


def test_back_off_grows_and_is_capped():
    waits = [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 10, 30)]
    assert 24 <= waits[0] <= 36 and 48 <= waits[1] <= 72 and 96 <= waits[2] <= 144
    assert waits[3] <= 3600 * 1.2 and waits[4] <= 3600 * 1.2


def test_order_per_service_is_kept(db, receiver):
    """block, unblock, block of one service: the unblock waits while the block is retried."""
    _endpoint(db, receiver.url)
    svc, other = _active_service(db), _active_service(db)
    _block(db, svc)
    _unblock(db, svc)
    _block(db, svc)
    _block(db, other)
    receiver.statuses = [500]  # the first delivery (svc's block) fails once
    delivery.run_pass(db, FAST)
    # Nothing of svc's after its failed block.
    sent_for_svc = [b["type"] for b in receiver.bodies() if b["data"]["id"] == svc.id]
    assert sent_for_svc == ["service.blocked"]
    for _ in range(5):
        _due_now(db)
        delivery.run_pass(db, FAST)
    sent_for_svc = [b["type"] for b in receiver.bodies() if b["data"]["id"] == svc.id]
    assert sent_for_svc == ["service.blocked", "service.blocked", "service.unblocked", "service.blocked"]
    assert [b["data"]["id"] for b in receiver.bodies()].count(other.id) == 1
    assert {d.state for d in _deliveries(db)} == {DeliveryState.DELIVERED}


def test_gives_up_after_a_day_and_marks_failed(db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    receiver.statuses = [503] * 10
    delivery.run_pass(db, FAST)
    [d] = _deliveries(db)
    assert d.state == DeliveryState.PENDING
    assert d.give_up_at - db.scalar(select(WebhookEvent)).created_at == timedelta(days=1)
    d.give_up_at = utcnow() - timedelta(seconds=1)  # a day has passed
    d.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.commit()
    result = delivery.run_pass(db, FAST)
    assert result.failed == 1
    [d] = _deliveries(db)
    assert (d.state, d.attempts, d.last_status_code, d.next_attempt_at) == (DeliveryState.FAILED, 2, 503, None)


def test_the_last_retry_is_at_the_give_up_time(db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    db.execute(WebhookEvent.__table__.update().values(created_at=utcnow() - timedelta(hours=23, minutes=59, seconds=50)))
    db.commit()
    receiver.statuses = [500]
    delivery.run_pass(db, FAST)
    [d] = _deliveries(db)
    assert d.state == DeliveryState.PENDING and d.next_attempt_at == d.give_up_at


def test_rotation_signs_with_old_and_new_secret(db, receiver):
    endpoint = _endpoint(db, receiver.url)
    old = endpoint.secret
    new = rules.rotate_secret(db, SYSTEM, endpoint)
    db.commit()
    _block(db, _active_service(db))
    delivery.run_pass(db, FAST)
    [(headers, body)] = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    # After the grace period only the new secret signs.
    endpoint.previous_secret_until = utcnow() - timedelta(seconds=1)
    db.commit()
    svc = _active_service(db)
    _block(db, svc)
    delivery.run_pass(db, FAST)
    headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_nothing_is_delivered_for_a_rolled_back_change(db, receiver):
    _endpoint(db, receiver.url)
    svc = _active_service(db)
    lc.block(db, svc, actor=SYSTEM, on=TODAY, reason="test", today=TODAY)
    db.flush()
    db.rollback()
    result = delivery.run_pass(db, FAST)
    assert (result.dispatched, result.delivered) == (0, 0)
    assert receiver.requests == [] and _deliveries(db) == []


def test_only_subscribed_active_endpoints_get_the_event(db, receiver):
    _endpoint(db, receiver.url, types=["service.unblocked"])
    inactive = _endpoint(db, receiver.url)
    inactive.active = False
    db.commit()
    _block(db, _active_service(db))
    result = delivery.run_pass(db, FAST)
    assert result.dispatched == 1 and receiver.requests == [] and _deliveries(db) == []
    assert db.scalar(select(WebhookEvent)).dispatched_at is not None


def test_a_dead_endpoint_does_not_hold_up_the_others(db, receiver):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    dead = _endpoint(db, dead_url)
    _endpoint(db, receiver.url)
    for _ in range(3):
        _block(db, _active_service(db))
    result = delivery.run_pass(db, FAST)
    assert result.delivered == 3  # the live endpoint got everything
    dead_rows = [d for d in _deliveries(db) if d.endpoint_id == dead.id]
    assert sum(d.attempts for d in dead_rows) == 1  # tried once, then left alone for the pass
    assert {d.last_error for d in dead_rows if d.attempts} == {"connection refused"}
    assert all(d.state == DeliveryState.PENDING for d in dead_rows)


def test_a_redirect_is_not_followed(db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    receiver.statuses = [302]
    delivery.run_pass(db, FAST)
    [d] = _deliveries(db)
    assert (d.state, d.last_status_code) == (DeliveryState.PENDING, 302)
    assert len(receiver.requests) == 1


def test_replay_sends_a_delivered_one_again(db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    delivery.run_pass(db, FAST)
    [d] = _deliveries(db)
    rules.replay_delivery(db, SYSTEM, d)
    db.commit()
    assert delivery.run_pass(db, FAST).delivered == 1
    assert len(receiver.requests) == 2
    [d] = _deliveries(db)
    assert (d.state, d.attempts) == (DeliveryState.DELIVERED, 2)


def test_the_cli_runs_a_pass(app, db, receiver):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    out = app.test_cli_runner().invoke(args=["webhooks", "deliver"])
    assert out.exit_code == 0, out.output
    assert "1 delivered" in out.output
    assert len(receiver.requests) == 1


def test_the_job_queue_runs_a_pass_every_minute(app, db, receiver, monkeypatch):
    from datetime import datetime

    from portal.jobs import get_queue

    huey = get_queue(app).huey
    due = [t for t in huey.read_periodic(datetime(2026, 12, 4, 10, 17)) if t.name == "webhooks_deliver"]
    assert len(due) == 1
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    due[0].execute()  # what the consumer does when the minute comes
    assert len(receiver.requests) == 1


def test_old_finished_history_is_pruned_pending_kept(db, receiver):
    _endpoint(db, receiver.url)
    for _ in range(3):
        _block(db, _active_service(db))
    receiver.statuses = [200, 200, 500]
    delivery.run_pass(db, FAST)
    states = sorted(d.state for d in _deliveries(db))
    assert DeliveryState.PENDING in states and DeliveryState.DELIVERED in states
    db.execute(WebhookEvent.__table__.update().values(created_at=utcnow() - timedelta(days=31)))
    db.commit()
    assert delivery.prune(db, timedelta(days=30)) == 2
    db.expire_all()
    assert [d.state for d in _deliveries(db)] == [DeliveryState.PENDING]
    assert len(list(db.scalars(select(WebhookEvent)))) == 1


def test_an_inactive_endpoints_deliveries_wait(db, receiver):
    endpoint = _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    delivery.dispatch(db)
    endpoint.active = False
    db.commit()
    assert delivery.run_pass(db, FAST).delivered == 0 and receiver.requests == []
    endpoint.active = True
    db.commit()
    assert delivery.run_pass(db, FAST).delivered == 1


def test_a_replay_during_the_send_is_not_overwritten(db, receiver, monkeypatch):
    _endpoint(db, receiver.url)
    _block(db, _active_service(db))
    delivery.dispatch(db)
    real, engine = delivery._send_group, db.get_bind()

    def send_then_replay(messages, settings, deadline):
        outcomes = real(messages, settings, deadline)
        with engine.begin() as conn:  # staff pressed Replay while the answer was on its way
            conn.execute(WebhookDelivery.__table__.update().values(next_attempt_at=utcnow(), state="pending"))
        return outcomes

    monkeypatch.setattr(delivery, "_send_group", send_then_replay)
    result = delivery.deliver_batch(db, FAST, float("inf"), set(), delivery.PassResult(),
                                    delivery.ThreadPoolExecutor(max_workers=1))
    assert result == 1
    [d] = _deliveries(db)
    assert d.state == DeliveryState.PENDING  # the replay stands


def test_a_pass_can_be_queued_now_but_not_inline(app, tmp_path):
    from portal.jobs import JobQueue, get_queue

    assert get_queue(app).run_periodic_soon("webhooks_deliver") is False  # memory://: would run in the request
    queue = JobQueue(app, url=f"sqlite:///{tmp_path / 'jobs.db'}", name="webhooks-test")
    assert queue.run_periodic_soon("webhooks_deliver") is True
    assert queue.huey.pending_count() == 1
    assert queue.run_periodic_soon("no_such_task") is False
