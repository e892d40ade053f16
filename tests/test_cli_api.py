"""`flask api create-token / revoke-token / list-tokens`: the token alone on stdout, every
refusal one line on stderr with exit code 1, the same rules as the staff pages."""
from __future__ import annotations

import re

from sqlalchemy import select

from portal.models import ApiToken, AuditEntry
from tests.factories import CustomerFactory, LocationFactory, OperatorFactory

TOKEN = re.compile(r"ptk_[A-Za-z0-9_-]{40,}\n")


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["api", *args])


def _refused(result, *words):
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _operator(db, **kwargs):
    op = OperatorFactory(**kwargs)
    db.commit()
    return op


def test_create_prints_only_the_token_and_it_authenticates(app, db):
    op = _operator(db, rights=("customers.read",))
    CustomerFactory()
    db.commit()
    result = _run(app, "create-token", "--operator", op.email.upper(), "--name", "sync",
                  "--right", "customers.read", "--expires", "30")
    assert result.exit_code == 0, result.output
    assert TOKEN.fullmatch(result.stdout) and result.stderr == ""
    plain = result.stdout.strip()
    token = db.scalar(select(ApiToken))
    assert token.operator_id == op.id and token.rights == ["customers.read"] and token.expires_at is not None
    assert token.prefix == plain[:12]
    assert db.scalar(select(AuditEntry.action).where(AuditEntry.entity_id == token.id)) == "api_token.created"
    resp = app.test_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {plain}"})
    assert resp.status_code == 200 and len(resp.get_json()["data"]) == 1


def test_create_with_locations(app, db):
    here, there = LocationFactory(), LocationFactory()
    op = _operator(db, rights=("customers.read",))
    op.locations = [here, there]
    db.commit()
    result = _run(app, "create-token", "--operator", op.email, "--name", "one place", "--right", "customers.read",
                  "--location", str(here.id))
    assert result.exit_code == 0, result.output
    assert db.scalar(select(ApiToken)).location_ids == [here.id]


def test_create_refusals_are_one_line_on_stderr(app, db):
    op = _operator(db, rights=("customers.read",))
    other = LocationFactory()
    mine = LocationFactory()
    op.locations = [mine]
    db.commit()
    base = ["create-token", "--operator", op.email, "--name", "x"]
    _refused(_run(app, "create-token", "--operator", "nobody@example.com", "--name", "x", "--right",
                  "customers.read"), "nobody@example.com")
    _refused(_run(app, *base, "--right", "billing.run"), "billing.run")
    _refused(_run(app, *base, "--right", "no.such"), "no.such")
    _refused(_run(app, *base), "right")
    _refused(_run(app, *base, "--right", "customers.read", "--location", str(other.id)), "location")
    _refused(_run(app, *base, "--right", "customers.read", "--location", "99999"), "99999")
    _refused(_run(app, *base, "--right", "customers.read", "--expires", "0"), "days")
    _refused(_run(app, "create-token", "--operator", op.email, "--name", " ", "--right", "customers.read"), "name")
    assert db.scalar(select(ApiToken)) is None


def test_an_inactive_operator_gets_no_token(app, db):
    op = _operator(db, rights=("customers.read",), active=False)
    _refused(_run(app, "create-token", "--operator", op.email, "--name", "x", "--right", "customers.read"),
             "inactive")


def test_revoke(app, db):
    op = _operator(db, rights=("customers.read",))
    plain = _run(app, "create-token", "--operator", op.email, "--name", "x", "--right", "customers.read").stdout.strip()
    token_id = db.scalar(select(ApiToken.id))
    result = _run(app, "revoke-token", str(token_id))
    assert result.exit_code == 0, result.output
    assert f"Token {token_id}" in result.stdout
    db.expire_all()
    assert db.get(ApiToken, token_id).revoked_at is not None
    resp = app.test_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {plain}"})
    assert resp.status_code == 401
    _refused(_run(app, "revoke-token", str(token_id)), "already revoked")
    _refused(_run(app, "revoke-token", "424242"), "424242")
    _refused(_run(app, "revoke-token", str(2**40)), "No token")


def test_list(app, db):
    alice = _operator(db, rights=("customers.read",))
    bob = _operator(db, rights=("customers.read", "billing.run"))
    _run(app, "create-token", "--operator", alice.email, "--name", "alice's", "--right", "customers.read")
    _run(app, "create-token", "--operator", bob.email, "--name", "bob's", "--right", "billing.run")
    _run(app, "revoke-token", str(db.scalar(select(ApiToken.id).where(ApiToken.name == "bob's"))))
    result = _run(app, "list-tokens")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:5] == ["id", "operator", "name", "prefix", "state"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        (bob.email, "bob's", "revoked", "billing.run", "*"),
        (alice.email, "alice's", "active", "customers.read", "*"),
    ]
    only = _run(app, "list-tokens", "--operator", alice.email).stdout.splitlines()
    assert len(only) == 2 and alice.email in only[1]
    _refused(_run(app, "list-tokens", "--operator", "nobody@example.com"), "nobody@example.com")
