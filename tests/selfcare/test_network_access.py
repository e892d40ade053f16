"""Selfcare shows a running internet service's access credentials to its customer (and to no
one else); a cancelled service shows none."""
from __future__ import annotations

from portal.domain import lifecycle, network
from portal.domain.actors import Actor
from portal.models import ServiceState
from tests.factories import CustomerFactory, CustomerServiceFactory, ServiceDefinitionFactory

SYSTEM = Actor.system("test")


def _service(db, customer, state=ServiceState.ACTIVE, address="100.64.9.9"):
    svc = CustomerServiceFactory(customer=customer, state=state,
                                 definition=ServiceDefinitionFactory(down_kbps=30000, up_kbps=3000))
    identity = network.create_identity(db, svc, actor=SYSTEM)
    network.assign_address(db, identity, actor=SYSTEM, address=address)
    db.commit()
    return svc, identity


def test_customer_sees_own_credentials(db, customer_client, customer_login):
    svc, identity = _service(db, customer_login.customer)
    page = customer_client.get(f"/services/{svc.id}").get_data(as_text=True)
    assert identity.username in page and identity.password in page and "100.64.9.9" in page
    assert "30000 / 3000 kbit/s" in page


def test_other_customers_service_and_cancelled_show_nothing(db, customer_client, customer_login):
    other, identity = _service(db, CustomerFactory())
    resp = customer_client.get(f"/services/{other.id}")
    assert resp.status_code == 404 and identity.password not in resp.get_data(as_text=True)
    own, own_identity = _service(db, customer_login.customer, address="100.64.9.10")
    lifecycle.cancel(db, own, actor=SYSTEM, on=own.billing_from or own.ordered_on, reason="x", waive_notice=True,
                     today=own.billing_from or own.ordered_on)
    db.commit()
    assert own_identity.password not in customer_client.get(f"/services/{own.id}").get_data(as_text=True)
