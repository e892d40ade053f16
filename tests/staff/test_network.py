"""Staff network pages: IP pools (list, create, edit, bad input beside the field, rights,
location scope), the service page's network section (set up, password, address from a pool
and static, release, MAC; refusals shown), and the services list's network-state filter."""
from __future__ import annotations

from sqlalchemy import select

from portal.domain import network
from portal.domain.actors import Actor
from portal.models import IpPool, NetworkIdentity, NetworkState, ServiceState
from tests.factories import (
    CustomerFactory,
    CustomerServiceFactory,
    LocationFactory,
    ServiceDefinitionFactory,
)

SYSTEM = Actor.system("test")


def _service(db, location=None, state=ServiceState.ACTIVE):
    customer = CustomerFactory(location=location) if location else CustomerFactory()
    svc = CustomerServiceFactory(state=state, customer=customer,
                                 definition=ServiceDefinitionFactory(down_kbps=20000, up_kbps=5000))
    db.commit()
    return svc


def test_pools_create_edit_and_refuse(db, operator_client):
    loc = LocationFactory()
    db.commit()
    client = operator_client(rights=("customers.read", "catalogue.write"), admin=True)
    assert client.get("/staff/ip-pools").status_code == 200
    assert client.get("/staff/ip-pools/new").status_code == 200
    bad = client.post("/staff/ip-pools/new", data={"location": loc.id, "name": "A", "cidr": "10.1.0.1/24"})
    assert bad.status_code == 422 and "CIDR" in bad.get_data(as_text=True)
    ok = client.post("/staff/ip-pools/new", data={"location": loc.id, "name": "Core", "cidr": "10.1.0.0/24"})
    assert ok.status_code == 302
    pool = db.scalar(select(IpPool))
    assert pool.cidr == "10.1.0.0/24"
    page = client.get("/staff/ip-pools").get_data(as_text=True)
    assert "10.1.0.0/24" in page and "0 / 254" in page
    assert client.post(f"/staff/ip-pools/{pool.id}", data={"location": loc.id, "name": "Core2",
                                                           "cidr": "10.1.0.0/25"}).status_code == 302
    db.expire_all()
    assert db.get(IpPool, pool.id).name == "Core2"


def test_pool_pages_need_rights_and_scope(db, operator_client):
    loc, other = LocationFactory(), LocationFactory()
    pool = network.save_pool(db, actor=SYSTEM, location=other, name="Other", cidr="10.2.0.0/24")
    db.commit()
    reader = operator_client(rights=("customers.read",), locations=[loc])
    assert reader.get("/staff/ip-pools").status_code == 200
    assert "Other" not in reader.get("/staff/ip-pools").get_data(as_text=True)
    assert reader.get("/staff/ip-pools/new").status_code == 403
    editor = operator_client(rights=("customers.read", "catalogue.write"), locations=[loc])
    assert editor.get(f"/staff/ip-pools/{pool.id}").status_code == 404
    assert editor.post("/staff/ip-pools/new", data={"location": other.id, "name": "X",
                                                    "cidr": "10.3.0.0/24"}).status_code == 422


def test_service_network_section(db, operator_client):
    svc = _service(db)
    loc = svc.customer.location
    pool = network.save_pool(db, actor=SYSTEM, location=loc, name="Access", cidr="100.64.5.0/29")
    db.commit()
    client = operator_client(rights=("customers.read", "services.lifecycle"), admin=True)
    page = client.get(f"/staff/services/{svc.id}").get_data(as_text=True)
    assert "Set up network access" in page
    assert client.post(f"/staff/services/{svc.id}/network/setup").status_code == 302
    identity = db.scalar(select(NetworkIdentity))
    page = client.get(f"/staff/services/{svc.id}").get_data(as_text=True)
    assert identity.username in page and identity.password in page and "Pending" in page

    old = identity.password
    assert client.post(f"/staff/services/{svc.id}/network/password").status_code == 302
    db.expire_all()
    assert db.get(NetworkIdentity, identity.id).password != old

    client.post(f"/staff/services/{svc.id}/network/address", data={"ip_pool": pool.id, "ip_address": ""})
    db.expire_all()
    assert network.address_text(db.get(NetworkIdentity, identity.id).ip_address) == "100.64.5.1"
    resp = client.post(f"/staff/services/{svc.id}/network/address", data={"ip_pool": "", "ip_address": "nonsense"},
                       follow_redirects=True)
    assert "Enter an IPv4 address" in resp.get_data(as_text=True)
    client.post(f"/staff/services/{svc.id}/network/address", data={"ip_pool": "", "ip_address": "198.51.100.4"})
    db.expire_all()
    assert network.address_text(db.get(NetworkIdentity, identity.id).ip_address) == "198.51.100.4"
    assert client.post(f"/staff/services/{svc.id}/network/release").status_code == 302
    db.expire_all()
    assert db.get(NetworkIdentity, identity.id).ip_address is None

    resp = client.post(f"/staff/services/{svc.id}/network/mac", data={"mac_address": "zz"}, follow_redirects=True)
    assert "Enter a MAC address" in resp.get_data(as_text=True)
    client.post(f"/staff/services/{svc.id}/network/mac", data={"mac_address": "00-11-22-AA-BB-CC"})
    db.expire_all()
    assert db.get(NetworkIdentity, identity.id).mac_address == "00:11:22:aa:bb:cc"


def test_service_network_posts_need_the_right_csrf_and_scope(db, operator_client):
    svc = _service(db)
    reader = operator_client(rights=("customers.read",), admin=False)
    assert reader.post(f"/staff/services/{svc.id}/network/setup").status_code == 403
    other = operator_client(rights=("customers.read", "services.lifecycle"), locations=[LocationFactory()])
    assert other.post(f"/staff/services/{svc.id}/network/setup").status_code == 404
    actor = operator_client(rights=("customers.read", "services.lifecycle"), admin=True)
    assert actor.post(f"/staff/services/{svc.id}/network/setup", csrf=False).status_code == 400
    assert actor.post(f"/staff/services/{svc.id}/network/password").status_code == 404  # no identity yet


def test_services_list_filters_by_network_state(db, operator_client):
    a, b = _service(db), _service(db)
    ia = network.create_identity(db, a, actor=SYSTEM)
    network.create_identity(db, b, actor=SYSTEM)
    ia.network_state = NetworkState.FAILED
    db.commit()
    client = operator_client(rights=("customers.read",), admin=True)
    page = client.get("/staff/services?network=failed").get_data(as_text=True)
    assert f"#{a.id} " in page and f"#{b.id} " not in page
    assert client.get("/staff/services?network=bogus").status_code == 200
