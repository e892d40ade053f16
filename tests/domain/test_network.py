"""Network identity and the provisioning outbox, without a network: pools and the first free
address, the unique address, the outbox row every lifecycle step writes, the sync pass's
network states (in sync, failed with a retry) and the FreeRADIUS rows it leaves."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.domain import DomainError, lifecycle, network
from portal.integrations import provisioning
from portal.models import Desired, NetworkIdentity, NetworkState, ProvisioningChange, ServiceState
from portal.models.base import utcnow
from portal.models.radius import radcheck, radgroupreply, radreply, radusergroup
from tests.domain.lifecycle_fixtures import SYSTEM, service
from tests.factories import LocationFactory, ServiceDefinitionFactory

TODAY = date(2024, 6, 10)


def internet(db, state=ServiceState.ACTIVE, down=50000, up=10000):
    return service(state=state, definition=ServiceDefinitionFactory(down_kbps=down, up_kbps=up))


def driver(app):
    return provisioning.radius_driver(app.config)


def rows(db, table, user):
    return [(r.attribute, r.value) for r in db.execute(select(table).where(table.c.username == user)
                                                       .order_by(table.c.id))]


def test_pool_first_free_address_fills_gaps_and_refuses_when_full(db):
    pool = network.save_pool(db, actor=SYSTEM, location=LocationFactory(), name="Test", cidr="192.0.2.0/30")
    assert (network.address_text(pool.first_address), network.address_text(pool.last_address)) == \
        ("192.0.2.1", "192.0.2.2")
    a = network.create_identity(db, internet(db, ServiceState.ORDERED), actor=SYSTEM)
    b = network.create_identity(db, internet(db, ServiceState.ORDERED), actor=SYSTEM)
    c = network.create_identity(db, internet(db, ServiceState.ORDERED), actor=SYSTEM)
    assert network.assign_address(db, a, actor=SYSTEM, pool=pool) == "192.0.2.1"
    assert network.assign_address(db, b, actor=SYSTEM, pool=pool) == "192.0.2.2"
    with pytest.raises(network.AddressUnavailable):
        network.assign_address(db, c, actor=SYSTEM, pool=pool)
    network.release_address(db, a, actor=SYSTEM)
    assert network.assign_address(db, c, actor=SYSTEM, pool=pool) == "192.0.2.1"
    assert network.pool_usage(db, pool) == (2, 2)


def test_an_address_is_never_given_twice(db):
    a = network.create_identity(db, internet(db, ServiceState.ORDERED), actor=SYSTEM)
    b = network.create_identity(db, internet(db, ServiceState.ORDERED), actor=SYSTEM)
    network.assign_address(db, a, actor=SYSTEM, address="198.51.100.7")
    with pytest.raises(network.AddressUnavailable, match="already given out"):
        network.assign_address(db, b, actor=SYSTEM, address="198.51.100.7")
    assert b.ip_address is None
    b.ip_address = a.ip_address  # behind the rules' back: the database refuses
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_pool_validation(db):
    loc = LocationFactory()
    with pytest.raises(DomainError) as bad:
        network.save_pool(db, actor=SYSTEM, location=loc, name="X", cidr="10.0.0.1/24")
    assert bad.value.field == "cidr"
    network.save_pool(db, actor=SYSTEM, location=loc, name="A", cidr="10.0.0.0/24")
    with pytest.raises(DomainError, match="overlaps"):
        network.save_pool(db, actor=SYSTEM, location=loc, name="B", cidr="10.0.0.128/25")


def test_activation_gives_an_internet_service_credentials_and_writes_the_outbox(db):
    svc = internet(db, ServiceState.ORDERED)
    lifecycle.activate(db, svc, actor=SYSTEM, on=TODAY, today=TODAY)
    identity = network.identity_of(db, svc)
    assert identity is not None and len(identity.password) == network.PASSWORD_LENGTH
    assert identity.network_state == NetworkState.PENDING
    change = network.pending_changes(db, svc)[0]
    assert change.desired == Desired.ACCEPT and change.attributes["down_kbps"] == 50000


def test_every_step_writes_the_desired_state_and_the_pass_applies_it(db, app):
    svc = internet(db)
    identity = network.create_identity(db, svc, actor=SYSTEM)
    network.assign_address(db, identity, actor=SYSTEM, address="100.64.0.9")
    db.commit()
    assert provisioning.run_pass(db, driver(app)).applied == 1
    assert identity.network_state == NetworkState.IN_SYNC
    user = identity.username
    assert rows(db, radcheck, user) == [("Cleartext-Password", identity.password)]
    assert rows(db, radreply, user) == [("Framed-IP-Address", "100.64.0.9"), ("Mikrotik-Rate-Limit", "10000k/50000k")]

    lifecycle.block(db, svc, actor=SYSTEM, on=TODAY, reason="debt", today=TODAY)
    assert identity.network_state == NetworkState.PENDING
    db.commit()
    provisioning.run_pass(db, driver(app))
    assert [(r.groupname) for r in db.execute(select(radusergroup).where(radusergroup.c.username == user))] == \
        ["walled-garden"]
    assert rows(db, radreply, user) == [("Framed-IP-Address", "100.64.0.9")]
    assert [(r.attribute, r.value) for r in db.execute(select(radgroupreply))] == \
        [("Mikrotik-Address-List", "walled-garden")]

    lifecycle.cancel(db, svc, actor=SYSTEM, on=TODAY, reason="gone", waive_notice=True, today=TODAY)
    db.commit()
    provisioning.run_pass(db, driver(app))
    assert rows(db, radcheck, user) == [] and rows(db, radusergroup, user) == []
    assert db.scalar(select(ProvisioningChange).where(ProvisioningChange.applied_at.is_(None))) is None


def test_scheduled_steps_write_the_outbox_when_carried_out(db):
    svc = internet(db)
    network.create_identity(db, svc, actor=SYSTEM)
    lifecycle.block(db, svc, actor=SYSTEM, on=TODAY + timedelta(days=3), reason="later", today=TODAY)
    assert network.pending_changes(db, svc)[0].desired == Desired.ACCEPT
    lifecycle.apply_scheduled(db, today=TODAY + timedelta(days=3), actor=SYSTEM)
    assert network.pending_changes(db, svc)[0].desired == Desired.WALLED_GARDEN


def test_plan_change_moves_the_identity_and_sends_the_new_speeds(db):
    svc = internet(db)
    target = ServiceDefinitionFactory(down_kbps=100000, up_kbps=20000)
    svc.definition.allowed_targets.append(target)
    identity = network.create_identity(db, svc, actor=SYSTEM)
    successor = lifecycle.change_plan(db, svc, target, actor=SYSTEM, on=TODAY, today=TODAY)
    assert identity.customer_service_id == successor.id
    newest = network.pending_changes(db, successor)[0]
    assert newest.desired == Desired.ACCEPT and newest.attributes["down_kbps"] == 100000


def test_a_failing_driver_leaves_the_service_failed_with_a_retry(db):
    svc = internet(db)
    identity = network.create_identity(db, svc, actor=SYSTEM)
    db.commit()

    def broken(session, change):
        raise RuntimeError("NAS unreachable")

    now = utcnow()
    result = provisioning.run_pass(db, broken, now=now)
    assert result.failed == 1
    assert identity.network_state == NetworkState.FAILED and "NAS unreachable" in identity.network_error
    assert identity.next_retry_at == now + timedelta(seconds=30)
    assert provisioning.run_pass(db, broken, now=now).failed == 0  # not due yet
    assert provisioning.run_pass(db, broken, now=now + timedelta(seconds=31)).failed == 1
    assert identity.attempts == 2 and identity.next_retry_at == now + timedelta(seconds=31 + 60)


def test_regenerated_password_is_provisioned_not_audited(db):
    from portal.models import AuditEntry

    identity = network.create_identity(db, internet(db), actor=SYSTEM)
    new = network.regenerate_password(db, identity, actor=SYSTEM)
    assert network.pending_changes(db, identity.customer_service)[0].attributes["password"] == new
    assert all(new not in str(e.changes) for e in db.scalars(select(AuditEntry)))
    assert db.scalar(select(NetworkIdentity).where(NetworkIdentity.password == new)) is identity


def test_every_provisioning_change_is_a_webhook_event_without_the_password(db):
    from portal.models import WebhookEvent

    svc = internet(db)
    identity = network.create_identity(db, svc, actor=SYSTEM)
    lifecycle.block(db, svc, actor=SYSTEM, on=TODAY, reason="debt", today=TODAY)
    found = list(db.scalars(select(WebhookEvent).where(WebhookEvent.type == "network.changed")
                            .order_by(WebhookEvent.id)))
    assert [e.payload["data"]["changes"]["desired"][1] for e in found] == ["accept", "walled_garden"]
    assert all(identity.password not in str(e.payload) for e in found)
