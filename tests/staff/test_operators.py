"""Staff operators and roles pages, the operator's own /staff/security page, and mandatory
TOTP with its exemption."""
from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import func, select

from portal.models import AuditEntry, Operator, Role
from portal.security.totp import decrypt_secret
from tests.conftest import login_operator
from tests.factories import LocationFactory, OperatorFactory

RIGHT = ("operators.admin",)


@pytest.fixture
def admin_client(operator_client):
    return operator_client(rights=RIGHT)


def _audit(db, action):
    return db.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def test_forbidden_without_the_right(operator_client, db):
    client = operator_client(rights=("customers.read",))
    other = OperatorFactory()
    db.commit()
    for url in ("/staff/operators", "/staff/operators/new", f"/staff/operators/{other.id}", "/staff/operators/roles"):
        assert client.get(url).status_code == 403
    assert client.post(f"/staff/operators/{other.id}/deactivate").status_code == 403
    db.expire_all()
    assert other.active


def test_list_and_csv(admin_client, db):
    OperatorFactory(name="Zdena Clerk", email="zdena@example.com")
    db.commit()
    html = admin_client.get("/staff/operators").get_data(as_text=True)
    assert "Zdena Clerk" in html and "zdena@example.com" in html
    resp = admin_client.get("/staff/operators?format=csv")
    assert resp.mimetype == "text/csv" and "zdena@example.com" in resp.get_data(as_text=True)
    assert admin_client.get("/staff/operators/roles?format=csv").mimetype == "text/csv"


def test_list_query_count_does_not_grow(admin_client, db, count_queries):
    loc = LocationFactory()
    for _ in range(2):
        OperatorFactory(rights=("customers.read",)).locations = [loc]
    db.commit()
    with count_queries() as few:
        assert admin_client.get("/staff/operators").status_code == 200
    for _ in range(18):
        OperatorFactory(rights=("billing.run",)).locations = [loc]
    db.commit()
    with count_queries() as many:
        assert admin_client.get("/staff/operators").status_code == 200
    assert many.count == few.count


def test_create_with_password_and_with_emailed_link(admin_client, db, outbox):
    loc = LocationFactory()
    role = Role(name="Clerk")
    db.add(role)
    db.commit()
    assert admin_client.get("/staff/operators/new").status_code == 200
    data = {"name": "New Clerk", "email": "clerk@example.com", "password": "Long-enough-1",
            "role_ids": [str(role.id)], "location_ids": [str(loc.id)]}
    assert admin_client.post("/staff/operators/new", data={**data, "password": "short"}).status_code == 422
    assert admin_client.post("/staff/operators/new", data={**data, "email": "not-an-email"}).status_code == 422
    assert admin_client.post("/staff/operators/new", data={**data, "role_ids": ["99999"]}).status_code == 422
    assert db.scalar(select(func.count()).select_from(Operator).where(Operator.email == "clerk@example.com")) == 0
    resp = admin_client.post("/staff/operators/new", data=data)
    assert resp.status_code == 302
    op = db.scalar(select(Operator).where(Operator.email == "clerk@example.com"))
    assert [r.name for r in op.roles] == ["Clerk"] and op.location_ids == {loc.id}
    assert _audit(db, "operator.created")[0].entity_id == op.id
    dup = admin_client.post("/staff/operators/new", data=data)
    assert dup.status_code == 422 and "already exists" in dup.get_data(as_text=True)

    resp = admin_client.post("/staff/operators/new", data={"name": "Invited", "email": "inv@example.com"})
    assert resp.status_code == 302
    mails = outbox()
    assert mails[-1]["To"] == "inv@example.com" and "/staff/password/reset/" in mails[-1].text
    link = next(w for w in mails[-1].text.split() if "/staff/password/reset/" in w)
    path = link.split("localhost", 1)[1]
    from tests.conftest import PortalClient  # noqa: F401 — same app, a fresh browser
    fresh = admin_client.application.test_client()
    assert fresh.get(path).status_code == 200
    assert fresh.post(path, data={"password": "Chosen-pass-9", "confirm": "Chosen-pass-9"}).status_code == 302
    assert login_operator(fresh, "inv@example.com", "Chosen-pass-9").status_code == 302


def test_edit_roles_and_locations(admin_client, db):
    op = OperatorFactory(rights=("customers.read",))
    loc = LocationFactory()
    role = Role(name="Billing")
    db.add(role)
    db.commit()
    assert admin_client.get(f"/staff/operators/{op.id}").status_code == 200
    assert admin_client.get("/staff/operators/99999").status_code == 404
    resp = admin_client.post(f"/staff/operators/{op.id}", data={"name": "", "role_ids": [str(role.id)]})
    assert resp.status_code == 422
    resp = admin_client.post(f"/staff/operators/{op.id}",
                             data={"name": "Renamed", "role_ids": [str(role.id)], "location_ids": [str(loc.id)]})
    assert resp.status_code == 302
    db.expire_all()
    assert op.name == "Renamed" and [r.name for r in op.roles] == ["Billing"] and op.location_ids == {loc.id}
    changes = _audit(db, "operator.updated")[0].changes
    assert changes["locations"] == [[], [loc.code]] and changes["roles"][1] == ["Billing"]


def test_cannot_remove_own_admin_right(admin_client, db):
    me = admin_client.operator
    other_role = Role(name="Nothing")
    db.add(other_role)
    db.commit()
    resp = admin_client.post(f"/staff/operators/{me.id}", data={"name": me.name, "role_ids": [str(other_role.id)]})
    assert resp.status_code == 422 and "At least one active operator" in resp.get_data(as_text=True)
    OperatorFactory(admin=True)  # another admin exists: still not one's own right
    db.commit()
    resp = admin_client.post(f"/staff/operators/{me.id}", data={"name": me.name, "role_ids": [str(other_role.id)]})
    assert resp.status_code == 422 and "your own right" in resp.get_data(as_text=True)
    db.expire_all()
    assert me.has_right("operators.admin")
    # Editing the role that gives it is refused too, and so is deleting it.
    my_role = me.roles[0]
    resp = admin_client.post(f"/staff/operators/roles/{my_role.id}", data={"name": my_role.name, "rights": ["audit.read"]})
    assert resp.status_code == 422
    admin_client.post(f"/staff/operators/roles/{my_role.id}/delete")
    assert db.get(Role, my_role.id) is not None


def test_deactivate_ends_sessions_and_reactivate(admin_client, make_client, db):
    victim = OperatorFactory(rights=("customers.read",))
    db.commit()
    theirs = make_client()
    assert login_operator(theirs, victim.email).status_code == 302
    assert theirs.get("/staff/").status_code == 200
    assert admin_client.post(f"/staff/operators/{victim.id}/deactivate").status_code == 302
    resp = theirs.get("/staff/")
    assert resp.status_code == 302 and "/staff/login" in resp.headers["Location"]
    assert login_operator(theirs, victim.email).status_code == 422
    assert _audit(db, "operator.deactivated")
    # Not oneself.
    me = admin_client.operator
    admin_client.post(f"/staff/operators/{me.id}/deactivate")
    db.expire_all()
    assert me.active
    assert admin_client.post(f"/staff/operators/{victim.id}/reactivate").status_code == 302
    db.expire_all()
    assert victim.active and _audit(db, "operator.reactivated")


def test_reset_two_factor(admin_client, db):
    from portal.models.base import utcnow
    from portal.security.totp import encrypt_secret

    op = OperatorFactory(totp_secret=encrypt_secret(pyotp.random_base32()), totp_enabled_at=utcnow(),
                         recovery_code_hashes=["x"])
    db.commit()
    assert "Reset two-factor" in admin_client.get(f"/staff/operators/{op.id}").get_data(as_text=True)
    assert admin_client.post(f"/staff/operators/{op.id}/reset-totp").status_code == 302
    db.expire_all()
    assert op.totp_secret is None and op.totp_enabled_at is None and op.recovery_code_hashes == []
    assert _audit(db, "operator.totp_reset")[0].entity_id == op.id


def test_roles_pages(admin_client, db):
    assert admin_client.get("/staff/operators/roles").status_code == 200
    assert admin_client.get("/staff/operators/roles/new").status_code == 200
    resp = admin_client.post("/staff/operators/roles/new", data={"name": "Billing", "rights": ["billing.run", "bogus"]})
    assert resp.status_code == 422 and "Unknown right" in resp.get_data(as_text=True)
    assert admin_client.post("/staff/operators/roles/new", data={"name": "", "rights": []}).status_code == 422
    assert db.scalar(select(Role).where(Role.name == "Billing")) is None
    resp = admin_client.post("/staff/operators/roles/new", data={"name": "Billing", "rights": ["billing.run"]})
    assert resp.status_code == 302
    role = db.scalar(select(Role).where(Role.name == "Billing"))
    html = admin_client.get(f"/staff/operators/roles/{role.id}").get_data(as_text=True)
    assert re.search(r'<input checked id="rights-\d+" name="rights" type="checkbox" value="billing.run">', html)
    assert not re.search(r'<input checked [^>]*value="audit.read">', html)
    resp = admin_client.post(f"/staff/operators/roles/{role.id}",
                             data={"name": "Billing", "rights": ["billing.run", "payments.write"]})
    assert resp.status_code == 302
    assert _audit(db, "role.updated")[0].changes == {"rights": [["billing.run"], ["billing.run", "payments.write"]]}
    assert "Billing" in admin_client.get("/staff/operators/roles").get_data(as_text=True)
    assert admin_client.post(f"/staff/operators/roles/{role.id}/delete").status_code == 302
    assert db.get(Role, role.id) is None and _audit(db, "role.created") and _audit(db, "role.deleted")


# ----------------------------------------------------------------- own two-factor, required

def test_security_page_enrol_and_codes(operator_client, db):
    client = operator_client(rights=("customers.read",))
    op = client.operator
    assert client.get("/staff/security").status_code == 200
    assert client.post("/staff/security", data={"action": "start"}).status_code == 302
    db.expire_all()
    secret = decrypt_secret(op.totp_secret)
    assert "Or type this key" in client.get("/staff/security").get_data(as_text=True)
    resp = client.post("/staff/security", data={"action": "confirm", "code": "000000"})
    assert resp.status_code == 422 and "not right" in resp.get_data(as_text=True)
    assert client.post("/staff/security", data={"action": "confirm", "code": ""}).status_code == 422
    resp = client.post("/staff/security", data={"action": "confirm", "code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 200 and "Your recovery codes" in resp.get_data(as_text=True)
    db.expire_all()
    assert op.totp_enabled_at is not None
    assert client.post("/staff/security", data={"action": "codes", "codes-proof": "wrong"}).status_code == 422
    resp = client.post("/staff/security", data={"action": "codes", "codes-proof": "Correct-horse-1"})
    assert resp.status_code == 200 and "New recovery codes" in resp.get_data(as_text=True)
    assert client.post("/staff/security", data={"action": "nonsense"}).status_code == 400
    resp = client.post("/staff/security", data={"action": "disable", "disable-proof": "Correct-horse-1"})
    assert resp.status_code == 302
    db.expire_all()
    assert op.totp_enabled_at is None
    actions = {e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "operator"))}
    assert {"totp.enrolment_started", "totp.enabled", "totp.recovery_codes_regenerated", "totp.disabled"} <= actions


def test_totp_required_sends_operator_to_enrol_first(app, operator_client, db, monkeypatch):
    monkeypatch.setitem(app.config, "OPERATOR_TOTP_REQUIRED", True)
    monkeypatch.setitem(app.config, "OPERATOR_TOTP_EXEMPT", ["demo@example.com"])
    client = operator_client(rights=("customers.read", "audit.read"))
    op = client.operator
    for url in ("/staff/", "/staff/audit"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/security"), url
    resp = client.htmx("GET", "/staff/audit")
    assert resp.headers.get("HX-Redirect", "").endswith("/staff/security")
    page = client.get("/staff/security").get_data(as_text=True)
    assert "must use two-factor" in page
    client.post("/staff/security", data={"action": "start"})
    db.expire_all()
    client.post("/staff/security", data={"action": "confirm", "code": pyotp.TOTP(decrypt_secret(op.totp_secret)).now()})
    assert client.get("/staff/").status_code == 200
    # Required: it cannot be turned off.
    resp = client.post("/staff/security", data={"action": "disable", "disable-proof": "Correct-horse-1"})
    assert resp.status_code == 422
    db.expire_all()
    assert op.totp_enabled_at is not None
    # Logging out still works.
    assert client.post("/staff/logout").status_code == 302


def test_totp_exempt_operator_is_not_redirected(app, make_client, db, monkeypatch):
    monkeypatch.setitem(app.config, "OPERATOR_TOTP_REQUIRED", True)
    monkeypatch.setitem(app.config, "OPERATOR_TOTP_EXEMPT", ["Demo@Example.com"])
    OperatorFactory(email="demo@example.com", admin=True)
    db.commit()
    client = make_client()
    assert login_operator(client, "demo@example.com").status_code == 302
    assert client.get("/staff/").status_code == 200


def test_totp_not_required_by_default(operator_client):
    client = operator_client(rights=("customers.read",))
    assert client.get("/staff/").status_code == 200
