"""Bank statement import: CAMT.053 and CSV, duplicates, malformed files, the CLI."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.cli.payments import group as payments_cli
from portal.domain.statements import (
    MAX_FILE_SIZE,
    AlreadyImported,
    StatementRejected,
    _parse_amount,
    check_statement,
    import_statement,
    parse_statement,
)
from portal.models import (
    AuditEntry,
    Invoice,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    StatementFormat,
    StatementImport,
)
from tests.domain.payments_fixtures import SYSTEM, make_invoice, read
from tests.factories import CustomerFactory, CustomerServiceFactory

D = Decimal


@pytest.fixture
def customers(db):
    """The customers the sample files pay: an invoice VS, a customer VS and a service VS."""
    jana = CustomerFactory(first_name="Jana", last_name="Nováková")
    invoice = make_invoice(jana, 605, variable_symbol="2025000101", due_date=date(2025, 3, 15))
    karel = CustomerFactory(variable_symbol="7100001")
    karel_invoice = make_invoice(karel, 605, due_date=date(2025, 3, 15))
    service = CustomerServiceFactory(variable_symbol="8800001")
    db.flush()
    return {"jana": jana, "invoice": invoice, "karel": karel, "karel_invoice": karel_invoice,
            "eva": service.customer}


def counts(imp: StatementImport) -> tuple:
    return imp.payments_count, imp.duplicates_count, imp.matched_count, imp.unmatched_count, imp.total


def nothing_written(db):
    assert db.scalar(select(func.count(Payment.id))) == 0
    assert db.scalar(select(func.count(StatementImport.id))) == 0
    assert db.scalar(select(func.count(PaymentAllocation.id))) == 0
    assert db.scalar(select(func.count(AuditEntry.id))) == 0


# ---------------------------------------------------------------- CAMT.053


def test_camt053_sample_imports_credits_and_pairs_them(db, customers):
    imp = import_statement(db, "camt053_sample.xml", read("camt053_sample.xml"), actor=SYSTEM)
    assert imp.format == StatementFormat.CAMT053
    assert counts(imp) == (4, 0, 3, 1, D("2605.00"))  # the bank fee (debit) is skipped
    by_ref = {p.bank_reference: p for p in db.scalars(select(Payment))}
    assert set(by_ref) == {"2025030400001", "2025030400002", "2025030400004", "2025030400005"}
    first = by_ref["2025030400001"]
    assert first.source == PaymentSource.BANK_IMPORT and first.statement_import_id == imp.id
    assert (first.variable_symbol, first.counterparty_name, first.counterparty_account) == (
        "2025000101", "Jana Nováková", "CZ5503000000000123456789")
    assert first.received_on == date(2025, 3, 4)
    assert first.customer_id == customers["jana"].id and first.state == PaymentState.MATCHED
    assert customers["invoice"].paid_at == date(2025, 3, 4)
    no_vs = by_ref["2025030400002"]
    assert no_vs.variable_symbol is None and no_vs.state == PaymentState.UNMATCHED
    assert no_vs.counterparty_account == "19-123457/0100" and "internet" in no_vs.message
    end_to_end = by_ref["2025030400004"]  # "/VS/0007100001/SS/0000000000/KS/0308"
    assert (end_to_end.variable_symbol, end_to_end.constant_symbol, end_to_end.specific_symbol) == (
        "0007100001", "0308", None)
    assert end_to_end.customer_id == customers["karel"].id
    assert customers["karel_invoice"].paid_amount == D("500.00")
    remittance = by_ref["2025030400005"]  # "VS: 8800001 TV balicek"
    assert remittance.variable_symbol == "8800001" and remittance.customer_id == customers["eva"].id
    assert remittance.state == PaymentState.OVERPAID  # no invoice yet: credit
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "statement.imported"))
    assert entry.entity_id == imp.id and entry.changes["debits_and_other_skipped"] == 1


def test_progress_is_reported_over_the_credits_and_checking_writes_nothing(db, customers):
    data = read("camt053_sample.xml")
    parsed = check_statement(db, data)  # what the upload page asks before queueing the import
    assert len(parsed.credits) == 4 and db.scalar(select(func.count(StatementImport.id))) == 0
    heard = []
    import_statement(db, "camt053_sample.xml", data, actor=SYSTEM, progress=lambda done, total: heard.append((done, total)))
    assert heard[0] == (0, 4) and heard[-1] == (4, 4)
    with pytest.raises(AlreadyImported):
        check_statement(db, data)


def test_reimporting_the_same_file_is_refused_and_adds_nothing(db, customers):
    data = read("camt053_sample.xml")
    import_statement(db, "a.xml", data, actor=SYSTEM)
    with pytest.raises(AlreadyImported, match="already imported on"):
        import_statement(db, "a-again.xml", data, actor=SYSTEM)
    assert db.scalar(select(func.count(Payment.id))) == 4


def test_overlapping_statement_counts_known_transactions_as_duplicates(db, customers):
    import_statement(db, "a.xml", read("camt053_sample.xml"), actor=SYSTEM)
    imp = import_statement(db, "b.xml", read("camt053_sample.xml") + b"\n<!-- re-exported -->\n", actor=SYSTEM)
    assert counts(imp) == (0, 4, 0, 0, D("0.00"))
    assert db.scalar(select(func.count(Payment.id))) == 4
    assert customers["invoice"].paid_amount == D("605.00")


def test_camt053_version_08_pending_entries_and_batches(db, customers):
    imp = import_statement(db, "v08.xml", read("camt053_v08.xml"), actor=SYSTEM)
    assert counts(imp) == (3, 0, 2, 1, D("905.00"))  # the pending (PDNG) entry is skipped
    rows = {p.bank_reference: p for p in db.scalars(select(Payment))}
    assert set(rows) == {"V08-0000001", "V08-0000003-1", "V08-0000003-2"}
    assert rows["V08-0000001"].variable_symbol == "7100001"  # EndToEndId of digits only
    assert rows["V08-0000001"].counterparty_name == "Jana Nováková"  # Dbtr/Pty/Nm
    assert rows["V08-0000001"].received_on == date(2025, 4, 1)
    assert rows["V08-0000003-1"].amount == D("100.00") and rows["V08-0000003-1"].variable_symbol == "7100001"
    assert rows["V08-0000003-2"].variable_symbol == "99999" and rows["V08-0000003-2"].customer_id is None


@pytest.mark.parametrize("version", ["02", "04", "06", "08"])
def test_camt053_versions_are_recognised(version):
    data = read("camt053_sample.xml").replace(b"camt.053.001.02", f"camt.053.001.{version}".encode())
    parsed = parse_statement(data)
    assert parsed.format == StatementFormat.CAMT053 and len(parsed.credits) == 4 and parsed.skipped == 1


def test_malformed_camt053_names_the_entry_and_element_and_writes_nothing(db, customers):
    with pytest.raises(StatementRejected) as exc:
        import_statement(db, "bad.xml", read("camt053_bad_amount.xml"), actor=SYSTEM)
    assert "entry 4" in str(exc.value) and "Ntry/Amt" in str(exc.value) and "5OO,00" in str(exc.value)
    assert exc.value.field == "file"
    nothing_written(db)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("camt053_truncated.xml", "malformed at line"),
        ("camt053_entities.xml", "DTD"),
        ("camt052_not_a_statement.xml", "not a CAMT.053"),
    ],
)
def test_unacceptable_xml_is_refused(db, name, message):
    with pytest.raises(StatementRejected, match=message):
        import_statement(db, name, read(name), actor=SYSTEM)
    nothing_written(db)


def test_camt053_entry_without_date_or_with_unknown_currency(db):
    data = read("camt053_sample.xml")
    no_date = data.replace(b"<BookgDt><Dt>2025-03-04</Dt></BookgDt>\n        <ValDt><Dt>2025-03-04</Dt></ValDt>\n"
                           b"        <AcctSvcrRef>2025030400002", b"<AcctSvcrRef>2025030400002")
    with pytest.raises(StatementRejected, match=r"entry 2 \(Ntry/BookgDt\)"):
        parse_statement(no_date)
    usd = data.replace(b'<Amt Ccy="CZK">1000.00</Amt>', b'<Amt Ccy="USD">1000.00</Amt>')
    with pytest.raises(StatementRejected, match=r"entry 2 .*USD"):
        parse_statement(usd)


# ---------------------------------------------------------------- CSV


def test_csv_sample_imports_like_the_camt_file(db, customers):
    imp = import_statement(db, "payments.csv", read("payments.csv"), actor=SYSTEM)
    assert imp.format == StatementFormat.CSV
    assert counts(imp) == (4, 0, 3, 1, D("2605.00"))
    rows = {p.bank_reference: p for p in db.scalars(select(Payment))}
    assert {"T-1001", "T-1002", "T-1004"} <= set(rows)
    derived = [ref for ref in rows if ref.startswith("csv:")]
    assert len(derived) == 1  # the row without transaction_id
    eva = rows[derived[0]]
    assert eva.counterparty_name == "Malá, Eva" and eva.customer_id == customers["eva"].id
    assert rows["T-1002"].amount == D("1000.00") and rows["T-1002"].state == PaymentState.UNMATCHED
    assert rows["T-1001"].constant_symbol == "0308" and rows["T-1001"].received_on == date(2025, 3, 4)
    # the same rows in another file (another sha256) add nothing, derived references included
    again = import_statement(db, "again.csv", read("payments.csv") + b"\n", actor=SYSTEM)
    assert counts(again) == (0, 4, 0, 0, D("0.00"))


def test_csv_in_windows_1250_with_commas_and_decimal_points(db, customers):
    text = ("Date,Amount,Currency,VS,Counterparty Name,Message,Transaction ID\n"
            "2025-03-05,605.00,CZK,2025000101,Jana Nováková,Příliš žluťoučký kůň,X-1\n"
            "2025-03-05,\"1,234.50\",CZK,,Ondřej Černý,,X-2\n")
    imp = import_statement(db, "cp1250.csv", text.encode("cp1250"), actor=SYSTEM)
    assert counts(imp) == (2, 0, 1, 1, D("1839.50"))
    first = db.scalar(select(Payment).where(Payment.bank_reference == "X-1"))
    assert first.message == "Příliš žluťoučký kůň" and first.counterparty_name == "Jana Nováková"


def test_two_equal_rows_without_reference_are_two_payments(db):
    text = "date;amount;currency;variable_symbol\n2025-03-05;100;CZK;1\n2025-03-05;100;CZK;1\n"
    imp = import_statement(db, "twins.csv", text.encode(), actor=SYSTEM)
    assert imp.payments_count == 2


def test_malformed_csv_names_line_3_and_writes_nothing(db, customers):
    with pytest.raises(StatementRejected) as exc:
        import_statement(db, "bad.csv", read("payments_bad_amount_line3.csv"), actor=SYSTEM)
    assert str(exc.value).startswith("line 3:") and "1 OOO,00" in str(exc.value)
    nothing_written(db)
    assert db.get(Invoice, customers["invoice"].id).paid_amount == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date;amount;currency\n2025-02-30;100;CZK\n", "line 2: date '2025-02-30'"),
        ("date;amount;currency\n2025-02-03;100;CZK\n2025-02-03;100.123;CZK\n", "line 3: amount '100.123' has more"),
        ("date;amount;currency\n\n2025-02-03;100;USD\n", "line 3: currency 'USD'"),
        ("date;amount\n2025-02-03;100\n", r"lacks the column\(s\) currency"),
        ("just some text\n", "header row"),
        ("date;amount;currency\n2025-02-03;100;CZK;x;y\n", "line 2: 5 fields"),
    ],
)
def test_csv_problems_are_named(db, text, message):
    with pytest.raises(StatementRejected, match=message):
        import_statement(db, "x.csv", text.encode(), actor=SYSTEM)
    nothing_written(db)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("605,00", "605.00"), ("1 234,50", "1234.50"), ("1.234,50", "1234.50"), ("1,234.50", "1234.50"),
     ("-33,00", "-33.00"), ("+12.3", "12.3"), ("1\u00a0000", "1000"), ("abc", None), ("1,2,3", None), ("", None)],
)
def test_amount_spellings(raw, value):
    assert _parse_amount(raw) == (D(value) if value else None)


def test_too_large_and_empty_files_are_refused(db):
    with pytest.raises(StatementRejected, match="larger than 10 MB"):
        import_statement(db, "big.csv", b"x" * (MAX_FILE_SIZE + 1), actor=SYSTEM)
    with pytest.raises(StatementRejected, match="empty"):
        import_statement(db, "empty.csv", b"  \n", actor=SYSTEM)
    nothing_written(db)


# ---------------------------------------------------------------- the CLI


def test_cli_import_prints_a_summary_and_refuses_a_malformed_file(app, db, customers, tmp_path):
    db.commit()
    runner = app.test_cli_runner()
    path = tmp_path / "statement.xml"
    path.write_bytes(read("camt053_sample.xml"))
    result = runner.invoke(payments_cli, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "4 new, 0 duplicates, 3 matched, 1 unmatched, total 2605.00" in result.output
    again = runner.invoke(payments_cli, ["import", str(path)])
    assert again.exit_code != 0 and "already imported on" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(read("payments_bad_amount_line3.csv"))
    result = runner.invoke(payments_cli, ["import", str(bad)])
    assert result.exit_code != 0 and "line 3" in result.output
    listing = runner.invoke(payments_cli, ["unmatched"])
    assert listing.exit_code == 0 and "Petr Svoboda" in listing.output


def test_cli_add_records_and_pairs(app, db, customers):
    vs = customers["invoice"].variable_symbol
    db.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(payments_cli, ["add", "--amount", "605.00", "--vs", vs, "--date", "2025-03-06"])
    assert result.exit_code == 0, result.output
    assert "state matched" in result.output
    bad = runner.invoke(payments_cli, ["add", "--amount", "-1", "--vs", vs])
    assert bad.exit_code != 0 and "greater than zero" in bad.output
    empty = runner.invoke(payments_cli, ["unmatched"])
    assert "No payments wait" in empty.output


# ---------------------------------------------------------------- reversals (RvslInd)


def test_a_reversal_is_never_booked_as_a_new_customer_payment(db, customers):
    """A returned refund (CRDT + RvslInd) and a taken-back credit (DBIT + RvslInd), as banks
    book them: neither is a customer payment, so nothing is overpaid; the returned refund is
    listed as a returned debit, the taken-back credit undoes the payment it names (its
    TxDtls/Refs/AcctSvcrRef is the credit's): the invoice it paid is due again. An ordinary
    credit beside them is booked. Both are listed with their references and outcome in the
    import's audit entry."""
    import_statement(db, "a.xml", read("camt053_sample.xml"), actor=SYSTEM)
    invoice = customers["invoice"]
    assert invoice.paid_amount == D("605.00")
    imp = import_statement(db, "b.xml", read("camt053_reversals.xml"), actor=SYSTEM)
    assert counts(imp) == (1, 0, 1, 0, D("300.00"))
    assert {p.bank_reference for p in db.scalars(select(Payment))} >= {"2025030600013"}
    assert not db.scalars(select(Payment).where(
        Payment.bank_reference.in_(["2025030600011", "2025030600012"]))).all()
    assert invoice.paid_amount == D("0.00") and invoice.paid_at is None  # not 1210: nothing paid twice
    jana = db.scalars(select(Payment).where(Payment.customer_id == customers["jana"].id)).all()
    assert len(jana) == 1 and jana[0].state == PaymentState.REVERSED
    assert (jana[0].bank_reference, jana[0].reversed_by_reference, jana[0].reversed_on,
            jana[0].reversed_by_import_id) == ("2025030400001", "2025030600012", date(2025, 3, 6), imp.id)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "statement.imported")
                       .order_by(AuditEntry.id)).all()[-1]
    reversals = entry.changes["reversals"]
    assert [(r["direction"], r["amount"], r["acct_svcr_ref"]) for r in reversals] == [
        ("CRDT", "605.00", "2025030600011"), ("DBIT", "605.00", "2025030400001")]
    assert reversals[0]["end_to_end_id"] == "REFUND-2025000101" and reversals[0]["variable_symbol"] == "2025000101"
    assert [r["outcome"] for r in reversals] == ["returned_debit", "reversed"]
    assert reversals[1]["payment_id"] == jana[0].id
    assert (entry.changes["reversed"], entry.changes["returned_debits"], entry.changes["reversals_left_for_staff"]) == (
        1, 1, 0)
    assert entry.changes["debits_and_other_skipped"] == 2

    # Again in an overlapping export: still nothing booked or reversed twice.
    again = import_statement(db, "c.xml", read("camt053_reversals.xml") + b"\n<!-- again -->\n", actor=SYSTEM)
    assert counts(again) == (0, 1, 0, 0, D("0"))
    assert invoice.paid_amount == D("0.00")
    assert jana[0].reversed_by_import_id == imp.id
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "statement.imported")
                       .order_by(AuditEntry.id)).all()[-1]
    assert [r["outcome"] for r in entry.changes["reversals"]] == ["returned_debit", "already_reversed"]
    assert db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "payment.reversed")) == 1


def test_a_czech_banks_reversal_undoes_the_credit_it_takes_back(db, customers):
    """Two daily exports of a Czech bank (camt.053.001.02): a credit paying an invoice, and the
    next day its reversal (DBIT + RvslInd) with references of its own. The original is found
    by VS, amount and payer account: it is reversed, the invoice is due again, the balance
    owes again and dunning sees the debt; the next export repeating the entry changes nothing."""
    from portal.domain.balance import customer_balance, customer_statement
    from portal.domain.dunning import overdue_invoices
    from portal.domain.payments import customer_credit, unmatched_payments_query

    jana, invoice = customers["jana"], customers["invoice"]
    import_statement(db, "kb-0310.xml", read("camt053_kb_credit.xml"), actor=SYSTEM)
    payment = db.scalars(select(Payment).where(Payment.bank_reference == "KB250310C0001234")).one()
    assert payment.state == PaymentState.MATCHED and invoice.paid_amount == D("605.00")
    assert customer_balance(db, jana.id) == {"CZK": D("0.00")}
    assert overdue_invoices(db, jana.id, date(2025, 4, 1)) == []

    imp = import_statement(db, "kb-0311.xml", read("camt053_kb_reversal.xml"), actor=SYSTEM)
    assert counts(imp) == (0, 0, 0, 0, D("0"))
    assert payment.state == PaymentState.REVERSED and payment.reversed_by_reference == "KB250311R0000077"
    assert payment.reversed_on == date(2025, 3, 11) and payment.unallocated == D("0.00")
    assert not payment.allocations
    assert invoice.paid_amount == D("0.00") and invoice.paid_at is None
    assert customer_balance(db, jana.id) == {"CZK": D("605.00")}  # owing again
    assert customer_credit(db, jana.id) == {}
    assert payment not in db.scalars(unmatched_payments_query()).all()
    statement = customer_statement(db, jana.id, date(2025, 3, 1), date(2025, 3, 31))
    assert [e.kind for e in statement.entries] == ["invoice"] and statement.closing == {"CZK": D("605.00")}
    assert [inv.id for inv, _ in overdue_invoices(db, jana.id, date(2025, 4, 1))] == [invoice.id]

    # The next export repeats the entry: nothing is reversed twice.
    again = read("camt053_kb_reversal.xml").replace(b"KB-STMT-20250311-000107", b"KB-STMT-20250311-000108")
    import_statement(db, "kb-0311-again.xml", again, actor=SYSTEM)
    assert invoice.paid_amount == D("0.00") and payment.reversed_by_import_id == imp.id
    assert db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "payment.reversed")) == 1
    assert customer_balance(db, jana.id) == {"CZK": D("605.00")}


def _last_import_reversals(db) -> list[dict]:
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "statement.imported")
                       .order_by(AuditEntry.id.desc())).first()
    return entry.changes["reversals"]


def test_a_reversal_whose_original_is_ambiguous_is_left_for_staff(db, customers):
    """Two credits with the same VS, amount and account and no reference the reversal names:
    which one the bank took back cannot be told, so neither is reversed; the import's audit
    entry says why and which payments it could be."""
    credit = read("camt053_kb_credit.xml")
    import_statement(db, "kb-0310.xml", credit, actor=SYSTEM)
    twin = (credit.replace(b"KB250310C0001234", b"KB250310C0009999").replace(b"0310A1B2C3D4", b"0310FFFF")
            .replace(b"2025-03-10", b"2025-03-09"))
    import_statement(db, "kb-0309.xml", twin, actor=SYSTEM)
    both = db.scalars(select(Payment).order_by(Payment.id)).all()
    assert len(both) == 2
    import_statement(db, "kb-0311.xml", read("camt053_kb_reversal.xml"), actor=SYSTEM)
    assert all(p.state != PaymentState.REVERSED for p in both)
    [r] = _last_import_reversals(db)
    assert (r["outcome"], r["reason"], sorted(r["candidates"])) == ("left_for_staff", "ambiguous", [p.id for p in both])


def test_a_reversal_without_an_original_is_left_for_staff(db, customers):
    imp = import_statement(db, "kb-0311.xml", read("camt053_kb_reversal.xml"), actor=SYSTEM)
    [r] = _last_import_reversals(db)
    assert (r["outcome"], r["reason"]) == ("left_for_staff", "no_original")
    assert counts(imp) == (0, 0, 0, 0, D("0")) and db.scalar(select(func.count(Payment.id))) == 0


def test_a_reversal_does_not_take_a_payment_of_another_account(db, customers):
    """Same VS and amount but another payer account: not the credit taken back."""
    credit = read("camt053_kb_credit.xml").replace(b"000000-0123456789", b"000000-0999999999")
    import_statement(db, "kb-0310.xml", credit, actor=SYSTEM)
    import_statement(db, "kb-0311.xml", read("camt053_kb_reversal.xml"), actor=SYSTEM)
    assert db.scalars(select(Payment)).one().state == PaymentState.MATCHED
    assert _last_import_reversals(db)[0]["reason"] == "no_original"


def test_parse_reads_the_reversal_indicator_in_every_version(db):
    for version in ("02", "08"):
        data = read("camt053_reversals.xml").replace(b"camt.053.001.02", f"camt.053.001.{version}".encode())
        parsed = parse_statement(data)
        assert [t.bank_reference for t in parsed.credits] == ["2025030600013"]
        assert [r.direction for r in parsed.reversals] == ["CRDT", "DBIT"]
