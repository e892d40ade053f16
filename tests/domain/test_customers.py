"""Customer rules: search by every field (indexed questions only), validation of identity,
bank and contact data, audited changes with before → after, and issued invoices untouched."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from portal.domain import DomainError
from portal.domain import customers as rules
from portal.domain.actors import Actor
from portal.models import (
    ActorType,
    AddressKind,
    AuditEntry,
    BillingPlan,
    ContactKind,
    ContactPurpose,
    CustomerAddress,
    CustomerGroup,
    CustomerKind,
    Delivery,
    Invoice,
)
from tests.domain.payments_fixtures import make_invoice
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    LocationFactory,
)

STAFF = Actor(ActorType.OPERATOR, 7, "Olga Operator")


def numbers(result) -> list[str]:
    return [c.customer_number for c in result.items]


@pytest.fixture
def people(db):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    novak = CustomerFactory(location=loc_a, customer_number="100001", first_name="Jiří", last_name="Novák",
                            name_key="novak", variable_symbol="8100001", street="Dlouhá 5", city="Brno")
    novakova = CustomerFactory(location=loc_a, customer_number="100002", first_name="Jana", last_name="Nováková",
                               name_key="novakova", variable_symbol="8100002", street="Krátká 1")
    firm = CustomerFactory(location=loc_b, customer_number="100003", kind=CustomerKind.COMPANY, first_name=None,
                           last_name=None, company_name="Alfa Servis s.r.o.", name_key="alfa servis s.r.o.",
                           company_id="25596641", variable_symbol="8100003", street="Vídeňská 10")
    firm.addresses.append(CustomerAddress(kind=AddressKind.INSTALLATION, street="Polní 7", city="Brno",
                                          postal_code="602 00"))
    ContactFactory(customer=novak, kind=ContactKind.EMAIL, value="jiri.novak@example.com",
                   value_key="jiri.novak@example.com")
    ContactFactory(customer=novakova, kind=ContactKind.PHONE, value="+420 601 123 456", value_key="420601123456")
    ContactFactory(customer=firm, kind=ContactKind.PHONE, value="777 000 111", value_key="777000111")
    CustomerServiceFactory(customer=firm, variable_symbol="5550001")
    make_invoice(novakova, 605, variable_symbol="2611000042", number="FV2611000042")
    CustomerLoginFactory(customer=firm, email="login.alfa@example.org")
    db.commit()
    return {"a": loc_a, "b": loc_b, "novak": novak, "novakova": novakova, "firm": firm}


@pytest.mark.parametrize("query, expected", [
    ("novak", ["100001", "100002"]),          # name prefix, ordered by name key
    ("NOVÁKOVÁ", ["100002"]),                 # accents and case ignored
    ("jana novakova", ["100002"]),            # first and last name, either order
    ("novák jiří", ["100001"]),
    ("alfa serv", ["100003"]),                # company name prefix
    ("100003", ["100003"]),                   # customer number, exact
    ("10000", []),                            # ... not a prefix of it
    ("8100002", ["100002"]),                  # the customer's variable symbol
    ("5550001", ["100003"]),                  # a service's variable symbol
    ("2611000042", ["100002"]),               # an invoice's variable symbol
    ("25596641", ["100003"]),                 # company id
    ("CZ25596641", ["100003"]),               # ... typed as the VAT id
    ("jiri.nov", ["100001"]),                 # e-mail prefix
    ("Jiri.Novak@Example.com", ["100001"]),
    ("login.alfa", ["100003"]),               # the selfcare login's e-mail
    ("601 123 456", ["100002"]),              # phone without the country code it was stored with
    ("+420 601 123", ["100002"]),             # phone prefix with it
    ("00420601123456", ["100002"]),
    ("+420 777 000 111", ["100003"]),         # stored without a country code, typed with one
    ("dlouhá 5", ["100001"]),                # street and house number (billing address)
    ("Vídeňská 1", ["100003"]),               # ... a prefix of it
    ("polní 7", ["100003"]),                  # a further (installation) address
    ("Dlouha  5", ["100001"]),                # accents and spacing do not matter (street_key)
    ("polni 7", ["100003"]),
    ("nobody", []),
    ("%", []),                                # LIKE wildcards are plain characters
    ("_", []),
])
def test_search_by_each_field(people, db, query, expected):
    assert numbers(rules.search_customers(db, query, None)) == expected


@pytest.fixture
def streets(db):
    loc = LocationFactory()
    billing = CustomerFactory(location=loc, customer_number="200001", last_name="Adamec", name_key="adamec",
                              street="Korunní 12", city="Praha")
    further = CustomerFactory(location=loc, customer_number="200002", last_name="Beran", name_key="beran",
                              street="Dlouhá 1", city="Praha")
    further.addresses.append(CustomerAddress(kind=AddressKind.INSTALLATION, street="Korunní 810/5", city="Praha",
                                             postal_code="101 00"))
    CustomerFactory(location=loc, customer_number="200003", last_name="Cibulka", name_key="cibulka",
                    street="Korunovační 3", city="Praha")
    CustomerFactory(location=loc, customer_number="200004", last_name="Dvořák", name_key="dvorak",
                    street="Na Příkopě 7", city="Praha")
    db.commit()
    return {"billing": billing, "further": further}


@pytest.mark.parametrize("query, expected", [
    ("Korunní", ["200001", "200002"]),       # the street alone: billing and further addresses
    ("korunni", ["200001", "200002"]),       # accents and case ignored
    ("KORUNNÍ", ["200001", "200002"]),
    ("Korun", ["200001", "200002", "200003"]),  # a prefix, as the live search types it
    ("Korunovační", ["200003"]),
    ("na prikope", ["200004"]),              # a street of several words
    ("Korunní 12", ["200001"]),              # with the house number, as before
    ("Ko", []),                              # too short to ask the addresses
])
def test_search_by_street_name_alone(streets, db, query, expected):
    assert numbers(rules.search_customers(db, query, None)) == expected


def test_search_by_street_asks_the_street_key_indexes(streets, db):
    """A street is found through ix_customer_street_key and ix_customer_address_street_key:
    a range on the index, never a scan of the addresses."""
    stmt = rules.search_statement(rules.CustomerFilters(query="Korunní"), None)
    dialect = db.get_bind().dialect
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "postgresql":
        db.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.scalars(text("EXPLAIN " + sql)))
        db.rollback()
        assert "ix_customer_street_key" in plan and "ix_customer_address_street_key" in plan, plan
    else:
        plan = "\n".join(row[-1] for row in db.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_customer_street_key" in plan and "ix_customer_address_street_key" in plan, plan
        assert "SCAN customer_address" not in plan, plan


def test_search_is_limited_to_the_locations(people, db):
    assert numbers(rules.search_customers(db, "", [people["a"].id])) == ["100001", "100002"]
    assert numbers(rules.search_customers(db, "alfa", [people["a"].id])) == []
    assert numbers(rules.search_customers(db, "5550001", [people["a"].id])) == []
    assert numbers(rules.search_customers(db, "alfa", [people["b"].id])) == ["100003"]


def test_search_pages_and_counts(people, db):
    first = rules.search_customers(db, "", None, limit=2, offset=0)
    second = rules.search_customers(db, "", None, limit=2, offset=2)
    assert first.total == second.total == 3
    assert len(first.items) == 2 and len(second.items) == 1
    assert {c.id for c in first.items}.isdisjoint(c.id for c in second.items)


def test_search_filters(people, db):
    people["novak"].active = False
    db.commit()
    active = rules.CustomerFilters(active=True)
    assert numbers(rules.search_customers(db, "novak", None, filters=active)) == ["100002"]
    companies = rules.CustomerFilters(kind=CustomerKind.COMPANY)
    assert numbers(rules.search_customers(db, "", None, filters=companies)) == ["100003"]
    group = CustomerGroup(name="VIP")
    people["novakova"].groups = [group]
    db.commit()
    assert numbers(rules.search_customers(db, "", None, filters=rules.CustomerFilters(group_id=group.id))) == ["100002"]


def test_search_key_and_prefix_range():
    assert rules.search_key("  Nováková  Jana ") == "novakova jana"
    assert rules._successor("novak") == "noval"


# ---------------------------------------------------------------------------------- validation

def form(location, **over) -> dict:
    data = {"kind": "person", "location_id": str(location.id), "first_name": "Petr", "last_name": "Svoboda",
            "street": "Nádražní 12", "city": "Brno", "postal_code": "60200", "country": "CZ", "language": "cs",
            "credit_limit": "0", "active": "y"}
    data.update(over)
    return data


@pytest.mark.parametrize("field, value, message", [
    ("company_id", "25596642", "check digit"),
    ("company_id", "12", None),                # zero-padded to 00000012, whose check digit is wrong
    ("company_id", "abc", "eight digits"),
    ("vat_id", "CZ25596642", "not valid"),
    ("vat_id", "25596641", "country code"),
    ("iban", "CZ6508000000192000145398", "not valid"),
    ("postal_code", "6020", "five digits"),
    ("country", "Czechia", "country"),
    ("birth_date", "2999-01-01", "not possible"),
    ("birth_date", "17. 4. 1986", "YYYY-MM-DD"),
    ("credit_limit", "-5", "zero or more"),
    ("credit_limit", "lots", "amount"),
    ("last_name", "", "last name"),
    ("location_id", "999999", "location"),
])
def test_invalid_values_are_named(db, field, value, message):
    loc = LocationFactory()
    with pytest.raises(rules.CustomerInvalid) as caught:
        rules.validate_customer(db, form(loc, **{field: value}), location_ids=None)
    assert field in caught.value.errors
    if message:
        assert message in caught.value.errors[field]


def test_all_wrong_fields_are_reported_at_once(db):
    loc = LocationFactory()
    with pytest.raises(rules.CustomerInvalid) as caught:
        rules.validate_customer(db, form(loc, kind="company", company_name="", company_id="2", vat_id="XX1", street=""),
                                location_ids=None)
    assert {"company_name", "company_id", "vat_id", "street"} <= set(caught.value.errors)


def test_valid_values_are_normalised(db):
    loc = LocationFactory()
    out = rules.validate_customer(db, form(loc, kind="company", company_name="Beta a.s.", company_id="2559 6641",
                                           vat_id="cz 25596641", iban="cz65 0800 0000 1920 0014 5399",
                                           postal_code="602 00", credit_limit="1 000,5"), location_ids=None)
    assert out["company_id"] == "25596641"
    assert out["vat_id"] == "CZ25596641"
    assert out["iban"] == "CZ6508000000192000145399"
    assert out["postal_code"] == "602 00"
    assert out["credit_limit"] == Decimal("1000.50")
    assert out["birth_date"] is None


def test_a_location_outside_the_operators_is_refused(db):
    loc, other = LocationFactory(), LocationFactory()
    with pytest.raises(rules.CustomerInvalid) as caught:
        rules.validate_customer(db, form(other), location_ids=[loc.id])
    assert "location_id" in caught.value.errors


# ---------------------------------------------------------------------------------- create / update

def test_create_numbers_the_customer_and_audits(db):
    loc = LocationFactory()
    CustomerFactory(location=loc, customer_number="100041", variable_symbol="8100041")
    customer = rules.create_customer(db, STAFF, form(loc, last_name="Dvořák"), location_ids=None)
    db.commit()
    assert customer.customer_number == "100042"
    assert customer.variable_symbol == "8100042"
    assert customer.name_key == "dvorak"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.created"))
    assert entry.entity_id == customer.id and entry.customer_id == customer.id
    assert entry.actor_name == "Olga Operator"
    assert entry.changes["last_name"] == [None, "Dvořák"]
    assert entry.changes["customer_number"] == [None, "100042"]


def test_create_refuses_a_taken_number_or_symbol(db):
    loc = LocationFactory()
    other = CustomerFactory(location=loc, customer_number="100041", variable_symbol="8100041")
    make_invoice(other, 100, variable_symbol="2611000001")
    db.commit()
    with pytest.raises(rules.CustomerInvalid) as caught:
        rules.create_customer(db, STAFF, form(loc, customer_number="100041", variable_symbol="2611000001"),
                              location_ids=None)
    assert set(caught.value.errors) == {"customer_number", "variable_symbol"}


def test_update_audits_before_and_after_and_leaves_issued_invoices(db):
    loc = LocationFactory()
    customer = CustomerFactory(location=loc, last_name="Malá", street="Stará 1", city="Brno")
    invoice = make_invoice(customer, 605)
    group = CustomerGroup(name="Seniors")
    db.add(group)
    db.commit()
    snapshot_name, snapshot_address = invoice.customer_name, invoice.customer_address
    changes = rules.update_customer(
        db, STAFF, customer,
        form(loc, first_name=customer.first_name, last_name="Velká", street="Nová 2", city="Brno",
             postal_code="602 00", group_ids=[str(group.id)], language=customer.language.value,
             billing_plan_id=str(customer.billing_plan_id)),
        location_ids=None)
    db.commit()
    assert changes["last_name"] == ["Malá", "Velká"]
    assert changes["street"] == ["Stará 1", "Nová 2"]
    assert changes["groups"] == [[], ["Seniors"]]
    assert customer.name_key == "velka"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "customer.updated"))
    assert entry.changes["last_name"] == ["Malá", "Velká"]
    db.expire_all()
    invoice = db.get(Invoice, invoice.id)
    assert (invoice.customer_name, invoice.customer_address) == (snapshot_name, snapshot_address)
    # The same values again: nothing to audit.
    again = rules.update_customer(
        db, STAFF, customer,
        form(loc, first_name=customer.first_name, last_name="Velká", street="Nová 2", city="Brno",
             postal_code="602 00", group_ids=[str(group.id)], language=customer.language.value,
             billing_plan_id=str(customer.billing_plan_id)),
        location_ids=None)
    assert "last_name" not in again


# ---------------------------------------------------------------------------------- contacts, addresses

def test_contacts_rules_and_audit(db):
    customer = CustomerFactory()
    first = rules.add_contact(db, STAFF, customer, kind="email", value="A@Example.com", purpose="billing")
    assert first.primary and first.value_key == "a@example.com"
    with pytest.raises(DomainError) as caught:
        rules.add_contact(db, STAFF, customer, kind="email", value="a@example.com", purpose="general")
    assert caught.value.field == "value"
    with pytest.raises(DomainError):
        rules.add_contact(db, STAFF, customer, kind="email", value="not an e-mail", purpose="general")
    with pytest.raises(DomainError):
        rules.add_contact(db, STAFF, customer, kind="phone", value="12ab", purpose="general")
    second = rules.add_contact(db, STAFF, customer, kind="email", value="b@example.com", purpose="technical",
                               primary=True)
    assert second.primary and not first.primary
    changes = rules.update_contact(db, STAFF, first, value="c@example.com", purpose=ContactPurpose.GENERAL,
                                   primary=False)
    assert changes["value"] == ["A@example.com", "c@example.com"]
    rules.remove_contact(db, STAFF, second)
    assert first.primary  # took over
    db.commit()
    actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["contact.added", "contact.added", "contact.updated", "contact.removed"]


def test_the_last_email_stays_when_invoices_go_by_email(db):
    plan = BillingPlan(name="By e-mail", customer_name="E-mail", invoice_day=1, due_days=14, delivery=Delivery.EMAIL)
    customer = CustomerFactory(billing_plan=plan)
    only = rules.add_contact(db, STAFF, customer, kind="email", value="only@example.com", purpose="billing")
    with pytest.raises(DomainError):
        rules.remove_contact(db, STAFF, only)
    plan.delivery = Delivery.POST
    rules.remove_contact(db, STAFF, only)


def test_addresses(db):
    customer = CustomerFactory()
    with pytest.raises(rules.CustomerInvalid) as caught:
        rules.add_address(db, STAFF, customer, {"kind": "installation", "street": "", "city": "Brno",
                                                "postal_code": "1", "country": "CZ"})
    assert {"street", "postal_code"} <= set(caught.value.errors)
    address = rules.add_address(db, STAFF, customer, {"kind": "installation", "street": "Polní 3", "city": "Brno",
                                                      "postal_code": "60200", "country": "CZ", "note": "cottage"})
    assert address.postal_code == "602 00" and address.kind == AddressKind.INSTALLATION
    changes = rules.update_address(db, STAFF, address, {"kind": "postal", "street": "Polní 3", "city": "Brno",
                                                        "postal_code": "602 00", "country": "CZ", "note": ""})
    assert changes == {"kind": ["installation", "postal"], "note": ["cottage", ""]}
    rules.remove_address(db, STAFF, address)
    db.commit()
    actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["address.added", "address.updated", "address.removed"]


# ---------------------------------------------------------------------------------- overview, impersonation

def test_summary(db):
    customer = CustomerFactory()
    make_invoice(customer, 605, due_date=date(2025, 1, 15))
    CustomerServiceFactory(customer=customer)
    db.commit()
    summary = rules.customer_summary(db, customer, today=date(2025, 2, 1))
    assert summary.balance == {"CZK": Decimal("605.00")}
    assert summary.overdue == {"CZK": Decimal("605.00")}
    assert summary.services_by_state == {"active": 1}
    assert [due for _, due in summary.open_invoices] == [Decimal("605.00")]
    assert summary.dunning_case is None and not summary.never_block


def test_impersonation_needs_a_login_and_is_audited(db):
    customer = CustomerFactory()
    with pytest.raises(DomainError):
        rules.start_impersonation(db, STAFF, customer)
    login = CustomerLoginFactory(customer=customer)
    assert rules.start_impersonation(db, STAFF, customer) == login
    rules.end_impersonation(db, STAFF, login)
    db.commit()
    entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.action for e in entries] == ["customer.impersonation_started", "customer.impersonation_ended"]
    assert entries[0].changes == {"login": [None, login.email]}
    assert all(e.customer_id == customer.id and e.actor_id == 7 for e in entries)


def test_groups_unique_names_audit_and_counts(db):
    loc_a, loc_b = LocationFactory(), LocationFactory()
    group = rules.create_group(db, STAFF, name=" Business  clients ", description="Invoices with VAT")
    assert group.name == "Business clients"
    with pytest.raises(DomainError) as caught:
        rules.create_group(db, STAFF, name="business CLIENTS")
    assert caught.value.field == "name"
    with pytest.raises(DomainError):
        rules.create_group(db, STAFF, name="")
    other = rules.create_group(db, STAFF, name="Seniors")
    with pytest.raises(DomainError):
        rules.update_group(db, STAFF, other, name="Business clients")
    assert rules.update_group(db, STAFF, other, name="Seniors 65+") == {"name": ["Seniors", "Seniors 65+"]}
    CustomerFactory(location=loc_a).groups = [group]
    CustomerFactory(location=loc_b).groups = [group, other]
    db.commit()
    assert [(g.name, n) for g, n in rules.groups_with_counts(db, None)] == [("Business clients", 2), ("Seniors 65+", 1)]
    assert [(g.name, n) for g, n in rules.groups_with_counts(db, [loc_a.id])] == [("Business clients", 1), ("Seniors 65+", 0)]
    assert rules.group_counts(db, [other.id], None) == {other.id: 1}
    assert rules.group_counts(db, [group.id, other.id], [loc_a.id]) == {group.id: 1}
    actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["customer_group.created", "customer_group.created", "customer_group.updated"]
