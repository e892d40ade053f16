"""The Czech banks' formats (ABO/GPC, Fio CSV), MT940, CAMT.054; detection by content; the
statement's account. Real banks' samples (tests/data/README.md names the sources) next to the
portal's own, written in the documented layouts so they pay the test customers."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.dunning import _candidates
from portal.domain.statements import (
    AlreadyImported,
    StatementRejected,
    import_statement,
    parse_abo,
    parse_statement,
)
from portal.models import AuditEntry, Payment, PaymentState, StatementFormat, StatementImport
from tests.domain.payments_fixtures import SYSTEM, read
from tests.domain.test_statement_import import customers, nothing_written  # noqa: F401 — fixtures

D = Decimal


def _payments(db) -> dict[str, Payment]:
    return {p.bank_reference: p for p in db.scalars(select(Payment))}


def _reversal_outcomes(db, imp) -> list[str]:
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "statement.imported",
                                               AuditEntry.entity_id == imp.id))
    return [r["outcome"] for r in entry.changes["reversals"]]


@pytest.fixture
def foreign_samples(app, monkeypatch):
    """The real banks' samples are for their owners' accounts: made ours for the test."""
    monkeypatch.setitem(app.config, "STATEMENT_ACCOUNTS", [
        "CZ4201000001071234567890", "2600113745/2010", "0035-2915203-10-000", "1234567890/2010", "0001234567",
        *[f"50880050/{n}" for n in (
            "0194774600888", "0194777100888", "0194778300888", "0194779500888", "0194780100888",
            "0194780101888", "0194781300888", "0194782500888", "0194783700888", "0194784900888",
            "0194784901888", "0194785000888", "0194785001888", "0194786200888", "0194787400888",
            "0194791600888", "0194791601888", "0194798900888", "0194799000888", "0194804000888")],
    ])


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(("name", "fmt"), [
    ("camt053_sample.xml", StatementFormat.CAMT053), ("abo_fio_k3a.gpc", StatementFormat.ABO),
    ("abo_portal.gpc", StatementFormat.ABO), ("mt940_betterplace_sepa.sta", StatementFormat.MT940),
    ("mt940_jejik_ing.sta", StatementFormat.MT940), ("mt940_portal.sta", StatementFormat.MT940),
    ("fio_api.csv", StatementFormat.FIO_CSV), ("fio_freenetis_ib.csv", StatementFormat.FIO_CSV),
    ("payments.csv", StatementFormat.CSV),
])
def test_the_format_is_told_by_content_not_by_name(name, fmt):
    assert parse_statement(read(name)).format == fmt


@pytest.mark.parametrize("data", [b"%PDF-1.7 binary", b"hello world\n", b"MZ\x90\x00"])
def test_a_file_no_reader_knows_is_refused_naming_what_was_expected(db, data):
    with pytest.raises(StatementRejected) as exc:
        import_statement(db, "x.txt", data, actor=SYSTEM)
    message = str(exc.value)
    assert ("ABO/GPC" in message and "MT940" in message and "Fio" in message) or "UTF-8" in message
    nothing_written(db)


def test_a_statement_for_an_account_not_ours_is_refused_and_imports_nothing(db, customers):  # noqa: F811
    data = read("abo_portal.gpc").replace(b"0740000192000145399", b"0740000190000000042")
    with pytest.raises(StatementRejected, match=r"account 19-42, which is not one of the portal's accounts"):
        import_statement(db, "other.gpc", data, actor=SYSTEM)
    nothing_written(db)


# ---------------------------------------------------------------- ABO / GPC


def test_fio_gpc_sample_reads_its_account_and_skips_the_debit(foreign_samples):
    parsed = parse_abo(read("abo_fio_k3a.gpc"))  # a real Fio banka export: one debit (code 1)
    assert parsed.accounts == ["2600113745"] and parsed.credits == [] and parsed.skipped == 1


def test_abo_credits_become_paired_payments(db, customers):  # noqa: F811
    imp = import_statement(db, "v.gpc", read("abo_portal.gpc"), actor=SYSTEM)
    assert imp.format == StatementFormat.ABO
    assert (imp.payments_count, imp.matched_count, imp.unmatched_count, imp.total) == (3, 2, 1, D("1510.00"))
    rows = _payments(db)
    jana = rows["1001"]
    assert (jana.variable_symbol, jana.counterparty_account, jana.counterparty_name, jana.received_on) == (
        "2025000101", "123456789/0300", "NOVAKOVA JANA", date(2025, 3, 4))
    assert jana.message == "Platba za internet brezen"  # the 076 line
    assert jana.customer_id == customers["jana"].id and customers["invoice"].paid_at == date(2025, 3, 4)
    karel = rows["1002"]
    assert (karel.variable_symbol, karel.constant_symbol, karel.counterparty_account) == (
        "7100001", "0308", "19-123457/0100")
    assert rows["1004"].state == PaymentState.UNMATCHED


def test_abo_reversal_of_a_credit_reopens_the_invoice_and_dunning_sees_it(db, customers):  # noqa: F811
    import_statement(db, "a.gpc", read("abo_portal.gpc"), actor=SYSTEM)
    assert customers["jana"].id not in _candidates(db, date(2025, 4, 1))
    imp = import_statement(db, "b.gpc", read("abo_portal_reversal.gpc"), actor=SYSTEM)
    assert imp.payments_count == 0  # a reversal is never a new payment
    jana = _payments(db)["1001"]
    assert jana.state == PaymentState.REVERSED and jana.reversed_by_reference == "2001"
    assert customers["invoice"].paid_at is None and customers["invoice"].paid_amount == D("0.00")
    assert customers["jana"].id in _candidates(db, date(2025, 4, 1))
    assert _reversal_outcomes(db, imp) == ["reversed", "returned_debit"]
    # the same reversal in a later (overlapping) statement reverses nothing twice
    again = import_statement(db, "c.gpc", read("abo_portal_reversal.gpc") + b"\r\n", actor=SYSTEM)
    assert _reversal_outcomes(db, again) == ["already_reversed", "returned_debit"]


def test_abo_reimport_adds_nothing(db, customers):  # noqa: F811
    data = read("abo_portal.gpc")
    import_statement(db, "a.gpc", data, actor=SYSTEM)
    with pytest.raises(AlreadyImported):
        import_statement(db, "a.gpc", data, actor=SYSTEM)
    imp = import_statement(db, "overlap.gpc", data + b"\r\n", actor=SYSTEM)
    assert (imp.payments_count, imp.duplicates_count) == (0, 3)
    assert db.scalar(select(func.count(Payment.id))) == 3


@pytest.mark.parametrize(("change", "message"), [
    (lambda line: line[:48] + "00000006O500" + line[60:], r"line 2 \(amount\): amount '00000006O500'"),
    (lambda line: line[:60] + "3" + line[61:], r"line 2 \(accounting code\): accounting code '3'"),
    (lambda line: line[:122] + "310225", r"line 2 \(date\): date '310225'"),
    (lambda line: line[:100], r"line 2: a 075 record has 100 characters; 128 expected"),
    (lambda line: "099" + line[3:], r"line 2: record type '099'"),
    (lambda line: line[:118] + "0840" + line[122:], r"line 2 \(currency\): currency '0840'"),
])
def test_malformed_abo_names_the_line_and_field_and_writes_nothing(db, customers, change, message):  # noqa: F811
    lines = read("abo_portal.gpc").decode("cp1250").split("\r\n")
    lines[1] = change(lines[1])
    with pytest.raises(StatementRejected, match=message):
        import_statement(db, "bad.gpc", "\r\n".join(lines).encode("cp1250"), actor=SYSTEM)
    nothing_written(db)


# ---------------------------------------------------------------- Fio CSV


def test_fio_csv_pays_reverses_and_skips_debits(db, customers):  # noqa: F811
    imp = import_statement(db, "fio.csv", read("fio_api.csv"), actor=SYSTEM)
    assert imp.format == StatementFormat.FIO_CSV
    assert (imp.payments_count, imp.matched_count, imp.total) == (2, 2, D("1855.00"))
    rows = _payments(db)
    assert rows["23771345451"].state == PaymentState.REVERSED  # the "Opravný pohyb" took it back
    assert customers["invoice"].paid_at is None
    assert rows["23771345452"].constant_symbol == "0308" and rows["23771345452"].counterparty_account == \
        "19-123457/0100"
    assert _reversal_outcomes(db, imp) == ["reversed"]
    again = import_statement(db, "fio2.csv", read("fio_api.csv") + b"\n", actor=SYSTEM)
    assert (again.payments_count, again.duplicates_count) == (0, 2)
    assert _reversal_outcomes(db, again) == ["already_reversed"]


def test_fio_internet_banking_export_real_sample(db, foreign_samples):
    imp = import_statement(db, "Pohyby.csv", read("fio_freenetis_ib.csv"), actor=SYSTEM)  # Windows-1250
    payment = db.scalar(select(Payment))
    assert imp.payments_count == 1 and payment.bank_reference == "1115992591"
    assert (payment.amount, payment.variable_symbol, payment.counterparty_account) == (
        D("2000.00"), "215", "670100-2202442842/6210")
    assert payment.received_on == date(2010, 12, 16)


def test_malformed_fio_csv_names_the_line(db, customers):  # noqa: F811
    data = read("fio_api.csv").replace(b";1 250,00;", b";1 25O,00;")
    with pytest.raises(StatementRejected, match=r"line 15 \(Objem\): amount '1 25O,00'"):
        import_statement(db, "bad.csv", data, actor=SYSTEM)
    nothing_written(db)


# ---------------------------------------------------------------- MT940


def test_mt940_pays_and_a_reversal_of_credit_undoes_it(db, customers):  # noqa: F811
    imp = import_statement(db, "s.sta", read("mt940_portal.sta"), actor=SYSTEM)
    assert imp.format == StatementFormat.MT940
    rows = _payments(db)
    assert set(rows) == {"25030400MT001", "25030400MT002"}
    assert rows["25030400MT001"].variable_symbol == "2025000101"  # from :86: /VS/
    assert rows["25030400MT002"].customer_id == customers["karel"].id  # customer reference of digits: the VS
    assert rows["25030400MT001"].state == PaymentState.REVERSED  # the RC line of the second statement
    assert _reversal_outcomes(db, imp) == ["reversed"]
    assert customers["jana"].id in _candidates(db, date(2025, 4, 1))
    again = import_statement(db, "s2.sta", read("mt940_portal.sta") + b"\n", actor=SYSTEM)
    assert (again.payments_count, again.duplicates_count) == (0, 2)


def test_mt940_real_samples_import_and_reimport_adds_nothing(db, foreign_samples):
    imp = import_statement(db, "sepa.sta", read("mt940_betterplace_sepa.sta"), actor=SYSTEM)
    assert imp.payments_count == 41 and db.scalar(select(func.count(Payment.id))) == 41
    # its two RC (reversal of a credit) lines name no payment of ours: left for staff
    assert _reversal_outcomes(db, imp) == ["left_for_staff", "left_for_staff"]
    ing = import_statement(db, "ing.sta", read("mt940_jejik_ing.sta"), actor=SYSTEM)
    assert (ing.payments_count, ing.total) == (2, D("4.68"))
    again = import_statement(db, "ing2.sta", read("mt940_jejik_ing.sta") + b"\n", actor=SYSTEM)
    assert (again.payments_count, again.duplicates_count) == (0, 2)


def test_malformed_mt940_names_the_line(db, customers):  # noqa: F811
    data = read("mt940_portal.sta").replace(b":61:2503040304CK605,00NTRF7100001", b":61:2503040304XK605,00NTRF7100001")
    with pytest.raises(StatementRejected, match="line 7: the :61: statement line"):
        import_statement(db, "bad.sta", data, actor=SYSTEM)
    nothing_written(db)


# ---------------------------------------------------------------- CAMT.054


def _as_camt054(data: bytes) -> bytes:
    return (data.replace(b"camt.053.001.02", b"camt.054.001.08")
            .replace(b"BkToCstmrStmt>", b"BkToCstmrDbtCdtNtfctn>").replace(b"<Stmt>", b"<Ntfctn>")
            .replace(b"</Stmt>", b"</Ntfctn>"))


def test_camt054_notification_imports_like_a_statement_and_overlaps_with_it(db, customers):  # noqa: F811
    imp = import_statement(db, "n.xml", _as_camt054(read("camt053_sample.xml")), actor=SYSTEM)
    assert imp.format == StatementFormat.CAMT054 and imp.payments_count == 4
    later = import_statement(db, "s.xml", read("camt053_sample.xml"), actor=SYSTEM)  # the day's statement
    assert (later.payments_count, later.duplicates_count) == (0, 4)
    assert db.scalar(select(func.count(StatementImport.id))) == 2


def test_a_real_camt053_v08_in_a_currency_the_portal_has_not_is_refused_naming_it(db, foreign_samples):
    data = read("camt053_kedder_v08_chf.xml")  # a Swiss bank's redacted statement
    with pytest.raises(StatementRejected, match=r"entry 1 \(Ntry/Amt/@Ccy\): currency 'CHF' is not supported"):
        import_statement(db, "chf.xml", data, actor=SYSTEM)
    nothing_written(db)
    imp = import_statement(db, "eur.xml", data.replace(b'Ccy="CHF"', b'Ccy="EUR"'), actor=SYSTEM)
    payment = db.scalar(select(Payment))
    assert imp.payments_count == 1 and payment.bank_reference == "A032-J30K20-03-JF021"
    assert (payment.amount, payment.variable_symbol, payment.counterparty_name) == (D("1284.30"), "9502830971", "PAYEE")


# ---------------------------------------------------------------- returns without RvslInd


def test_a_returned_direct_debit_undoes_the_payment_it_returns(db, customers):  # noqa: F811
    import_statement(db, "a.xml", read("camt053_sample.xml"), actor=SYSTEM)
    assert customers["invoice"].paid_at == date(2025, 3, 4)
    imp = import_statement(db, "b.xml", read("camt053_dd_return.xml"), actor=SYSTEM)
    assert imp.payments_count == 0  # the returned refund (CRDT) is no customer's payment either
    jana = _payments(db)["2025030400001"]
    assert jana.state == PaymentState.REVERSED and jana.reversed_by_reference == "2025031100901"
    assert customers["invoice"].paid_at is None and customers["jana"].id in _candidates(db, date(2025, 4, 1))
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "statement.imported",
                                               AuditEntry.entity_id == imp.id))
    assert [(r["outcome"], r["return_reason"]) for r in entry.changes["reversals"]] == [
        ("reversed", "AM04"), ("returned_debit", "AC04")]
    again = import_statement(db, "c.xml", read("camt053_dd_return.xml") + b"\n", actor=SYSTEM)
    assert _reversal_outcomes(db, again) == ["already_reversed", "returned_debit"]
    assert db.scalar(select(func.count(Payment.id))) == 4
