"""Bank statement import: CSV and ISO 20022 CAMT.053 (versions 001.02–001.08).

The rules:

- A file is read whole and validated before anything is written: a malformed file is refused
  with a message naming where (CSV line number; XML entry number and element) and nothing is
  recorded. Files over 10 MB are refused.
- The same file (same SHA-256) is imported once; importing it again is refused, naming the
  date of the first import.
- Only credits (incoming money) become payments; debits (and, in CAMT, entries not yet
  booked) are counted and skipped.
- A CAMT entry marked as a reversal (RvslInd true) is never a new payment. With CRDT it
  returns one of our own debits (a bounced refund): it is listed as a returned debit. With
  DBIT it takes back an earlier credit: the original payment is found and reversed
  (`payments.reverse_payment`: what it paid is due again). The original is the bank
  payment whose bank reference is one of the reversal's references (TxDtls/Refs/AcctSvcrRef,
  Ntry/AcctSvcrRef, TxId, EndToEndId), else the one not yet reversed with the same VS,
  amount and currency — and the same payer account when the reversal names one — received
  no later than the reversal's booking. Exactly one must be found: none, several, or only
  an already reversed one leave the reversal for staff, with the reason. The reversal's own
  reference (Ntry/AcctSvcrRef, else the first of the others, else one derived from its
  content) is recorded on the reversed payment, so a later import of the same entry
  reverses nothing twice. Every reversal is listed, with its references and outcome, in
  the import's audit entry ("reversals"), which the import's page shows.
- Each transaction carries a bank reference; one already recorded (source `bank_import`) is
  skipped and counted as a duplicate, so overlapping statements add nothing twice.
- Every new payment is paired at once (see `portal.domain.payments`); the import records its
  counts and writes one audit entry.

Format detection: a file whose first non-blank character is "<" is XML and must be a CAMT.053
document (namespace urn:iso:std:iso:20022:tech:xsd:camt.053.001.0X, X = 2…8); anything else
is CSV.

CSV: UTF-8 (a BOM is fine), falling back to Windows-1250; delimiter ";" or "," (or a tab),
taken from the header row, which is required. Column names are matched without regard to
case, spaces or dashes; unknown columns are ignored; order is free.

    date                 required  YYYY-MM-DD or DD.MM.YYYY (D.M.YYYY too) — the booking date
    amount               required  decimal point or comma, at most 2 decimals, spaces and
                                   thousands separators allowed ("1 234,50", "1,234.50");
                                   negative = debit (skipped); zero is skipped
    currency             required  CZK or EUR
    variable_symbol      optional  (alias vs)   digits; leading zeros do not matter
    constant_symbol      optional  (alias ks)
    specific_symbol      optional  (alias ss)
    counterparty_account optional  (alias account)
    counterparty_name    optional  (alias name)
    message              optional  (alias note)
    transaction_id       optional  (alias id, reference) — the bank's unique reference; when
                                   blank, one is derived from the row's content, so re-importing
                                   the same rows still adds nothing

Symbols that are not 1–10 digits (KS 1–4) are not an error: the payment is recorded without
them (it will wait in the unmatched queue) and the raw text is kept in the message.

CAMT.053: every Stmt/Ntry is read. Amount and currency from Ntry/Amt (or, for a batch entry,
each TxDtls/AmtDtls/TxAmt/Amt), direction from CdtDbtInd (CRDT/DBIT), status from Sts (only
BOOK is imported), date from BookgDt (ValDt as a fallback). The bank reference is the first of
TxDtls/Refs/AcctSvcrRef, Ntry/AcctSvcrRef, Ntry/NtryRef, TxDtls/Refs/TxId. The variable,
specific and constant symbols are looked for in RmtInf/Strd/CdtrRefInf/Ref, Refs/EndToEndId,
RmtInf/Ustrd and the additional information (as "VS123", "/VS/123", "VS: 123"…); a
CdtrRefInf/Ref or EndToEndId of digits only is the VS. Payer: RltdPties/Dbtr(/Pty)/Nm and
RltdPties/DbtrAcct/Id/(IBAN|Othr/Id).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.domain import DomainError, audit, payments
from portal.domain.actors import Actor
from portal.models import (
    Currency,
    Payment,
    PaymentSource,
    PaymentState,
    StatementFormat,
    StatementImport,
)
from portal.models.base import ZERO, utcnow

MAX_FILE_SIZE = 10 * 1024 * 1024
CAMT_NAMESPACE = re.compile(r"^\{(urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.0[2-8])\}Document$")


class StatementRejected(DomainError):
    """The file cannot be imported; the message says where and why. Nothing was written."""

    def __init__(self, message: str):
        super().__init__(message, field="file")


class AlreadyImported(StatementRejected):
    """The same file (same SHA-256) was imported before."""


@dataclass
class Transaction:
    """One incoming payment read from a statement, validated."""

    where: str  # "line 4", "entry 2"
    booked_on: date
    amount: Decimal
    currency: Currency
    bank_reference: str
    variable_symbol: str | None = None
    constant_symbol: str | None = None
    specific_symbol: str | None = None
    counterparty_account: str | None = None
    counterparty_name: str | None = None
    message: str = ""


@dataclass
class Reversal:
    """A booked CAMT entry with RvslInd true: `direction` CRDT returns one of our debits,
    DBIT takes back an earlier credit. Never a new customer payment."""

    where: str
    direction: str
    booked_on: date | None
    amount: Decimal
    currency: str
    references: dict[str, str]  # AcctSvcrRef, NtryRef, EndToEndId, TxId, VS — as the bank gave them
    reference: str = ""  # the reversal's own reference (see the module's rules)
    accounts: tuple[str, ...] = ()  # the counterparty accounts it names, normalised

    def as_dict(self) -> dict:
        return {"where": self.where, "direction": self.direction,
                "booked_on": self.booked_on.isoformat() if self.booked_on else None,
                "amount": str(self.amount), "currency": self.currency, "reference": self.reference,
                **self.references}


@dataclass
class ParsedStatement:
    format: StatementFormat
    credits: list[Transaction] = field(default_factory=list)
    skipped: int = 0  # debits, zero amounts, entries not booked
    reversals: list[Reversal] = field(default_factory=list)


# ---------------------------------------------------------------- the import


def check_statement(session: Session, data: bytes) -> ParsedStatement:
    """What import_statement refuses before it writes anything, without writing: too large,
    empty, imported before, malformed (StatementRejected, the message names the line or
    entry). The parsed statement when none of these: pages check an upload this way, answer
    at once, and leave the import itself (the pairing of every payment) to a job."""
    if len(data) > MAX_FILE_SIZE:
        raise StatementRejected(f"The file is larger than {MAX_FILE_SIZE // (1024 * 1024)} MB.")
    if not data.strip():
        raise StatementRejected("The file is empty.")
    earlier = session.scalar(select(StatementImport).where(StatementImport.sha256 == hashlib.sha256(data).hexdigest()))
    if earlier is not None:
        raise AlreadyImported(_already(earlier))
    return parse_statement(data)


PROGRESS_EVERY = 50  # payments between two progress reports


def import_statement(session: Session, file_name: str, data: bytes, *, actor: Actor,
                     progress: Callable[[int, int], None] | None = None) -> StatementImport:
    """Import a bank statement file: validate it whole, then record each new incoming payment
    and pair it, all in one transaction (a savepoint inside the caller's). Refused with
    StatementRejected (nothing written): too large, malformed (the message names the line or
    entry), or the same file again (AlreadyImported). Returns the StatementImport with its
    counts: payments_count (new payments), duplicates_count (bank reference seen before),
    matched_count (customer identified), unmatched_count (waiting for staff), total (Σ of the
    new payments, all currencies). `progress(done, total)`, when given, hears how many of the
    statement's credits are done."""
    parsed = check_statement(session, data)
    sha = hashlib.sha256(data).hexdigest()
    seen = _known_references(session, [t.bank_reference for t in parsed.credits])

    try:
        with session.begin_nested():
            imp = StatementImport(
                file_name=(file_name or "statement")[-255:], format=parsed.format, sha256=sha,
                imported_at=utcnow(), actor_type=actor.type, actor_id=actor.id, actor_name=actor.name[:200],
                payments_count=0, duplicates_count=0, matched_count=0, unmatched_count=0, total=ZERO,
            )
            session.add(imp)
            session.flush()
            total_credits = len(parsed.credits)
            for done, t in enumerate(parsed.credits):
                if progress is not None and done % PROGRESS_EVERY == 0:
                    progress(done, total_credits)
                if t.bank_reference in seen:
                    imp.duplicates_count += 1
                    continue
                seen.add(t.bank_reference)
                payment = payments._new_payment(
                    session, amount=t.amount, currency=t.currency, received_on=t.booked_on,
                    variable_symbol=t.variable_symbol, source=PaymentSource.BANK_IMPORT, customer=None,
                    bank_reference=t.bank_reference, counterparty_account=t.counterparty_account,
                    counterparty_name=t.counterparty_name, constant_symbol=t.constant_symbol,
                    specific_symbol=t.specific_symbol, message=t.message, statement_import=imp,
                    check_reference=False,
                )
                payments._pair(session, payment, actor)
                imp.payments_count += 1
                imp.total += payment.amount
                if payment.state == PaymentState.UNMATCHED:
                    imp.unmatched_count += 1
                else:
                    imp.matched_count += 1
            if progress is not None:
                progress(total_credits, total_credits)
            outcomes = [_apply_reversal(session, r, imp, actor) for r in parsed.reversals]
            audit.record(
                session, actor, "statement.imported", "statement_import", imp.id,
                {"file_name": imp.file_name, "format": imp.format, "sha256": sha,
                 "payments": imp.payments_count, "duplicates": imp.duplicates_count,
                 "matched": imp.matched_count, "unmatched": imp.unmatched_count,
                 "debits_and_other_skipped": parsed.skipped, "total": imp.total,
                 "reversals": [{**r.as_dict(), **o} for r, o in zip(parsed.reversals, outcomes, strict=True)],
                 "reversed": sum(o["outcome"] == REVERSED for o in outcomes),
                 "returned_debits": sum(o["outcome"] == RETURNED_DEBIT for o in outcomes),
                 "reversals_left_for_staff": sum(o["outcome"] == LEFT_FOR_STAFF for o in outcomes)},
            )
            session.flush()
    except IntegrityError:
        # Someone imported the same file (or the same transactions) at the same moment.
        earlier = session.scalar(select(StatementImport).where(StatementImport.sha256 == sha))
        raise AlreadyImported(_already(earlier) if earlier else
                              "The file was imported concurrently by someone else; nothing was written.") from None
    return imp


# What became of a reversal (the "outcome" of each item of the audit entry's "reversals").
REVERSED = "reversed"  # the original payment was reversed
ALREADY_REVERSED = "already_reversed"  # this reversal was applied by an earlier import
RETURNED_DEBIT = "returned_debit"  # CRDT: one of our own debits came back
LEFT_FOR_STAFF = "left_for_staff"  # the original could not be told; `reason` says why
# Why a reversal was left for staff.
NO_ORIGINAL = "no_original"
AMBIGUOUS = "ambiguous"
ORIGINAL_ALREADY_REVERSED = "original_already_reversed"
UNKNOWN_CURRENCY = "unknown_currency"


def _apply_reversal(session: Session, r: Reversal, imp: StatementImport, actor: Actor) -> dict:
    """Apply one reversal of the statement; the outcome for the audit entry."""
    if r.direction == "CRDT":
        return {"outcome": RETURNED_DEBIT}
    done = session.scalar(select(Payment.id).where(Payment.state == PaymentState.REVERSED,
                                                   Payment.reversed_by_reference == r.reference))
    if done is not None:
        return {"outcome": ALREADY_REVERSED, "payment_id": done}
    try:
        currency = Currency(r.currency)
    except ValueError:
        return {"outcome": LEFT_FOR_STAFF, "reason": UNKNOWN_CURRENCY}
    same_money = (Payment.source == PaymentSource.BANK_IMPORT, Payment.currency == currency)

    def exact(rows):
        return sorted((p for p in rows if payments._money(p.amount) == r.amount), key=lambda p: p.id)

    refs = sorted({r.references.get(k) for k in ("acct_svcr_ref", "entry_acct_svcr_ref", "tx_id", "end_to_end_id")}
                  - {None, ""})
    found = exact(session.scalars(select(Payment).where(*same_money, Payment.bank_reference.in_(refs)))) if refs else []
    if not found and r.references.get("variable_symbol"):
        rows = session.scalars(select(Payment).where(
            *same_money, Payment.variable_symbol.in_(payments.vs_candidates(r.references["variable_symbol"])),
            *([Payment.received_on <= r.booked_on] if r.booked_on else []),
        ))
        found = [p for p in exact(rows) if not r.accounts or _account(p.counterparty_account) in r.accounts]
    open_ = [p for p in found if p.state != PaymentState.REVERSED]
    if not open_:
        reason = ORIGINAL_ALREADY_REVERSED if found else NO_ORIGINAL
        return {"outcome": LEFT_FOR_STAFF, "reason": reason, "candidates": [p.id for p in found]}
    if len(open_) > 1:
        return {"outcome": LEFT_FOR_STAFF, "reason": AMBIGUOUS, "candidates": [p.id for p in open_]}
    payment = open_[0]
    payments.reverse_payment(
        session, payment, actor=actor, reason=f"bank reversal ({r.where} of import #{imp.id})",
        reversed_on=r.booked_on or utcnow().date(), reference=r.reference, statement_import=imp)
    return {"outcome": REVERSED, "payment_id": payment.id, "customer_id": payment.customer_id}


def _account(value: str | None) -> str:
    return re.sub(r"\s", "", value or "").upper()


def _already(earlier: StatementImport) -> str:
    return (f"This file was already imported on {earlier.imported_at:%Y-%m-%d %H:%M} UTC "
            f"(import #{earlier.id}, {earlier.file_name}).")


def _known_references(session: Session, refs: list[str]) -> set[str]:
    known: set[str] = set()
    for i in range(0, len(refs), 500):
        chunk = refs[i:i + 500]
        known.update(session.scalars(
            select(Payment.bank_reference).where(
                Payment.source == PaymentSource.BANK_IMPORT, Payment.bank_reference.in_(chunk))
        ))
    return known


def parse_statement(data: bytes) -> ParsedStatement:
    """Detect the format and read every transaction; StatementRejected on the first problem."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_camt053(data)
    return parse_csv(data)


# ---------------------------------------------------------------- shared helpers


_DATE_DOTTED = re.compile(r"^(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4})$")


def _parse_date(text: str) -> date | None:
    text = (text or "").strip()
    try:
        if m := _DATE_DOTTED.match(text):
            return date(int(m[3]), int(m[2]), int(m[1]))
        if re.match(r"^\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text[:10])
    except ValueError:
        return None
    return None


_AMOUNT = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _parse_amount(text: str) -> Decimal | None:
    """'1 234,50', '1.234,50', '1,234.50', '-500', '+12.3' → Decimal; None if not a number."""
    s = (text or "").strip().replace("\u00a0", "").replace(" ", "").replace("'", "")
    if not s:
        return None
    if "," in s and "." in s:
        decimal_sep = "," if s.rfind(",") > s.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        s = s.replace(thousands, "").replace(decimal_sep, ".")
    elif "," in s:
        if s.count(",") > 1:
            return None
        s = s.replace(",", ".")
    elif s.count(".") > 1:
        return None
    if not _AMOUNT.match(s):
        return None
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def _symbol(text: str | None, max_digits: int) -> str | None:
    """Digits only, at most `max_digits`, not all zeros (banks write 0 for "none") — else None."""
    s = (text or "").strip().replace(" ", "")
    return s if s.isdigit() and len(s) <= max_digits and s.strip("0") else None


def _check_amount(raw: str, amount: Decimal | None, where: str) -> Decimal:
    if amount is None:
        raise StatementRejected(f"{where}: amount {raw!r} is not a number.")
    if amount != amount.quantize(payments.CENT):
        raise StatementRejected(f"{where}: amount {raw!r} has more than two decimals.")
    if abs(amount) > payments.MAX_AMOUNT:
        raise StatementRejected(f"{where}: amount {raw!r} is too large.")
    return amount.quantize(payments.CENT)


def _check_currency(raw: str | None, where: str) -> Currency:
    try:
        return Currency((raw or "").strip().upper())
    except ValueError:
        known = ", ".join(c.value for c in Currency)
        raise StatementRejected(f"{where}: currency {raw!r} is not supported (known: {known}).") from None


def _derived_reference(prefix: str, parts: list, counter: dict) -> str:
    """A stable reference for a transaction the bank gave none: the content plus its
    occurrence number within the file (two equal payments on one day stay two)."""
    key = "|".join(str(p or "") for p in parts)
    counter[key] = counter.get(key, 0) + 1
    return f"{prefix}:{hashlib.sha256(f'{key}|{counter[key]}'.encode()).hexdigest()[:40]}"


# ---------------------------------------------------------------- CSV

_ALIASES = {
    "vs": "variable_symbol", "variabilni_symbol": "variable_symbol",
    "ks": "constant_symbol", "ss": "specific_symbol",
    "account": "counterparty_account", "name": "counterparty_name", "note": "message",
    "id": "transaction_id", "reference": "transaction_id",
}
_REQUIRED = ("date", "amount", "currency")


def _column_name(raw: str) -> str:
    key = re.sub(r"[\s\-]+", "_", (raw or "").strip().lower())
    return _ALIASES.get(key, key)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1250")
    except UnicodeDecodeError as exc:
        # Not text in either encoding (a binary file, another code page): refuse rather than
        # import names and messages with characters silently replaced.
        line = data[:exc.start].count(b"\n") + 1
        raise StatementRejected(f"Line {line}: the file is neither UTF-8 nor Windows-1250 text "
                                f"(byte 0x{data[exc.start]:02x}).") from None


def parse_csv(data: bytes) -> ParsedStatement:
    """Read a CSV statement (columns in the module docstring); StatementRejected names the line."""
    text = _decode(data)
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    delimiter = max((";", ",", "\t"), key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise StatementRejected("line 1: a header row with the columns date, amount, currency… is required "
                                "(delimiter ';' or ',').")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = ParsedStatement(StatementFormat.CSV)
    header: list[str] | None = None
    counter: dict = {}
    for row in reader:
        lineno = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [_column_name(c) for c in row]
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise StatementRejected(f"line {lineno}: the header lacks the column(s) {', '.join(missing)} "
                                        f"(found: {', '.join(header)}).")
            continue
        where = f"line {lineno}"
        if len(row) > len(header):
            raise StatementRejected(f"{where}: {len(row)} fields but the header has {len(header)}.")
        rec = dict(zip(header, (c.strip() for c in row), strict=False))
        amount = _check_amount(rec.get("amount", ""), _parse_amount(rec.get("amount", "")), where)
        booked_on = _parse_date(rec.get("date", ""))
        if booked_on is None:
            raise StatementRejected(f"{where}: date {rec.get('date', '')!r} is not YYYY-MM-DD or DD.MM.YYYY.")
        if amount <= 0:
            parsed.skipped += 1
            continue
        currency = _check_currency(rec.get("currency"), where)
        message = rec.get("message", "")
        symbols = {}
        for col, digits in (("variable_symbol", 10), ("constant_symbol", 4), ("specific_symbol", 10)):
            raw = rec.get(col, "")
            symbols[col] = _symbol(raw, digits)
            if raw and symbols[col] is None and raw.strip("0 "):
                message = f"{message} [{col}: {raw}]".strip()
        reference = rec.get("transaction_id", "")
        if not reference:
            reference = _derived_reference("csv", [booked_on, amount, currency, symbols["variable_symbol"],
                                                  rec.get("counterparty_account"), message], counter)
        elif len(reference) > 100:
            raise StatementRejected(f"{where}: transaction_id is longer than 100 characters.")
        parsed.credits.append(Transaction(
            where=where, booked_on=booked_on, amount=amount, currency=currency, bank_reference=reference,
            counterparty_account=rec.get("counterparty_account") or None,
            counterparty_name=rec.get("counterparty_name") or None, message=message, **symbols,
        ))
    if header is None:
        raise StatementRejected("line 1: a header row with the columns date, amount, currency… is required.")
    return parsed


# ---------------------------------------------------------------- CAMT.053


def _parse_xml(data: bytes):
    """Parse with defusedxml (no DTD, no entities, no external references): a statement never
    needs them, and they are how XML bombs and external-entity attacks work."""
    from xml.etree.ElementTree import ParseError  # noqa: S405 — the exception type only

    try:
        import defusedxml.ElementTree as safe_et
        from defusedxml import DefusedXmlException
    except ImportError:  # pragma: no cover — defusedxml is a dependency; stay safe without it
        safe_et = None
        DefusedXmlException = ValueError  # noqa: N806
    try:
        if safe_et is not None:
            return safe_et.fromstring(data, forbid_dtd=True)
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise ValueError("DTD")
        from xml.etree.ElementTree import fromstring  # noqa: S405

        return fromstring(data)  # noqa: S314 — DTDs (and so entities) refused just above
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise StatementRejected(f"The XML is malformed at line {line}, column {column}.") from None
    except DefusedXmlException:
        raise StatementRejected("The XML contains a DTD or entities, which bank statements never need; "
                                "refused.") from None


_SYMBOL_PATTERNS = {
    key: re.compile(rf"(?<![A-Z]){key}[\s:/=\-]*(\d{{1,{digits}}})(?!\d)", re.IGNORECASE)
    for key, digits in (("VS", 10), ("SS", 10), ("KS", 4))
}


def _symbols_from(texts: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {"VS": None, "SS": None, "KS": None}
    for text in texts:
        for key, pattern in _SYMBOL_PATTERNS.items():
            if found[key] is None and (m := pattern.search(text)):
                found[key] = _symbol(m[1], 10 if key != "KS" else 4)
    return found


def parse_camt053(data: bytes) -> ParsedStatement:
    """Read a CAMT.053 statement; StatementRejected names the entry and the element."""
    root = _parse_xml(data)
    m = CAMT_NAMESPACE.match(root.tag)
    if not m:
        raise StatementRejected(
            f"The XML is not a CAMT.053 bank statement (root element {root.tag}); expected namespace "
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 … .08.")
    ns = {"c": m[1]}

    def find(el, path):
        return el.find("/".join(f"c:{p}" for p in path.split("/")), ns) if el is not None else None

    def text(el, path):
        found = find(el, path)
        return (found.text or "").strip() if found is not None and found.text else ""

    def texts(el, path):
        return [(e.text or "").strip() for e in el.findall("/".join(f"c:{p}" for p in path.split("/")), ns)
                if e.text and e.text.strip()] if el is not None else []

    parsed = ParsedStatement(StatementFormat.CAMT053)
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if not statements:
        raise StatementRejected("The CAMT.053 file has no statement (BkToCstmrStmt/Stmt).")
    counter: dict = {}
    index = 0
    for stmt in statements:
        for ntry in stmt.findall("c:Ntry", ns):
            index += 1
            where = f"entry {index}"
            amt_el = find(ntry, "Amt")
            if amt_el is None or not (amt_el.text or "").strip():
                raise StatementRejected(f"{where} (Ntry/Amt): the amount is missing.")
            raw_amount = amt_el.text.strip()
            amount = _check_amount(raw_amount, _parse_xml_amount(raw_amount), f"{where} (Ntry/Amt)")
            indicator = text(ntry, "CdtDbtInd")
            if indicator not in ("CRDT", "DBIT"):
                raise StatementRejected(f"{where} (Ntry/CdtDbtInd): {indicator!r} is neither CRDT nor DBIT.")
            status = text(ntry, "Sts/Cd") or text(ntry, "Sts")
            if text(ntry, "RvslInd").lower() in ("true", "1"):
                # A reversal undoes an earlier booking; it is never a new payment.
                if not status or status == "BOOK":
                    parsed.reversals.append(_camt_reversal(where, ntry, indicator, amount, amt_el, find, text))
                parsed.skipped += 1
                continue
            if indicator == "DBIT" or (status and status != "BOOK") or amount <= 0:
                parsed.skipped += 1
                continue
            currency = _check_currency(amt_el.get("Ccy"), f"{where} (Ntry/Amt/@Ccy)")
            raw_date = (text(ntry, "BookgDt/Dt") or text(ntry, "BookgDt/DtTm")
                        or text(ntry, "ValDt/Dt") or text(ntry, "ValDt/DtTm"))
            booked_on = _parse_iso_date(raw_date)
            if booked_on is None:
                raise StatementRejected(f"{where} (Ntry/BookgDt): date {raw_date!r} is missing or not valid.")
            txs = ntry.findall("c:NtryDtls/c:TxDtls", ns)
            parts: list[tuple] = []  # (tx element or None, amount, currency)
            if len(txs) > 1:
                tx_amounts = []
                for j, tx in enumerate(txs, 1):
                    tx_amt = find(tx, "AmtDtls/TxAmt/Amt")
                    if tx_amt is None:
                        tx_amt = find(tx, "Amt")
                    if tx_amt is None:
                        break
                    tx_where = f"{where} (TxDtls {j}/AmtDtls/TxAmt/Amt)"
                    tx_amounts.append((tx, _check_amount(tx_amt.text or "", _parse_xml_amount(tx_amt.text or ""),
                                                         tx_where),
                                       _check_currency(tx_amt.get("Ccy"), tx_where)))
                if len(tx_amounts) == len(txs) and sum(a for _, a, _ in tx_amounts) == amount:
                    parts = tx_amounts
            if not parts:
                parts = [(txs[0] if txs else None, amount, currency)]
            entry_refs = [text(ntry, "AcctSvcrRef"), text(ntry, "NtryRef")]
            for j, (tx, tx_amount, tx_currency) in enumerate(parts, 1):
                if tx_amount <= 0:
                    parsed.skipped += 1
                    continue
                parsed.credits.append(_camt_transaction(
                    where, ntry, tx, tx_amount, tx_currency, booked_on, entry_refs,
                    j if len(parts) > 1 else None, text, texts, counter))
    return parsed


def _camt_reversal(where, ntry, indicator, amount, amt_el, find, text) -> Reversal:
    tx = find(ntry, "NtryDtls/TxDtls")
    end_to_end = text(tx, "Refs/EndToEndId") if tx is not None else ""
    refs = {
        "acct_svcr_ref": (text(tx, "Refs/AcctSvcrRef") if tx is not None else "") or text(ntry, "AcctSvcrRef"),
        "entry_acct_svcr_ref": text(ntry, "AcctSvcrRef"),
        "entry_ref": text(ntry, "NtryRef"),
        "end_to_end_id": "" if end_to_end.upper() == "NOTPROVIDED" else end_to_end,
        "tx_id": text(tx, "Refs/TxId") if tx is not None else "",
    }
    creditor_ref = text(tx, "RmtInf/Strd/CdtrRefInf/Ref") if tx is not None else ""
    unstructured = [e.text.strip() for e in tx.iter() if e.tag.endswith("}Ustrd") and e.text] if tx is not None else []
    vs = _symbols_from([creditor_ref, refs["end_to_end_id"], *unstructured, text(ntry, "AddtlNtryInf")])["VS"]
    for candidate in (creditor_ref, refs["end_to_end_id"]):
        if vs is None and candidate.isdigit() and len(candidate) <= 10:
            vs = _symbol(candidate, 10)
    refs["variable_symbol"] = vs or ""
    accounts = tuple(sorted({_account(text(tx, f"RltdPties/{party}Acct/Id/{kind}"))
                             for party in ("Dbtr", "Cdtr") for kind in ("IBAN", "Othr/Id")} - {""})) \
        if tx is not None else ()
    raw_date = text(ntry, "BookgDt/Dt") or text(ntry, "BookgDt/DtTm") or text(ntry, "ValDt/Dt")
    booked_on = _parse_iso_date(raw_date) if raw_date else None
    reference = refs["entry_acct_svcr_ref"] or refs["acct_svcr_ref"] or refs["tx_id"]
    if not reference:
        key = "|".join(str(p) for p in ("rvsl", indicator, booked_on, amount, amt_el.get("Ccy"), vs,
                                        refs["entry_ref"], refs["end_to_end_id"], *accounts))
        reference = "rvsl:" + hashlib.sha256(key.encode()).hexdigest()[:40]
    return Reversal(where=where, direction=indicator, booked_on=booked_on,
                    amount=amount, currency=(amt_el.get("Ccy") or "").upper(),
                    references={k: v for k, v in refs.items() if v}, reference=reference[:100], accounts=accounts)


def _parse_xml_amount(raw: str) -> Decimal | None:
    # XML decimals use a point and no separators; anything else is malformed.
    if not re.match(r"^-?\d+(\.\d+)?$", raw or ""):
        return None
    return Decimal(raw)


def _parse_iso_date(raw: str) -> date | None:
    try:
        return datetime.fromisoformat(raw).date() if "T" in raw else date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _camt_transaction(where, ntry, tx, amount, currency, booked_on, entry_refs, part, text, texts,
                      counter) -> Transaction:
    tx_ref = text(tx, "Refs/AcctSvcrRef") if tx is not None else ""
    entry_ref = next((r for r in entry_refs if r), "")
    if tx_ref:
        reference = tx_ref
    elif entry_ref:
        reference = f"{entry_ref}/{part}" if part else entry_ref
    elif tx is not None and text(tx, "Refs/TxId"):
        reference = text(tx, "Refs/TxId")
    else:
        reference = ""
    end_to_end = text(tx, "Refs/EndToEndId") if tx is not None else ""
    if end_to_end.upper() == "NOTPROVIDED":
        end_to_end = ""
    creditor_ref = text(tx, "RmtInf/Strd/CdtrRefInf/Ref") if tx is not None else ""
    unstructured = texts(tx, "RmtInf/Ustrd") if tx is not None else []
    additional = ([text(tx, "AddtlTxInf")] if tx is not None else []) + [text(ntry, "AddtlNtryInf")]
    found = _symbols_from([creditor_ref, end_to_end, *unstructured, *additional])
    vs = found["VS"]
    for candidate in (creditor_ref, end_to_end):
        if vs is None and candidate.isdigit() and len(candidate) <= 10:
            vs = _symbol(candidate, 10)
    name = account = ""
    if tx is not None:
        name = text(tx, "RltdPties/Dbtr/Nm") or text(tx, "RltdPties/Dbtr/Pty/Nm")
        account = text(tx, "RltdPties/DbtrAcct/Id/IBAN") or text(tx, "RltdPties/DbtrAcct/Id/Othr/Id")
    message = " ".join(t for t in [*unstructured, *additional] if t)[:300]
    if not reference:
        reference = _derived_reference("camt", [booked_on, amount, currency, vs, account, end_to_end, message],
                                       counter)
    if len(reference) > 100:
        reference = "sha:" + hashlib.sha256(reference.encode()).hexdigest()[:60]
    return Transaction(
        where=where, booked_on=booked_on, amount=amount, currency=currency, bank_reference=reference,
        variable_symbol=vs, constant_symbol=found["KS"], specific_symbol=found["SS"],
        counterparty_account=account or None, counterparty_name=name or None, message=message,
    )
