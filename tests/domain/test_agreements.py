"""portal.domain.agreements: numbering per scope, issue, invalidation, the plan-change annex,
and acceptance by e-mailed code or by staff."""
from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.documents import read_document
from portal.domain import agreements as rules
from portal.domain.actors import Actor
from portal.models import (
    AcceptanceMethod,
    Agreement,
    AgreementState,
    AgreementType,
    AuditEntry,
    OneTimeCode,
)
from portal.models.agreements import Numbering
from portal.models.base import utcnow
from tests.factories import (
    CustomerFactory,
    CustomerLoginFactory,
    CustomerServiceFactory,
    OperatorFactory,
    ServiceDefinitionFactory,
)

SYSTEM = Actor.system("test")


def make_type(db, code="SA", *, numbering=Numbering.PER_TYPE, fmt="{year}/{seq:05d}", is_annex=False,
              template=None) -> AgreementType:
    t = AgreementType(name=f"Type {code}", code=code, numbering=numbering, number_format=fmt, is_annex=is_annex,
                      template=template or ("annex.html" if is_annex else "standard.html"),
                      valid_from=date(2020, 1, 1))
    db.add(t)
    db.flush()
    return t


def issued(db, atype, customer, on=date(2026, 3, 1), services=None, parent=None) -> Agreement:
    services = services if services is not None else [CustomerServiceFactory(customer=customer)]
    a = rules.create_agreement(db, atype, customer, services, actor=SYSTEM, parent=parent)
    return rules.issue_agreement(db, a, actor=SYSTEM, on=on)


# --- numbering ------------------------------------------------------------------------------

def test_scope_strings(db):
    c = CustomerFactory()
    g = make_type(db, "G", numbering=Numbering.GLOBAL)
    t = make_type(db, "T", numbering=Numbering.PER_TYPE)
    pc = make_type(db, "PC", numbering=Numbering.PER_CUSTOMER)
    assert rules.numbering_scope(g, c) == "agreement"
    assert rules.numbering_scope(t) == f"agreement:{t.id}"  # the demo data passes the type alone
    assert rules.numbering_scope(pc, c) == f"agreement:{pc.id}:customer:{c.id}"
    with pytest.raises(rules.AgreementError):
        rules.numbering_scope(pc)


def test_per_type_numbers_are_gapless_and_restart_each_year(db):
    c = CustomerFactory()
    t = make_type(db)
    other = make_type(db, "X")
    numbers = [issued(db, t, c, on=date(2026, 1, d)).number for d in (5, 6, 7)]
    assert numbers == ["2026/00001", "2026/00002", "2026/00003"]
    assert issued(db, other, c).number == "2026/00001"  # its own counter
    assert issued(db, t, c, on=date(2027, 1, 2)).number == "2027/00001"


def test_global_numbering_shares_one_counter_across_types(db):
    c = CustomerFactory()
    a = make_type(db, "A", numbering=Numbering.GLOBAL, fmt="{type_code}-{year}-{seq}")
    b = make_type(db, "B", numbering=Numbering.GLOBAL, fmt="{type_code}-{year}-{seq}")
    assert [issued(db, a, c).number, issued(db, b, c).number, issued(db, a, c).number] == \
        ["A-2026-1", "B-2026-2", "A-2026-3"]


def test_per_customer_numbering(db):
    c1, c2 = CustomerFactory(), CustomerFactory()
    t = make_type(db, "PC", numbering=Numbering.PER_CUSTOMER, fmt="{customer_number}/{year}/{seq:02d}")
    assert issued(db, t, c1).number == f"{c1.customer_number}/2026/01"
    assert issued(db, t, c2).number == f"{c2.customer_number}/2026/01"
    second = issued(db, t, c1)
    assert second.number == f"{c1.customer_number}/2026/02"
    assert second.sequence == 2


def test_bad_format_costs_no_number(db):
    c = CustomerFactory()
    t = make_type(db, fmt="{year}/{nope}")
    a = rules.create_agreement(db, t, c, [], actor=SYSTEM)
    with pytest.raises(rules.DomainError):
        rules.issue_agreement(db, a, actor=SYSTEM, on=date(2026, 1, 1))
    t.number_format = "{year}/{seq}"
    assert issued(db, t, c, on=date(2026, 1, 1)).number == "2026/1"


# --- create, issue, invalidate -------------------------------------------------------------

def test_services_must_belong_to_the_customer(db):
    c, other = CustomerFactory(), CustomerFactory()
    t = make_type(db)
    with pytest.raises(rules.ServiceNotOwned):
        rules.create_agreement(db, t, c, [CustomerServiceFactory(customer=other)], actor=SYSTEM)


def test_annex_type_needs_a_parent_of_the_same_customer(db):
    c, other = CustomerFactory(), CustomerFactory()
    annex = make_type(db, "ANX", is_annex=True)
    with pytest.raises(rules.AnnexNeedsParent):
        rules.create_agreement(db, annex, c, [], actor=SYSTEM)
    foreign = issued(db, make_type(db), other)
    with pytest.raises(rules.AnnexNeedsParent):
        rules.create_agreement(db, annex, c, [], actor=SYSTEM, parent=foreign)


def test_issue_assigns_number_stores_pdf_and_audits(db):
    c = CustomerFactory()
    a = rules.create_agreement(db, make_type(db), c, [CustomerServiceFactory(customer=c)], actor=SYSTEM)
    assert a.state == AgreementState.DRAFT and a.number is None
    rules.issue_agreement(db, a, actor=SYSTEM, on=date(2026, 2, 3))
    assert a.state == AgreementState.ISSUED
    assert a.conclusion_date == date(2026, 2, 3) and a.valid_from == date(2026, 2, 3)
    assert a.issued_at is not None
    doc = a.current_document
    assert doc is not None
    data = read_document(doc)
    assert data.startswith(b"%PDF") and hashlib.sha256(data).hexdigest() == doc.sha256
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == a.id)).all()
    assert "agreement.issued" in actions


def test_only_a_draft_is_issued(db):
    c = CustomerFactory()
    a = issued(db, make_type(db), c)
    with pytest.raises(rules.AgreementStateError):
        rules.issue_agreement(db, a, actor=SYSTEM)


def test_invalidate_needs_a_note(db):
    c = CustomerFactory()
    a = issued(db, make_type(db), c)
    with pytest.raises(rules.NoteRequired):
        rules.invalidate_agreement(db, a, actor=SYSTEM, note="  ")
    rules.invalidate_agreement(db, a, actor=SYSTEM, note="Signed by mistake")
    assert a.state == AgreementState.INVALID and a.invalid_note == "Signed by mistake"
    with pytest.raises(rules.AgreementStateError):
        rules.invalidate_agreement(db, a, actor=SYSTEM, note="again")


def test_draft_can_be_invalidated(db):
    c = CustomerFactory()
    a = rules.create_agreement(db, make_type(db), c, [], actor=SYSTEM)
    rules.invalidate_agreement(db, a, actor=SYSTEM, note="Not needed")
    assert a.state == AgreementState.INVALID


# --- plan change annex ----------------------------------------------------------------------

def test_annex_for_plan_change(db):
    c = CustomerFactory()
    old = CustomerServiceFactory(customer=c, definition=ServiceDefinitionFactory(customer_name="Internet 300",
                                                                                  price=Decimal("605.00")))
    new = CustomerServiceFactory(customer=c, definition=ServiceDefinitionFactory(customer_name="Internet 1000",
                                                                                  price=Decimal("799.00")))
    main = issued(db, make_type(db), c, services=[old])
    annex_type = make_type(db, "ANX", is_annex=True, fmt="D{year}/{seq:05d}")
    annex = rules.create_annex_for_plan_change(db, old, new, actor=SYSTEM, on=date(2026, 5, 1),
                                               today=date(2026, 4, 20))
    assert annex is not None
    assert annex.type_id == annex_type.id and annex.parent_id == main.id
    assert annex.state == AgreementState.ISSUED and annex.number == "D2026/00001"
    assert annex.customer_services == [new]
    assert annex.valid_from == date(2026, 5, 1) and annex.conclusion_date == date(2026, 4, 20)
    assert "Internet 300" in annex.summary and "Internet 1000" in annex.summary
    assert "605.00" in annex.summary and "799.00" in annex.summary and "01.05.2026" in annex.summary
    assert annex.current_document is not None and annex.current_document.kind.value == "annex"
    # A second change of the new service amends the same main agreement, not the annex.
    newer = CustomerServiceFactory(customer=c)
    again = rules.create_annex_for_plan_change(db, new, newer, actor=SYSTEM, on=date(2026, 6, 1))
    assert again.parent_id == main.id


def test_annex_is_skipped_without_type_or_parent(db):
    c = CustomerFactory()
    old, new = CustomerServiceFactory(customer=c), CustomerServiceFactory(customer=c)
    issued(db, make_type(db), c, services=[old])
    assert rules.create_annex_for_plan_change(db, old, new, actor=SYSTEM, on=date(2026, 5, 1)) is None
    make_type(db, "ANX", is_annex=True)
    uncovered = CustomerServiceFactory(customer=c)
    assert rules.create_annex_for_plan_change(db, uncovered, new, actor=SYSTEM, on=date(2026, 5, 1)) is None


# --- acceptance -----------------------------------------------------------------------------

@pytest.fixture
def case(db, app):
    login = CustomerLoginFactory()
    agreement = issued(db, make_type(db), login.customer)
    return login, agreement


def _send(db, outbox, agreement, login) -> str:
    rules.request_acceptance_code(db, agreement, login, ip="203.0.113.5")
    mails = outbox()
    assert mails[-1]["To"] == login.email
    return re.search(r"\b(\d{6})\b", mails[-1].text).group(1)


def test_acceptance_happy_path(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    code = _send(db, outbox, agreement, login)
    otc = db.scalars(select(OneTimeCode)).one()
    assert code not in otc.code_hash and len(otc.code_hash) == 64
    acc = rules.accept_with_code(db, agreement, login, code, ip="203.0.113.5", user_agent="Firefox/140")
    assert agreement.state == AgreementState.ACCEPTED and agreement.accepted_at is not None
    assert acc.method == AcceptanceMethod.EMAIL_CODE and acc.customer_login_id == login.id
    assert acc.document_sha256 == hashlib.sha256(read_document(agreement.current_document)).hexdigest()
    assert (acc.ip, acc.user_agent) == ("203.0.113.5", "Firefox/140")
    assert otc.used_at is not None
    assert "agreement.accepted" in db.scalars(select(AuditEntry.action)).all()


def test_code_needs_the_document_opened(db, case, outbox):
    login, agreement = case
    with pytest.raises(rules.DocumentNotOpened):
        rules.request_acceptance_code(db, agreement, login)
    assert outbox() == []


def test_opened_by_another_login_does_not_count(db, case, outbox):
    login, agreement = case
    other = CustomerLoginFactory(customer=login.customer)
    rules.mark_document_opened(db, agreement, other)
    with pytest.raises(rules.DocumentNotOpened):
        rules.request_acceptance_code(db, agreement, login)


def test_wrong_code_counts_attempts_up_to_five(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    code = _send(db, outbox, agreement, login)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        with pytest.raises(rules.CodeInvalid) as exc:
            rules.accept_with_code(db, agreement, login, wrong, ip=None, user_agent=None)
        assert exc.value.field == "code"
    with pytest.raises(rules.TooManyAttempts):
        rules.accept_with_code(db, agreement, login, wrong, ip=None, user_agent=None)
    # Even the right code no longer works; a new one does.
    with pytest.raises(rules.TooManyAttempts):
        rules.accept_with_code(db, agreement, login, code, ip=None, user_agent=None)
    fresh = _send(db, outbox, agreement, login)
    rules.accept_with_code(db, agreement, login, fresh, ip=None, user_agent=None)
    assert agreement.state == AgreementState.ACCEPTED


def test_expired_code(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    code = _send(db, outbox, agreement, login)
    db.scalars(select(OneTimeCode)).one().expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(rules.CodeExpired):
        rules.accept_with_code(db, agreement, login, code, ip=None, user_agent=None)


def test_new_code_supersedes_the_old(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    first = _send(db, outbox, agreement, login)
    second = _send(db, outbox, agreement, login)
    if first != second:
        with pytest.raises(rules.CodeInvalid):
            rules.accept_with_code(db, agreement, login, first, ip=None, user_agent=None)
    rules.accept_with_code(db, agreement, login, second, ip=None, user_agent=None)


def test_code_is_single_use(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    code = _send(db, outbox, agreement, login)
    rules.accept_with_code(db, agreement, login, code, ip=None, user_agent=None)
    with pytest.raises(rules.AgreementStateError):
        rules.accept_with_code(db, agreement, login, code, ip=None, user_agent=None)
    # Even were the agreement issued again, the used code finds nothing pending.
    agreement.state = AgreementState.ISSUED
    with pytest.raises(rules.CodeInvalid):
        rules.accept_with_code(db, agreement, login, code, ip=None, user_agent=None)


def test_another_customers_agreement_is_refused(db, case, outbox):
    login, _ = case
    theirs = issued(db, make_type(db, "O"), CustomerFactory())
    with pytest.raises(rules.AgreementStateError):
        rules.request_acceptance_code(db, theirs, login)


def test_draft_cannot_be_accepted(db, case):
    login, _ = case
    draft = rules.create_agreement(db, make_type(db, "D"), login.customer, [], actor=SYSTEM)
    with pytest.raises(rules.AgreementStateError):
        rules.request_acceptance_code(db, draft, login)


def test_accept_by_staff(db, case):
    _, agreement = case
    op = OperatorFactory()
    acc = rules.accept_by_staff(db, agreement, operator_actor=Actor.operator(op), note="Signed at the branch")
    assert acc.method == AcceptanceMethod.STAFF and acc.operator_id == op.id
    assert acc.document_sha256 == agreement.current_document.sha256
    assert agreement.state == AgreementState.ACCEPTED
    with pytest.raises(rules.AgreementStateError):
        rules.accept_by_staff(db, agreement, operator_actor=Actor.operator(op), note="")
    with pytest.raises(rules.AgreementError):
        rules.accept_by_staff(db, agreement, operator_actor=SYSTEM, note="")


def test_annex_from_a_real_plan_change(db):
    """What lifecycle.change_plan's hook calls: the annex covers the successor service."""
    from portal.domain.lifecycle import change_plan

    c = CustomerFactory()
    target = ServiceDefinitionFactory(customer_name="Internet 1000", price=Decimal("799.00"))
    old = CustomerServiceFactory(customer=c, definition=ServiceDefinitionFactory(
        customer_name="Internet 300", price=Decimal("605.00"), allowed_targets=[target]))
    main = issued(db, make_type(db), c, services=[old])
    make_type(db, "ANX", is_annex=True)
    successor = change_plan(db, old, target, actor=SYSTEM, on=date(2026, 5, 1), today=date(2026, 4, 20))
    annex = rules.create_annex_for_plan_change(db, old, successor, actor=SYSTEM, on=date(2026, 5, 1),
                                               today=date(2026, 4, 20))
    assert annex.parent_id == main.id and annex.customer_services == [successor]
    assert "Internet 300 (605.00 CZK) to Internet 1000 (799.00 CZK) from 01.05.2026" in annex.summary


def test_at_most_five_codes_an_hour(db, case, outbox):
    login, agreement = case
    rules.mark_document_opened(db, agreement, login)
    for _ in range(rules.CODES_PER_HOUR):
        rules.request_acceptance_code(db, agreement, login)
    with pytest.raises(rules.TooManyCodes):
        rules.request_acceptance_code(db, agreement, login)
    assert len(outbox()) == rules.CODES_PER_HOUR
