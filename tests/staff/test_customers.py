"""Staff customers: search (full page and HTMX block), CSV, create and edit with 422 messages
and audited before → after, the customer page and its tabs, location scoping, bounded query
counts, and "view as customer" (read-only, banner, audited, the operator stays logged in)."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, select

from portal.models import (
    Agreement,
    AgreementState,
    AgreementType,
    AuditEntry,
    AuthSession,
    Contact,
    ContactKind,
    Customer,
    CustomerAddress,
    CustomerKind,
    CustomerRequest,
    Payment,
    PaymentSource,
    PaymentState,
    RequestKind,
)
from tests.domain.payments_fixtures import make_invoice
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
)

READ = ("customers.read",)
WRITE = ("customers.read", "customers.write")


@pytest.fixture
def places(db):
    a, b = LocationFactory(name="Praha"), LocationFactory(name="Brno")
    db.commit()
    return a, b


@pytest.fixture
def novak(db, places):
    c = CustomerFactory(location=places[0], customer_number="100001", first_name="Jiří", last_name="Novák",
                        name_key="novak", variable_symbol="8100001")
    ContactFactory(customer=c, kind=ContactKind.EMAIL, value="jiri@example.com", value_key="jiri@example.com")
    ContactFactory(customer=c, kind=ContactKind.PHONE, value="+420 601 111 222", value_key="420601111222")
    db.commit()
    return c


@pytest.fixture
def brno_firm(db, places):
    c = CustomerFactory(location=places[1], customer_number="200001", kind=CustomerKind.COMPANY, first_name=None,
                        last_name=None, company_name="Brněnská a.s.", name_key="brnenska a.s.",
                        variable_symbol="8200001")
    db.commit()
    return c


def body(resp) -> str:
    return resp.get_data(as_text=True)


def audited(db) -> list[str]:
    """The audit trail of changes (logging in is audited too, but is not what is tested)."""
    return [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if not e.action.endswith((".login", ".login_failed"))]


# ---------------------------------------------------------------------------------- list and search

def test_list_page_and_search(operator_client, novak, brno_firm):
    client = operator_client(rights=READ)
    resp = client.get("/staff/customers")
    assert resp.status_code == 200
    html = body(resp)
    assert "<html" in html and "Novák" in html and "Brněnská" in html
    assert 'data-results="#customer-results"' in html  # keyboard walk (portal.js)
    resp = client.get("/staff/customers?q=601+111")
    assert "Novák" in body(resp) and "Brněnská" not in body(resp)


@pytest.mark.parametrize("query", ["novak", "Novák", "100001", "8100001", "jiri@ex", "601 111 222", "+420601111"])
def test_search_finds_by_each_field(operator_client, novak, brno_firm, query):
    client = operator_client(rights=READ)
    resp = client.htmx("GET", "/staff/customers", query_string={"q": query})
    html = body(resp)
    assert resp.status_code == 200
    assert "Novák" in html and "Brněnská" not in html


@pytest.mark.parametrize("query", ["Korunní", "korunni", "KORUNNI"])
def test_search_by_street_name_alone(operator_client, places, db, query):
    """The README's address search: a street name alone finds the customers living there,
    by their billing address or a further one; the full page and the live search alike."""
    billing = CustomerFactory(location=places[0], last_name="Adamec", name_key="adamec", street="Korunní 12")
    further = CustomerFactory(location=places[0], last_name="Beran", name_key="beran", street="Dlouhá 1")
    further.addresses.append(CustomerAddress(kind="installation", street="Korunní 810/5", city="Praha",
                                             postal_code="101 00"))
    CustomerFactory(location=places[0], last_name="Cibulka", name_key="cibulka", street="Vinohradská 3")
    db.commit()
    client = operator_client(rights=READ)
    for resp in (client.get("/staff/customers", query_string={"q": query}),
                 client.htmx("GET", "/staff/customers", query_string={"q": query})):
        html = body(resp)
        assert resp.status_code == 200
        assert f"/staff/customers/{billing.id}" in html and f"/staff/customers/{further.id}" in html
        assert "Cibulka" not in html and "No customer matches." not in html


def test_htmx_gets_only_the_results(operator_client, novak):
    client = operator_client(rights=READ)
    resp = client.htmx("GET", "/staff/customers?q=nov")
    html = body(resp)
    assert "<html" not in html and "<form" not in html
    assert f'/staff/customers/{novak.id}' in html
    assert "format=csv" in html and "q=nov" in html  # the export follows the live search
    resp = client.htmx("GET", "/staff/customers?q=zzz")
    assert "No customer matches." in body(resp)


def test_search_pages(operator_client, places):
    for i in range(30):
        CustomerFactory(location=places[0], last_name=f"Svoboda{i:02d}", name_key=f"svoboda{i:02d}")
    client = operator_client(rights=READ)
    first = body(client.get("/staff/customers?q=svoboda"))
    assert "Svoboda00" in first and "Svoboda25" not in first and "Page 1 of 2" in first
    second = body(client.get("/staff/customers?q=svoboda&page=2"))
    assert "Svoboda25" in second and "Svoboda00" not in second
    assert body(client.get("/staff/customers?q=svoboda&page=abc")).count("Svoboda0") == 10


def test_bad_filters_do_not_fail(operator_client, novak):
    client = operator_client(rights=READ)
    for qs in ("location=x", "state=maybe", "kind=robot", "group=%00", "q=" + "a" * 5000, "q=%25_%5C", "page=-3",
               "q=%00", "q=nov%00ak", "q=%00&format=csv", "q=Dlouh%C3%A1%005"):
        resp = client.get(f"/staff/customers?{qs}")
        assert resp.status_code == 200, qs
        assert resp.get_data(as_text=True)  # a CSV is streamed: read it all


def test_location_scoping_of_the_list(operator_client, places, novak, brno_firm):
    client = operator_client(rights=READ, locations=[places[0]])
    html = body(client.get("/staff/customers"))
    assert "Novák" in html and "Brněnská" not in html
    assert "Brněnská" not in body(client.get("/staff/customers?q=8200001"))
    assert "Brněnská" not in body(client.get(f"/staff/customers?location={places[1].id}"))
    rows = list(csv.reader(io.StringIO(body(client.get("/staff/customers?format=csv")).lstrip("\ufeff"))))
    assert [r[0] for r in rows[1:]] == ["100001"]


def test_csv_export_keeps_the_filters(operator_client, novak, brno_firm):
    client = operator_client(rights=READ)
    resp = client.get("/staff/customers?format=csv&kind=company")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(body(resp).lstrip("\ufeff"))))
    assert rows[0][:3] == ["customer_number", "name", "kind"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [("200001", "Brněnská a.s.", "company")]
    rows = list(csv.reader(io.StringIO(body(client.get("/staff/customers?format=csv&q=novak")).lstrip("\ufeff"))))
    assert len(rows) == 2 and rows[1][10] == "jiri@example.com" and rows[1][11] == "'+420 601 111 222"  # formula-quoted (common.csv_response)


def test_list_queries_are_bounded(operator_client, places, count_queries, db):
    client = operator_client(rights=READ)

    def make(n):
        for _ in range(n):
            c = CustomerFactory(location=places[0])
            ContactFactory(customer=c)

    make(2)
    db.commit()
    with count_queries() as few:
        assert client.get("/staff/customers").status_code == 200
    make(18)
    db.commit()
    with count_queries() as many:
        assert client.get("/staff/customers").status_code == 200
    assert few.count == many.count


# ---------------------------------------------------------------------------------- create and edit

def _new(location, **over):
    data = {"kind": "person", "location_id": str(location.id), "first_name": "Petr", "last_name": "Svoboda",
            "street": "Nádražní 12", "city": "Brno", "postal_code": "602 00", "country": "CZ", "language": "cs",
            "credit_limit": "0", "active": "y", "billing_plan_id": ""}
    data.update(over)
    return data


def test_create_customer(operator_client, places, db):
    client = operator_client(rights=WRITE)
    assert client.get("/staff/customers/new").status_code == 200
    resp = client.post("/staff/customers/new", data=_new(places[0], company_id="", vat_id="CZ8604171234"[:0]))
    assert resp.status_code == 303, body(resp)
    customer = db.scalar(select(Customer).where(Customer.last_name == "Svoboda"))
    assert resp.headers["Location"].endswith(f"/staff/customers/{customer.id}")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.created"))
    assert entry.customer_id == customer.id and entry.actor_id == client.operator.id
    assert entry.changes["last_name"] == [None, "Svoboda"]


@pytest.mark.parametrize("field, value, message", [
    ("company_id", "25596642", "check digit"),
    ("vat_id", "CZ25596642", "VAT ID is not valid"),
    ("iban", "CZ6508000000192000145398", "IBAN is not valid"),
    ("last_name", "", "Enter the last name."),
    ("postal_code", "12", "five digits"),
    ("birth_date", "not a date", "YYYY-MM-DD"),
    ("credit_limit", "-1", "zero or more"),
    ("kind", "robot", "person or a company"),
])
def test_create_refuses_bad_values_with_422(operator_client, places, db, field, value, message):
    client = operator_client(rights=WRITE)
    resp = client.post("/staff/customers/new", data=_new(places[0], **{field: value}))
    assert resp.status_code == 422
    html = body(resp)
    assert message in html
    assert 'class="field-error"' in html
    assert db.scalar(select(func.count()).select_from(Customer)) == 0
    assert audited(db) == []


def test_create_in_another_location_is_refused(operator_client, places, db):
    client = operator_client(rights=WRITE, locations=[places[0]])
    resp = client.post("/staff/customers/new", data=_new(places[1]))
    assert resp.status_code == 422
    assert db.scalar(select(func.count()).select_from(Customer)) == 0


def test_edit_customer_audits_before_and_after(operator_client, novak, places, db):
    client = operator_client(rights=WRITE)
    invoice = make_invoice(novak, 605)
    db.commit()
    old_name = invoice.customer_name
    page = client.get(f"/staff/customers/{novak.id}/edit")
    assert page.status_code == 200 and 'value="Novák"' in body(page)
    resp = client.post(f"/staff/customers/{novak.id}/edit",
                       data=_new(places[0], first_name="Jiří", last_name="Nový", street=novak.street,
                                 city=novak.city, postal_code=novak.postal_code, language=novak.language.value,
                                 billing_plan_id=str(novak.billing_plan_id), company_id="25596641",
                                 vat_id="CZ25596641", iban="CZ65 0800 0000 1920 0014 5399"))
    assert resp.status_code == 303, body(resp)
    db.expire_all()
    customer = db.get(Customer, novak.id)
    assert (customer.last_name, customer.iban, customer.name_key) == ("Nový", "CZ6508000000192000145399", "novy")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.updated"))
    assert entry.changes["last_name"] == ["Novák", "Nový"]
    assert entry.changes["vat_id"] == [None, "CZ25596641"]
    # The issued invoice keeps the identity it was issued with.
    db.refresh(invoice)
    assert invoice.customer_name == old_name
    tab = body(client.get(f"/staff/customers/{novak.id}/audit"))
    assert "customer.updated" not in tab  # audit tab needs audit.read (403 below)


def test_edit_with_bad_values_is_422_and_changes_nothing(operator_client, novak, places, db):
    client = operator_client(rights=WRITE)
    resp = client.post(f"/staff/customers/{novak.id}/edit",
                       data=_new(places[0], last_name="", vat_id="12345678"))
    assert resp.status_code == 422
    assert "Enter the last name." in body(resp) and "Start the VAT ID with its country code" in body(resp)
    db.expire_all()
    assert db.get(Customer, novak.id).last_name == "Novák"
    assert audited(db) == []


def test_contacts_and_addresses_from_the_edit_page(operator_client, novak, db):
    client = operator_client(rights=WRITE)
    base = f"/staff/customers/{novak.id}"
    resp = client.post(f"{base}/contacts", data={"contact-kind": "email", "contact-value": "nope",
                                                 "contact-purpose": "billing"})
    assert resp.status_code == 422 and "not a valid e-mail" in body(resp)
    resp = client.post(f"{base}/contacts", data={"contact-kind": "email", "contact-value": "second@example.com",
                                                 "contact-purpose": "technical", "contact-primary": "y"})
    assert resp.status_code == 303
    contact = db.scalar(select(Contact).where(Contact.value == "second@example.com"))
    assert contact.primary
    assert client.get(f"{base}/contacts/{contact.id}").status_code == 200
    resp = client.post(f"{base}/contacts/{contact.id}", data={"contact-value": "third@example.com",
                                                              "contact-purpose": "general", "contact-primary": "y"})
    assert resp.status_code == 303
    assert client.post(f"{base}/contacts/{contact.id}/remove").status_code == 303
    resp = client.post(f"{base}/addresses", data={"address-kind": "installation", "address-street": "",
                                                  "address-city": "Brno", "address-postal_code": "60200",
                                                  "address-country": "CZ"})
    assert resp.status_code == 422 and "Enter the street" in body(resp)
    resp = client.post(f"{base}/addresses", data={"address-kind": "installation", "address-street": "Polní 3",
                                                  "address-city": "Brno", "address-postal_code": "60200",
                                                  "address-country": "CZ"})
    assert resp.status_code == 303
    address = db.scalar(select(CustomerAddress))
    resp = client.post(f"{base}/addresses/{address.id}", data={"address-kind": "postal", "address-street": "Polní 3",
                                                               "address-city": "Brno", "address-postal_code": "602 00",
                                                               "address-country": "CZ"})
    assert resp.status_code == 303
    assert client.post(f"{base}/addresses/{address.id}/remove").status_code == 303
    assert audited(db) == ["contact.added", "contact.updated", "contact.removed",
                       "address.added", "address.updated", "address.removed"]
    updated = db.scalar(select(AuditEntry).where(AuditEntry.action == "contact.updated"))
    assert updated.changes["value"] == ["second@example.com", "third@example.com"]


def test_another_customers_contact_is_404(operator_client, novak, brno_firm, db):
    client = operator_client(rights=WRITE)
    other = ContactFactory(customer=brno_firm)
    db.commit()
    assert client.get(f"/staff/customers/{novak.id}/contacts/{other.id}").status_code == 404
    assert client.post(f"/staff/customers/{novak.id}/contacts/{other.id}/remove").status_code == 404
    assert db.get(Contact, other.id) is not None


# ---------------------------------------------------------------------------------- customer page

@pytest.fixture
def history(db, novak):
    CustomerServiceFactory(customer=novak, variable_symbol="5550001")
    make_invoice(novak, 605, due_date=date(2025, 1, 15), number="FV2025000001", variable_symbol="2025000001")
    atype = AgreementType(name="Internet", code="NET", valid_from=date(2020, 1, 1))
    db.add(Agreement(type=atype, customer=novak, number="2025/00001", state=AgreementState.ISSUED))
    db.add(Payment(received_on=date(2025, 1, 20), amount=100, currency="CZK", variable_symbol="8100001",
                   source=PaymentSource.MANUAL, customer_id=novak.id, state=PaymentState.OVERPAID, unallocated=100))
    db.add(CustomerRequest(customer_id=novak.id, kind=RequestKind.QUESTION, subject="Router blinks",
                           created_by_type="customer"))
    db.commit()
    return novak


@pytest.mark.parametrize("tab, text", [
    ("services", "5550001"), ("agreements", "2025/00001"), ("invoices", "FV2025000001"),
    ("payments", "8100001"), ("requests", "Router blinks"),
])
def test_tabs_full_page_and_htmx_panel(operator_client, history, tab, text):
    client = operator_client(rights=READ)
    url = f"/staff/customers/{history.id}/{tab}"
    full = body(client.get(url))
    assert "<html" in full and text in full and 'aria-current="page"' in full
    panel = client.htmx("GET", url)
    assert panel.status_code == 200
    assert "<html" not in body(panel) and text in body(panel) and 'id="tab-panel"' in body(panel)
    csv_resp = client.get(url + "?format=csv")
    assert csv_resp.mimetype == "text/csv" and text in body(csv_resp)


def test_overview(operator_client, history):
    client = operator_client(rights=READ)
    html = body(client.get(f"/staff/customers/{history.id}"))
    assert "Balance" in html and "Services by state" in html and "Dunning" in html
    assert "FV2025000001" in html  # open invoice
    assert "jiri@example.com" in html
    assert "View as customer" not in html  # no customers.impersonate
    assert "/edit" not in html  # no customers.write
    assert client.get(f"/staff/customers/{history.id}/nonsense").status_code == 404


def test_audit_tab_needs_audit_read(operator_client, novak, db):
    from portal.domain.actors import Actor
    from portal.domain.audit import record

    record(db, Actor.system("test"), "customer.updated", "customer", novak.id, {"city": ["Brno", "Praha"]},
           customer_id=novak.id)
    db.commit()
    assert operator_client(rights=READ).get(f"/staff/customers/{novak.id}/audit").status_code == 403
    html = body(operator_client(rights=(*READ, "audit.read")).get(f"/staff/customers/{novak.id}/audit"))
    assert "customer.updated" in html and "Brno → Praha" in html


def test_customer_of_another_location_is_404(operator_client, places, novak, brno_firm):
    client = operator_client(rights=(*WRITE, "customers.impersonate", "audit.read"), locations=[places[0]])
    for url in ("", "/services", "/invoices", "/audit", "/edit", "/contacts/1"):
        assert client.get(f"/staff/customers/{brno_firm.id}{url}").status_code == 404, url
    assert client.post(f"/staff/customers/{brno_firm.id}/edit", data={}).status_code == 404
    assert client.post(f"/staff/customers/{brno_firm.id}/impersonate").status_code == 404
    assert client.get(f"/staff/customers/{novak.id}").status_code == 200


@pytest.mark.parametrize("tab", ["overview", "invoices", "services", "payments", "audit"])
def test_customer_page_queries_are_bounded(operator_client, novak, db, count_queries, tab):
    client = operator_client(rights=(*READ, "audit.read"))
    url = f"/staff/customers/{novak.id}" + ("" if tab == "overview" else f"/{tab}")

    def make(n):
        for i in range(n):
            CustomerServiceFactory(customer=novak)
            make_invoice(novak, 100 + i)
            db.add(Payment(received_on=date(2025, 1, 20), amount=1, currency="CZK", source=PaymentSource.MANUAL,
                           customer_id=novak.id, state=PaymentState.OVERPAID, unallocated=1))
            ContactFactory(customer=novak)
        db.commit()

    make(2)
    with count_queries() as few:
        assert client.get(url).status_code == 200
    make(18)
    with count_queries() as many:
        assert client.get(url).status_code == 200
    assert few.count == many.count


# ---------------------------------------------------------------------------------- view as customer

IMPERSONATE = (*READ, "customers.impersonate")


def test_view_as_customer_read_only_with_banner_and_back(operator_client, novak, db):
    login = CustomerLoginFactory(customer=novak)
    db.commit()
    client = operator_client(rights=IMPERSONATE)
    assert "View as customer" in body(client.get(f"/staff/customers/{novak.id}"))
    resp = client.post(f"/staff/customers/{novak.id}/impersonate")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/")
    page = client.get("/")
    assert page.status_code == 200
    html = body(page)
    assert "You are viewing as Jiří Novák (100001), read-only." in html
    assert "/impersonation/end" in html and "/logout" not in html.replace("/impersonation/end", "")
    # Read-only: a selfcare change is refused, and so is logging the customer out everywhere.
    assert client.post("/profile/contacts", data={"kind": "email", "value": "x@example.com",
                                                  "purpose": "general"}).status_code == 403
    assert client.post("/logout/everywhere").status_code == 403
    assert db.scalar(select(func.count()).select_from(Contact).where(Contact.value == "x@example.com")) == 0
    # Staff pages are not reachable as the customer.
    assert client.get("/staff/customers").status_code == 403
    # The view is not one of the customer's devices.
    from portal.security.sessions import active_sessions

    assert active_sessions(login) == []
    assert client.get("/security").status_code == 200
    # End: back on the customer's staff page, still logged in as the operator.
    resp = client.post("/impersonation/end")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/staff/customers/{novak.id}")
    assert client.get(f"/staff/customers/{novak.id}").status_code == 200
    assert client.get("/").status_code in (302, 403)
    actions = [(e.action, e.actor_id) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))
               if e.action.startswith("customer.")]
    assert actions == [("customer.impersonation_started", client.operator.id),
                       ("customer.impersonation_ended", client.operator.id)]
    rows = list(db.scalars(select(AuthSession).where(AuthSession.impersonator_id == client.operator.id)))
    assert len(rows) == 1 and rows[0].revoked_at is not None


def test_customer_logout_while_viewing_ends_the_view(operator_client, novak, db):
    CustomerLoginFactory(customer=novak)
    db.commit()
    client = operator_client(rights=IMPERSONATE)
    client.post(f"/staff/customers/{novak.id}/impersonate")
    resp = client.post("/logout")
    assert resp.headers["Location"].endswith(f"/staff/customers/{novak.id}")
    assert client.get("/staff/customers").status_code == 200


def test_staff_logout_while_viewing_ends_both(operator_client, novak, db):
    CustomerLoginFactory(customer=novak)
    db.commit()
    client = operator_client(rights=IMPERSONATE)
    client.post(f"/staff/customers/{novak.id}/impersonate")
    resp = client.post("/staff/logout")  # from a staff tab left open
    assert "/staff/login" in resp.headers["Location"]
    assert client.get("/staff/customers").status_code == 302
    assert client.get("/").status_code == 302
    assert db.scalar(select(func.count()).select_from(AuthSession).where(AuthSession.revoked_at.is_(None))) == 0
    assert "operator.logout" in audited(db) and "customer.impersonation_ended" in audited(db)


def test_the_view_dies_with_the_operator_session(operator_client, novak, db):
    CustomerLoginFactory(customer=novak)
    db.commit()
    client = operator_client(rights=IMPERSONATE)
    staff_row = db.scalar(select(AuthSession).where(AuthSession.operator_id == client.operator.id))
    client.post(f"/staff/customers/{novak.id}/impersonate")
    assert client.get("/").status_code == 200
    staff_row.revoked_at = staff_row.last_seen_at
    db.commit()
    assert client.get("/").status_code == 302  # to the login
    resp = client.post("/impersonation/end")
    assert "/staff/login" in resp.headers["Location"]


def test_customer_without_login_cannot_be_viewed(operator_client, novak, db):
    client = operator_client(rights=IMPERSONATE)
    assert "Without a selfcare login" in body(client.get(f"/staff/customers/{novak.id}"))
    resp = client.post(f"/staff/customers/{novak.id}/impersonate")
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/staff/customers/{novak.id}")
    assert "no active selfcare login" in body(client.get(resp.headers["Location"]))
    assert audited(db) == []
    assert client.get("/staff/customers").status_code == 200


def test_view_as_needs_its_right_and_csrf(operator_client, novak, db):
    CustomerLoginFactory(customer=novak)
    db.commit()
    assert operator_client(rights=READ).post(f"/staff/customers/{novak.id}/impersonate").status_code == 403
    client = operator_client(rights=IMPERSONATE)
    assert client.post(f"/staff/customers/{novak.id}/impersonate", csrf=False).status_code == 400
    assert audited(db) == []


# ---------------------------------------------------------------------------------- groups

def test_customer_groups(operator_client, places, novak, brno_firm, db):
    from portal.models import CustomerGroup

    client = operator_client(rights=WRITE, locations=[places[0]])
    assert client.post("/staff/customers/groups", data={"name": "  "}).status_code == 422
    resp = client.post("/staff/customers/groups", data={"name": "VIP", "description": "Call first"})
    assert resp.status_code == 303
    group = db.scalar(select(CustomerGroup))
    assert client.post("/staff/customers/groups", data={"name": "vip"}).status_code == 422  # taken, case aside
    novak.groups = [group]
    brno_firm.groups = [group]
    db.commit()
    html = body(client.get("/staff/customers/groups"))
    assert "VIP" in html and f"/staff/customers?group={group.id}" in html
    rows = list(csv.reader(io.StringIO(body(client.get("/staff/customers/groups?format=csv")).lstrip("\ufeff"))))
    assert rows[1] == ["VIP", "Call first", "1"]  # Brno's member is not this operator's
    assert client.get(f"/staff/customers/groups/{group.id}").status_code == 200
    resp = client.post(f"/staff/customers/groups/{group.id}", data={"name": "VIP+", "description": "Call first"})
    assert resp.status_code == 303
    assert client.get("/staff/customers/groups/999").status_code == 404
    assert audited(db) == ["customer_group.created", "customer_group.updated"]
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer_group.updated"))
    assert entry.changes == {"name": ["VIP", "VIP+"]}
    # Read-only operators see the list, not the forms.
    reader = operator_client(rights=READ)
    assert "New group" not in body(reader.get("/staff/customers/groups"))
    assert reader.post("/staff/customers/groups", data={"name": "X"}).status_code == 403
