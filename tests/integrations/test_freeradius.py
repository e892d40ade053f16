"""The network obeys the portal, with the real FreeRADIUS (Debian's, installed by
scripts/system-packages test): `flask radius config` writes a configuration into a temporary
folder pointing at the test database, `freeradius -f` runs it as a child process on loopback
high ports, and `radclient` asks it. Active → Access-Accept with the address and the rate
limit; blocked → accept with the walled-garden attributes; cancelled, unknown or a wrong
password → Access-Reject; after a block in the portal and a sync pass, the next request is
answered the new way. Without FreeRADIUS the tests fail saying what to install (never a skip)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from datetime import date

import pytest

from portal.domain import lifecycle, network
from portal.integrations import provisioning
from portal.models import ServiceState
from tests.domain.lifecycle_fixtures import SYSTEM, service
from tests.factories import ServiceDefinitionFactory

TODAY = date(2026, 12, 4)
SECRET = "testing123"
INSTALL = "FreeRADIUS is missing: apt-get install freeradius freeradius-utils (scripts/system-packages test does it)"


def _free_port_pair() -> int:
    """A UDP port whose successor is free too (auth on it, accounting on the next)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65534:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of UDP ports on loopback")


def radclient(port: int, attributes: dict[str, str], code: str = "auth") -> tuple[str, dict[str, str]]:
    """Send one request with radclient; returns (answer packet type, reply attributes)."""
    line = ",".join(f'{k}="{v}"' for k, v in attributes.items())
    out = subprocess.run(["radclient", "-x", "-r", "1", "-t", "2", f"127.0.0.1:{port}", code, SECRET],
                         input=line, capture_output=True, text=True, timeout=15)
    text = out.stdout + out.stderr
    received = re.search(r"Received (\S+) Id", text)
    if received is None:
        return "none", {}
    reply = {}
    for m in re.finditer(r"^\s+([\w-]+) = (.*)$", text[received.end():], re.M):
        reply[m.group(1)] = m.group(2).strip().strip('"')
    return received.group(1), reply


@pytest.fixture(scope="module")
def freeradius(app, tmp_path_factory):
    """FreeRADIUS running the configuration `flask radius config` wrote; yields its auth port."""
    binary, client = shutil.which("freeradius") or shutil.which("radiusd"), shutil.which("radclient")
    if binary is None or client is None:
        pytest.fail(INSTALL)
    folder = tmp_path_factory.mktemp("freeradius")
    port = _free_port_pair()
    result = app.test_cli_runner().invoke(args=["radius", "config", "--out", str(folder), "--port", str(port)])
    assert result.exit_code == 0, result.output
    server = subprocess.Popen([binary, "-f", "-d", str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.poll() is not None:
                log = (folder / "log" / "radius.log")
                pytest.fail("freeradius stopped: " + (server.stdout.read() or "")
                            + (log.read_text()[-3000:] if log.exists() else ""))
            if radclient(port, {"User-Name": "nobody", "User-Password": "x"})[0] != "none":
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"freeradius did not answer on 127.0.0.1:{port}")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def internet_service(db, state=ServiceState.ACTIVE, address: str | None = None):
    svc = service(state=state, definition=ServiceDefinitionFactory(down_kbps=50000, up_kbps=10000))
    identity = network.create_identity(db, svc, actor=SYSTEM)
    if address:
        network.assign_address(db, identity, actor=SYSTEM, address=address)
    return svc, identity


def sync(db, app):
    db.commit()
    provisioning.run_pass(db, provisioning.radius_driver(app.config))
    db.commit()


def ask(port, identity, password=None):
    return radclient(port, {"User-Name": identity.username, "User-Password": password or identity.password})


def test_freeradius_answers_from_the_portals_tables(db, app, freeradius):
    _active_svc, active = internet_service(db, address="100.64.0.10")
    _blocked_svc, blocked = internet_service(db, ServiceState.BLOCKED, address="100.64.0.11")
    cancelled_svc, cancelled = internet_service(db, address="100.64.0.12")
    sync(db, app)
    lifecycle.cancel(db, cancelled_svc, actor=SYSTEM, on=TODAY, reason="gone", waive_notice=True, today=TODAY)
    sync(db, app)

    answer, reply = ask(freeradius, active)
    assert answer == "Access-Accept"
    assert reply["Framed-IP-Address"] == "100.64.0.10"
    assert reply["Mikrotik-Rate-Limit"] == "10000k/50000k"

    answer, reply = ask(freeradius, blocked)
    assert answer == "Access-Accept"
    assert reply["Mikrotik-Address-List"] == "walled-garden"
    assert reply["Framed-IP-Address"] == "100.64.0.11"
    assert "Mikrotik-Rate-Limit" not in reply

    assert ask(freeradius, cancelled)[0] == "Access-Reject"
    assert ask(freeradius, active, password="wrong-password")[0] == "Access-Reject"
    assert radclient(freeradius, {"User-Name": "nobody-at-all", "User-Password": "x"})[0] == "Access-Reject"


def test_after_a_block_in_the_portal_the_next_request_is_answered_the_new_way(db, app, freeradius):
    svc, identity = internet_service(db, address="100.64.0.20")
    sync(db, app)
    assert ask(freeradius, identity)[1].get("Mikrotik-Rate-Limit") == "10000k/50000k"

    lifecycle.block(db, svc, actor=SYSTEM, on=TODAY, reason="unpaid", today=TODAY)
    db.commit()
    # Written, not yet applied: the network still sees the old state until the pass runs.
    assert "Mikrotik-Address-List" not in ask(freeradius, identity)[1]
    sync(db, app)
    answer, reply = ask(freeradius, identity)
    assert answer == "Access-Accept" and reply.get("Mikrotik-Address-List") == "walled-garden"

    lifecycle.unblock(db, svc, actor=SYSTEM, on=TODAY, reason="paid", today=TODAY)
    sync(db, app)
    answer, reply = ask(freeradius, identity)
    assert answer == "Access-Accept" and "Mikrotik-Address-List" not in reply
    assert reply["Mikrotik-Rate-Limit"] == "10000k/50000k"

    old_password = identity.password
    network.regenerate_password(db, identity, actor=SYSTEM)
    sync(db, app)
    assert ask(freeradius, identity, password=old_password)[0] == "Access-Reject"
    assert ask(freeradius, identity)[0] == "Access-Accept"


def test_the_attributes_per_nas_type_are_configuration(db, app, freeradius, monkeypatch):
    monkeypatch.setitem(app.config, "RADIUS_NAS_TYPE", "wispr")
    _svc, identity = internet_service(db, address="100.64.0.30")
    sync(db, app)
    answer, reply = ask(freeradius, identity)
    assert answer == "Access-Accept"
    assert (reply["WISPr-Bandwidth-Max-Up"], reply["WISPr-Bandwidth-Max-Down"]) == ("10000000", "50000000")
    assert "Mikrotik-Rate-Limit" not in reply
