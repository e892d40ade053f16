"""`flask agreements enforce-acceptance`: the acceptance rule's daily run from the command line."""
from datetime import UTC, date, datetime

from sqlalchemy import select

from portal.domain import agreements as rules
from portal.domain.actors import Actor
from portal.models import AgreementType, AuditEntry, CustomerService, Job, JobState, ServiceState
from tests.domain.lifecycle_fixtures import service
from tests.factories import CustomerLoginFactory


def _world(db):
    login = CustomerLoginFactory()
    svc = service(login.customer)
    atype = AgreementType(name="Service agreement", code="SA", requires_confirmation=True, remind_days=7,
                          block_days=14, valid_from=date(2020, 1, 1))
    db.add(atype)
    db.flush()
    a = rules.create_agreement(db, atype, login.customer, [svc], actor=Actor.system("test"))
    rules.issue_agreement(db, a, actor=Actor.system("test"), on=date(2025, 3, 1))
    a.issued_at = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    db.commit()
    return a.id, svc.id


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["agreements", "enforce-acceptance", *args])


def test_reminds_then_blocks_and_prints_counts(app, db, outbox):
    agreement_id, service_id = _world(db)
    result = _run(app, "--date", "2025-03-07")
    assert result.exit_code == 0, result.output
    assert "reminders: 0" in result.output and outbox() == []

    result = _run(app, "--date", "2025-03-08")
    assert result.exit_code == 0, result.output
    assert "Agreement acceptance on 2025-03-08" in result.output
    assert "unaccepted agreements considered: 1" in result.output
    assert "reminders: 1 (e-mails sent: 1)" in result.output
    assert f"/agreements/{agreement_id}/accept" in outbox()[0].text

    result = _run(app, "--date", "2025-03-15")
    assert "reminders: 0" in result.output
    assert "agreements blocked: 1, services blocked: 1" in result.output
    db.expire_all()
    assert db.get(CustomerService, service_id).state == ServiceState.BLOCKED
    entries = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "agreement",
                                                         AuditEntry.entity_id == agreement_id)).all()
    assert {rules.REMINDED_ACTION, rules.BLOCKED_ACTION} <= set(entries)
    assert len(outbox()) == 1


def test_bad_date_is_refused(app, db):
    result = _run(app, "--date", "2025-13-01")
    assert result.exit_code != 0
    assert db.scalar(select(AuditEntry)) is None


def test_with_queue_becomes_a_job(app, db, outbox):
    _, service_id = _world(db)
    result = _run(app, "--date", "2025-03-20", "--queue")
    assert result.exit_code == 0, result.output
    assert "Queued job" in result.output
    job = db.scalar(select(Job))
    assert job.kind == "agreement_acceptance" and job.params["on"] == "2025-03-20"
    assert job.state == JobState.DONE, job.error
    assert job.result["reminders"] == 1 and job.result["services_blocked"] == 1
    db.expire_all()
    assert db.get(CustomerService, service_id).state == ServiceState.BLOCKED
