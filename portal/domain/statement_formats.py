"""Reading bank statement files: CSV and ISO 20022 CAMT.053 (versions 001.02–001.08), into
validated transactions. Nothing here touches the database; `portal.domain.statements`
imports what is read.

A malformed file is refused (StatementRejected) with a message naming where: the CSV line
number, the XML entry number and element.

Format detection is `portal.domain.statement_readers.parse_statement` (which also reads
ABO/GPC, MT940 and Fio's CSV): a file whose first non-blank character is "<" is XML and must
be a CAMT.053 or CAMT.054 document (namespace urn:iso:std:iso:20022:tech:xsd:camt.05X.001.0Y,
X = 3 or 4, Y = 2…8).

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
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import ParseError  # noqa: S405 — the exception type only
from xml.etree.ElementTree import fromstring as unsafe_fromstring  # noqa: S405 — used only without a DTD

from flask_babel import gettext as _

from portal.domain import DomainError
from portal.domain.invoice_state import CENT, MAX_AMOUNT
from portal.models import Currency, StatementFormat

try:
    import defusedxml.ElementTree as safe_et
    from defusedxml import DefusedXmlException
except ImportError:  # pragma: no cover — defusedxml is a dependency; stay safe without it
    safe_et = None
    DefusedXmlException = ValueError

CAMT_NAMESPACE = re.compile(r"^\{(urn:iso:std:iso:20022:tech:xsd:camt\.05([34])\.001\.0[2-8])\}Document$")


class StatementRejected(DomainError):
    """The file cannot be imported; the message says where and why. Nothing was written."""

    def __init__(self, message: str):
        super().__init__(message, field="file")


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
    """A booked entry undoing an earlier one (CAMT RvslInd true or a return; ABO codes 4/5;
    MT940 RD/RC; a Fio correction): `direction` CRDT returns one of our debits, DBIT takes
    back an earlier credit. Never a new customer payment."""

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
    # The accounts the file says it is for (IBAN or local "prefix-number/bank"), as written;
    # the import refuses a file for an account the portal does not know.
    accounts: list[str] = field(default_factory=list)


def _account(value: str | None) -> str:
    """An account number as compared: without spaces, upper case."""
    return re.sub(r"\s", "", value or "").upper()


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


@dataclass(frozen=True)
class _Place:
    """Where in the file a message points: "line 3", "entry 4 (Ntry/Amt)" — worded in the
    reader's language only when a message is written (a file has thousands of places)."""

    kind: str  # "line" | "entry"
    number: int
    element: str = ""

    def at(self, element: str) -> _Place:
        return _Place(self.kind, self.number, element)

    def __str__(self) -> str:
        text = _("line %(n)d", n=self.number) if self.kind == "line" else _("entry %(n)d", n=self.number)
        return f"{text} ({self.element})" if self.element else text


def _check_amount(raw: str, amount: Decimal | None, where: _Place) -> Decimal:
    if amount is None:
        raise StatementRejected(_("%(where)s: amount %(raw)s is not a number.", where=where, raw=repr(raw)))
    if amount != amount.quantize(CENT):
        raise StatementRejected(_("%(where)s: amount %(raw)s has more than two decimals.", where=where,
                                  raw=repr(raw)))
    if abs(amount) > MAX_AMOUNT:
        raise StatementRejected(_("%(where)s: amount %(raw)s is too large.", where=where, raw=repr(raw)))
    return amount.quantize(CENT)


def _check_currency(raw: str | None, where: _Place) -> Currency:
    try:
        return Currency((raw or "").strip().upper())
    except ValueError:
        known = ", ".join(c.value for c in Currency)
        raise StatementRejected(_("%(where)s: currency %(raw)s is not supported (known: %(known)s).",
                                  where=where, raw=repr(raw), known=known)) from None


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
        raise StatementRejected(_("Line %(n)d: the file is neither UTF-8 nor Windows-1250 text "
                                  "(byte 0x%(byte)02x).", n=line, byte=data[exc.start])) from None


def parse_csv(data: bytes) -> ParsedStatement:
    """Read a CSV statement (columns in the module docstring); StatementRejected names the line."""
    text = _decode(data)
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    delimiter = max((";", ",", "\t"), key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise StatementRejected(_("%(where)s: a header row with the columns date, amount, currency… is "
                                  "required (delimiter ';' or ',').", where=_Place("line", 1)))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = ParsedStatement(StatementFormat.CSV)
    header: list[str] | None = None
    counter: dict = {}
    for row in reader:
        lineno = reader.line_num
        place = _Place("line", lineno)
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [_column_name(c) for c in row]
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise StatementRejected(_("%(where)s: the header lacks the column(s) %(missing)s "
                                          "(found: %(found)s).", where=place, missing=", ".join(missing),
                                          found=", ".join(header)))
            continue
        where = f"line {lineno}"
        if len(row) > len(header):
            raise StatementRejected(_("%(where)s: %(fields)d fields but the header has %(columns)d.",
                                      where=place, fields=len(row), columns=len(header)))
        rec = dict(zip(header, (c.strip() for c in row), strict=False))
        amount = _check_amount(rec.get("amount", ""), _parse_amount(rec.get("amount", "")), place)
        booked_on = _parse_date(rec.get("date", ""))
        if booked_on is None:
            raise StatementRejected(_("%(where)s: date %(raw)s is not YYYY-MM-DD or DD.MM.YYYY.",
                                      where=place, raw=repr(rec.get("date", ""))))
        if amount <= 0:
            parsed.skipped += 1
            continue
        currency = _check_currency(rec.get("currency"), place)
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
            raise StatementRejected(_("%(where)s: transaction_id is longer than 100 characters.", where=place))
        parsed.credits.append(Transaction(
            where=where, booked_on=booked_on, amount=amount, currency=currency, bank_reference=reference,
            counterparty_account=rec.get("counterparty_account") or None,
            counterparty_name=rec.get("counterparty_name") or None, message=message, **symbols,
        ))
    if header is None:
        raise StatementRejected(_("%(where)s: a header row with the columns date, amount, currency… is required.",
                                  where=_Place("line", 1)))
    return parsed


# ---------------------------------------------------------------- CAMT.053


def _parse_xml(data: bytes):
    """Parse with defusedxml (no DTD, no entities, no external references): a statement never
    needs them, and they are how XML bombs and external-entity attacks work."""
    try:
        if safe_et is not None:
            return safe_et.fromstring(data, forbid_dtd=True)
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise ValueError("DTD")
        return unsafe_fromstring(data)  # noqa: S314 — DTDs (and so entities) refused just above
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise StatementRejected(_("The XML is malformed at line %(line)s, column %(column)s.",
                                  line=line, column=column)) from None
    except DefusedXmlException:
        raise StatementRejected(_("The XML contains a DTD or entities, which bank statements never need; "
                                  "refused.")) from None


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
        raise StatementRejected(_(
            "The XML is not a CAMT.053 bank statement (root element %(tag)s); expected namespace "
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 … .08 (or camt.054).", tag=root.tag))
    ns = {"c": m[1]}
    notification = m[2] == "4"  # camt.054: BkToCstmrDbtCdtNtfctn/Ntfctn, the same Ntry

    def find(el, path):
        return el.find("/".join(f"c:{p}" for p in path.split("/")), ns) if el is not None else None

    def text(el, path):
        found = find(el, path)
        return (found.text or "").strip() if found is not None and found.text else ""

    def texts(el, path):
        return [(e.text or "").strip() for e in el.findall("/".join(f"c:{p}" for p in path.split("/")), ns)
                if e.text and e.text.strip()] if el is not None else []

    parsed = ParsedStatement(StatementFormat.CAMT054 if notification else StatementFormat.CAMT053)
    container = "c:BkToCstmrDbtCdtNtfctn/c:Ntfctn" if notification else "c:BkToCstmrStmt/c:Stmt"
    statements = root.findall(container, ns)
    if not statements:
        raise StatementRejected(_("The CAMT file has no statement (BkToCstmrStmt/Stmt or "
                                  "BkToCstmrDbtCdtNtfctn/Ntfctn)."))
    parsed.accounts = [a for stmt in statements
                       if (a := text(stmt, "Acct/Id/IBAN") or text(stmt, "Acct/Id/Othr/Id"))]
    counter: dict = {}
    index = 0
    for stmt in statements:
        for ntry in stmt.findall("c:Ntry", ns):
            index += 1
            where = f"entry {index}"
            place = _Place("entry", index)
            amt_el = find(ntry, "Amt")
            if amt_el is None or not (amt_el.text or "").strip():
                raise StatementRejected(_("%(where)s: the amount is missing.", where=place.at("Ntry/Amt")))
            raw_amount = amt_el.text.strip()
            amount = _check_amount(raw_amount, _parse_xml_amount(raw_amount), place.at("Ntry/Amt"))
            indicator = text(ntry, "CdtDbtInd")
            if indicator not in ("CRDT", "DBIT"):
                raise StatementRejected(_("%(where)s: %(value)s is neither CRDT nor DBIT.",
                                          where=place.at("Ntry/CdtDbtInd"), value=repr(indicator)))
            status = text(ntry, "Sts/Cd") or text(ntry, "Sts")
            if text(ntry, "RvslInd").lower() in ("true", "1") or _is_return(ntry, find, text):
                # A reversal undoes an earlier booking; it is never a new payment. So does a
                # return (a collected direct debit coming back unpaid, a transfer sent back).
                if not status or status == "BOOK":
                    parsed.reversals.append(_camt_reversal(where, ntry, indicator, amount, amt_el, find, text))
                parsed.skipped += 1
                continue
            if indicator == "DBIT" or (status and status != "BOOK") or amount <= 0:
                parsed.skipped += 1
                continue
            currency = _check_currency(amt_el.get("Ccy"), place.at("Ntry/Amt/@Ccy"))
            raw_date = (text(ntry, "BookgDt/Dt") or text(ntry, "BookgDt/DtTm")
                        or text(ntry, "ValDt/Dt") or text(ntry, "ValDt/DtTm"))
            booked_on = _parse_iso_date(raw_date)
            if booked_on is None:
                raise StatementRejected(_("%(where)s: date %(raw)s is missing or not valid.",
                                          where=place.at("Ntry/BookgDt"), raw=repr(raw_date)))
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
                    tx_where = place.at(f"TxDtls {j}/AmtDtls/TxAmt/Amt")
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


# Bank transaction sub-families of a return: UPDD unpaid direct debit, PRDD a direct debit
# reversed on the payer's request, RRTN a transfer returned.
_RETURN_SUBFAMILIES = {"UPDD", "PRDD", "RRTN"}


def _is_return(ntry, find, text) -> bool:
    """An entry returning an earlier one without RvslInd: with return information (TxDtls/
    RtrInf) or a return's bank transaction code."""
    return (find(ntry, "NtryDtls/TxDtls/RtrInf") is not None
            or text(ntry, "BkTxCd/Domn/Fmly/SubFmlyCd") in _RETURN_SUBFAMILIES)


def _camt_reversal(where, ntry, indicator, amount, amt_el, find, text) -> Reversal:
    tx = find(ntry, "NtryDtls/TxDtls")
    end_to_end = text(tx, "Refs/EndToEndId") if tx is not None else ""
    refs = {
        "acct_svcr_ref": (text(tx, "Refs/AcctSvcrRef") if tx is not None else "") or text(ntry, "AcctSvcrRef"),
        "entry_acct_svcr_ref": text(ntry, "AcctSvcrRef"),
        "entry_ref": text(ntry, "NtryRef"),
        "end_to_end_id": "" if end_to_end.upper() == "NOTPROVIDED" else end_to_end,
        "tx_id": text(tx, "Refs/TxId") if tx is not None else "",
        "return_reason": (text(tx, "RtrInf/Rsn/Cd") or text(tx, "RtrInf/Rsn/Prtry")) if tx is not None else "",
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
