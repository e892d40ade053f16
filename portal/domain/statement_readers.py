"""Reading the Czech banks' statement formats — ABO/GPC, Fio's CSV — and SWIFT MT940, into the
same validated transactions as `portal.domain.statement_formats` (CSV, CAMT.053/.054); and
telling the formats apart by content (never by file name).

Detection, in order: first non-blank character "<" → CAMT.053/.054 (XML); a first record
"074" → ABO; a ":20:" and a ":25:" field at the start of a line → MT940; a column header
line with the columns "ID pohybu" (or "ID operace") and "Objem" → Fio CSV; a header row with
the columns date, amount, currency → the portal's own CSV. Anything else is refused with one
message naming the formats expected.

ABO/GPC (fixed width, Windows-1250, one record a line, 128 characters; positions 1-based as
in the banks' documentation):

    074 header:  4–19 our account (prefix 6 + number 10), 20–39 name, 40–45 previous
                 statement's date, 46–105 balances and turnovers, 106–108 statement
                 number, 109–114 date of the statement (DDMMYY)
    075 item:    4–19 our account, 20–35 counter-account, 36–48 document number (the bank's
                 reference), 49–60 amount in hellers, 61 accounting code, 62–71 VS,
                 72–81 "00" + counter-account's bank code (4) + KS (4), 82–91 SS,
                 92–97 value date, 98–117 counterparty name, 118 change code,
                 119–122 "0" + ISO 4217 numeric currency (0203 CZK, 0978 EUR; other banks
                 write the old "type of data" here, read as CZK), 123–128 booking date
    076–079:     continuation lines (message, names) some banks add: appended to the
                 item's message.

Accounting codes: 1 debit (skipped), 2 credit (a payment), 4 reversal of a debit (one of our
debits came back: a returned debit, CRDT), 5 reversal of a credit (the bank takes an earlier
payment back: DBIT, the original is reversed). Any other code refuses the file, naming the
line — a bank using another numbering must not have credits read as debits.

Fio CSV ("ID pohybu;Datum;Objem;Měna;Protiúčet;Název protiúčtu;Kód banky;Název banky;KS;VS;SS;
Uživatelská identifikace;Zpráva pro příjemce;Typ;Provedl;Upřesnění;Komentář;BIC;ID pokynu",
after "accountId;…", "bankId;…", "iban;…" lines): amount signed with a decimal comma, date
DD.MM.YYYY, "ID pohybu" the bank's reference. A movement whose Typ names a correction
("Opravný pohyb", "storno") is a reversal: negative takes back a payment, positive returns
one of our debits.

MT940 (read by the `mt-940` package): each :61: with status C is a payment, D skipped,
RC (reversal of a credit: a debit entry) takes a payment back, RD returns one of our debits.
The reference is the bank reference (after "//"), else one derived from the content (not the
customer reference: that is the payer's, often the VS, the same every month). Symbols are looked for in :86: ("VS123",
"/VS/123"…); a customer reference of digits only is the VS.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _

from portal.domain.statement_formats import (
    ParsedStatement,
    Reversal,
    StatementRejected,
    Transaction,
    _account,
    _check_amount,
    _check_currency,
    _decode,
    _derived_reference,
    _parse_amount,
    _parse_date,
    _Place,
    _symbol,
    _symbols_from,
    parse_camt053,
    parse_csv,
)
from portal.models import StatementFormat

try:  # the MT940 reader; without it MT940 files are refused, saying so
    import mt940 as _mt940
except ImportError:  # pragma: no cover — a dependency
    _mt940 = None


def parse_statement(data: bytes) -> ParsedStatement:
    """Detect the format by content and read every transaction; StatementRejected on the
    first problem."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_camt053(data)
    if head.startswith(b"074"):
        return parse_abo(data)
    if _MT940_FIELD20.search(head[:4000]) and _MT940_FIELD25.search(head[:8000]):
        return parse_mt940(data)
    text = _decode(data)
    if any(_is_fio_header(line) for line in text[:8000].splitlines()[:40]):
        return parse_fio_csv(text)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not any(d in first for d in ";,\t"):
        raise StatementRejected(_(
            "The file is not a bank statement the portal reads: expected CAMT.053/.054 (XML), "
            "ABO/GPC (first line 074…), MT940 (:20:, :25:, :61:…), Fio CSV (ID pohybu;Datum;Objem…) "
            "or CSV with a header row of the columns date, amount, currency."))
    return parse_csv(data)


# ---------------------------------------------------------------- ABO / GPC

_ABO_LENGTH = 128
_ISO_NUMERIC = {"203": "CZK", "978": "EUR"}


def _local_account(prefix_and_number: str, bank: str = "") -> str:
    """'0000190000123457' + '0100' → '19-123457/0100' (the Czech local form)."""
    digits = prefix_and_number.strip()
    prefix, number = digits[:-10].lstrip("0"), digits[-10:].lstrip("0")
    if not number:
        return ""
    account = f"{prefix}-{number}" if prefix else number
    bank = bank.strip()
    return f"{account}/{bank}" if bank.strip("0") else account


def _abo_date(raw: str) -> date | None | bool:
    """DDMMYY → date; blank or zeros → None; anything else → False (malformed)."""
    if not raw.strip(" 0"):
        return None
    if not raw.isdigit():
        return False
    try:
        return date(2000 + int(raw[4:6]), int(raw[2:4]), int(raw[0:2]))
    except ValueError:
        return False


def parse_abo(data: bytes) -> ParsedStatement:
    """Read an ABO/GPC statement; StatementRejected names the line and the field."""
    text = _decode(data)
    parsed = ParsedStatement(StatementFormat.ABO)
    counter: dict = {}
    statement_date: date | None = None
    last: Transaction | Reversal | None = None
    seen_header = False
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r\n\x1a")
        if not line.strip():
            continue
        place = _Place("line", lineno)
        kind = line[:3]
        if kind == "074":
            seen_header = True
            if len(line.rstrip()) < 114:
                raise StatementRejected(_("%(where)s: a 074 record has %(n)d characters; %(length)d expected.",
                                          where=place, n=len(line), length=_ABO_LENGTH))
            account = _local_account(line[3:19])
            if account:
                parsed.accounts.append(account)
            found = _abo_date(line[108:114])
            if found is False:
                raise StatementRejected(_("%(where)s: date %(raw)s is not DDMMYY.",
                                          where=place.at(_("statement date")), raw=repr(line[108:114])))
            statement_date = found
            last = None
            continue
        if kind in ("076", "077", "078", "079"):
            if last is not None and line[3:].strip():
                extra = re.sub(r"\s+", " ", line[3:]).strip()
                if isinstance(last, Transaction):
                    last.message = f"{last.message} {extra}".strip()[:300]
            continue
        if kind != "075":
            raise StatementRejected(_("%(where)s: record type %(kind)s is not 074, 075 or 076–079 "
                                      "(is this an ABO/GPC statement?).", where=place, kind=repr(kind)))
        if not seen_header:
            raise StatementRejected(_("%(where)s: a 075 item before any 074 header.", where=place))
        if len(line) < 122:
            raise StatementRejected(_("%(where)s: a 075 record has %(n)d characters; %(length)d expected.",
                                      where=place, n=len(line), length=_ABO_LENGTH))
        last = _abo_item(line, place, statement_date, parsed, counter)
    if not seen_header:
        raise StatementRejected(_("The ABO file has no 074 header."))
    return parsed


def _abo_item(line: str, place: _Place, statement_date: date | None, parsed: ParsedStatement,
              counter: dict) -> Transaction | Reversal | None:
    raw_amount = line[48:60]
    if not raw_amount.isdigit():
        raise StatementRejected(_("%(where)s: amount %(raw)s is not a number.",
                                  where=place.at(_("amount")), raw=repr(raw_amount)))
    amount = _check_amount(raw_amount, Decimal(int(raw_amount)) / 100, place.at(_("amount")))
    code = line[60]
    if code not in "1245" or not code.strip():
        raise StatementRejected(_("%(where)s: accounting code %(code)s is not 1 (debit), 2 (credit), "
                                  "4 (reversal of a debit) or 5 (reversal of a credit).",
                                  where=place.at(_("accounting code")), code=repr(code)))
    booked_on = None
    for raw in (line[122:128], line[91:97]):
        found = _abo_date(raw)
        if found is False:
            raise StatementRejected(_("%(where)s: date %(raw)s is not DDMMYY.",
                                      where=place.at(_("date")), raw=repr(raw)))
        if found is not None:
            booked_on = found
            break
    booked_on = booked_on or statement_date
    if booked_on is None:
        raise StatementRejected(_("%(where)s: the item has no date.", where=place.at(_("date"))))
    currency_field = line[118:122]
    iso = currency_field[1:] if currency_field[:1] == "0" else ""
    if iso.isdigit() and iso not in _ISO_NUMERIC:
        raise StatementRejected(_("%(where)s: currency %(raw)s is not supported (known: CZK, EUR).",
                                  where=place.at(_("currency")), raw=repr(currency_field)))
    currency = _check_currency(_ISO_NUMERIC.get(iso, "CZK"), place)
    counterparty = _local_account(line[19:35], line[73:77])
    # Fixed width pads with zeros; the portal writes symbols without them.
    vs, ss = _symbol(line[61:71].lstrip("0"), 10), _symbol(line[81:91].lstrip("0"), 10)
    ks = _symbol(line[77:81], 4)
    name = line[97:117].strip()
    document = line[35:48].strip().lstrip("0")
    if code == "1" or amount <= 0:
        parsed.skipped += 1
        return None
    if code in "45":
        parsed.skipped += 1
        refs = {"tx_id": document, "variable_symbol": vs or ""}
        reference = document or _derived_reference(
            "abo-rvsl", [code, booked_on, amount, currency, vs, counterparty], counter)
        reversal = Reversal(where=f"line {place.number}", direction="DBIT" if code == "5" else "CRDT",
                            booked_on=booked_on, amount=amount, currency=currency.value,
                            references={k: v for k, v in refs.items() if v}, reference=reference[:100],
                            accounts=(_account(counterparty),) if counterparty else ())
        parsed.reversals.append(reversal)
        return reversal
    reference = document or _derived_reference("abo", [booked_on, amount, currency, vs, counterparty, name],
                                               counter)
    transaction = Transaction(
        where=f"line {place.number}", booked_on=booked_on, amount=amount, currency=currency,
        bank_reference=reference[:100], variable_symbol=vs, constant_symbol=ks, specific_symbol=ss,
        counterparty_account=counterparty or None, counterparty_name=name or None, message="",
    )
    parsed.credits.append(transaction)
    return transaction


# ---------------------------------------------------------------- Fio CSV

def _fio_cells(line: str) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.split(";")]


def _is_fio_header(line: str) -> bool:
    cells = _fio_cells(line.lstrip("\ufeff"))
    return ("ID pohybu" in cells or "ID operace" in cells) and "Objem" in cells


_FIO_ACCOUNT_LINE = re.compile(r'účtu\s+"([^"]+)"')
_FIO_COLUMNS = {
    "id pohybu": "id", "id operace": "id", "datum": "date", "objem": "amount", "měna": "currency",
    "protiúčet": "account", "název protiúčtu": "name", "kód banky": "bank", "ks": "ks", "vs": "vs",
    "ss": "ss", "uživatelská identifikace": "user_id", "zpráva pro příjemce": "message", "typ": "type",
    "komentář": "comment", "poznámka": "note", "upřesnění": "detail",
}
_FIO_CORRECTION = re.compile(r"opravn|storno", re.IGNORECASE)


def parse_fio_csv(text: str) -> ParsedStatement:
    """Read Fio banka's CSV export; StatementRejected names the line."""
    parsed = ParsedStatement(StatementFormat.FIO_CSV)
    meta: dict[str, str] = {}
    header: list[str] | None = None
    counter: dict = {}
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=";")
    for row in reader:
        lineno = reader.line_num
        place = _Place("line", lineno)
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if header is None:
            if _is_fio_header(";".join(cells)):
                header = [_FIO_COLUMNS.get(c.lower(), c.lower()) for c in cells]
                missing = [c for c, key in (("Datum", "date"), ("Objem", "amount"), ("Měna", "currency"))
                           if key not in header]
                if missing:
                    raise StatementRejected(_("%(where)s: the header lacks the column(s) %(missing)s.",
                                              where=place, missing=", ".join(missing)))
            elif len(cells) >= 2:
                meta[cells[0]] = cells[1]
            elif m := _FIO_ACCOUNT_LINE.search(cells[0]):  # internet banking: Výpis … na účtu "…/2010"
                meta.setdefault("account", m[1])
            continue
        rec = dict(zip(header, cells, strict=False))
        if rec.get("date") == "Suma":  # internet banking's closing sum line
            continue
        raw_amount = rec.get("amount", "")
        amount = _check_amount(raw_amount, _parse_amount(raw_amount), place.at("Objem"))
        booked_on = _parse_date(rec.get("date", ""))
        if booked_on is None:
            raise StatementRejected(_("%(where)s: date %(raw)s is not DD.MM.YYYY.",
                                      where=place.at("Datum"), raw=repr(rec.get("date", ""))))
        if amount == 0:
            parsed.skipped += 1
            continue
        currency = _check_currency(rec.get("currency"), place.at("Měna"))
        account = rec.get("account", "")
        if account and rec.get("bank") and "/" not in account:
            account = f"{account}/{rec['bank']}"
        vs, ks, ss = _symbol(rec.get("vs"), 10), _symbol(rec.get("ks"), 4), _symbol(rec.get("ss"), 10)
        message = " ".join(t for t in (rec.get("message"), rec.get("user_id"), rec.get("note"),
                                       rec.get("comment")) if t)[:300]
        reference = rec.get("id", "")
        if _FIO_CORRECTION.search(rec.get("type", "")):
            parsed.skipped += 1
            refs = {"variable_symbol": vs or ""}
            parsed.reversals.append(Reversal(
                where=f"line {lineno}", direction="DBIT" if amount < 0 else "CRDT", booked_on=booked_on,
                amount=abs(amount), currency=currency.value, references={k: v for k, v in refs.items() if v},
                reference=(reference or _derived_reference("fio-rvsl", [booked_on, amount, vs, account],
                                                           counter))[:100],
                accounts=(_account(account),) if account else ()))
            continue
        if amount < 0:
            parsed.skipped += 1
            continue
        if len(reference) > 100:
            raise StatementRejected(_("%(where)s: ID pohybu is longer than 100 characters.", where=place))
        parsed.credits.append(Transaction(
            where=f"line {lineno}", booked_on=booked_on, amount=amount, currency=currency,
            bank_reference=reference or _derived_reference("fio", [booked_on, amount, currency, vs, account,
                                                                  message], counter),
            variable_symbol=vs, constant_symbol=ks, specific_symbol=ss, counterparty_account=account or None,
            counterparty_name=rec.get("name") or None, message=message))
    if header is None:
        raise StatementRejected(_("The Fio CSV has no column header (ID pohybu;Datum;Objem;Měna;…)."))
    if meta.get("iban"):
        parsed.accounts.append(meta["iban"])
    elif meta.get("account"):
        parsed.accounts.append(meta["account"])
    elif meta.get("accountId"):
        parsed.accounts.append(f"{meta['accountId']}/{meta.get('bankId', '')}".rstrip("/"))
    return parsed


# ---------------------------------------------------------------- MT940

# A :20: and a :25: field at a line's start (after a bank's own header lines or a SWIFT {1:…}
# block): no CSV or ABO line starts so.
_MT940_FIELD20 = re.compile(rb"(^|[\n{:])\s*:20:", re.MULTILINE)
_MT940_FIELD25 = re.compile(rb"^:25:", re.MULTILINE)
_MT940_LINE = re.compile(r"^:61:(\d{6})(\d{4})?(R?[DC])[A-Z]?(\d+,\d*)", re.MULTILINE)


def parse_mt940(data: bytes) -> ParsedStatement:
    """Read an MT940 statement with the `mt-940` package; StatementRejected names the line
    of a :61: the package cannot read."""
    text = _decode(data).replace("\r\n", "\n")
    lines = text.split("\n")
    statement_lines = [n for n, line in enumerate(lines, 1) if line.startswith(":61:")]
    for n in statement_lines:
        if not _MT940_LINE.match(lines[n - 1]):
            raise StatementRejected(_("%(where)s: the :61: statement line %(raw)s is not "
                                      "date, D/C/RD/RC mark and amount.",
                                      where=_Place("line", n), raw=repr(lines[n - 1][:60])))
    if _mt940 is None:  # pragma: no cover
        raise StatementRejected(_("MT940 files cannot be read: the mt-940 package is not installed."))
    try:
        transactions = _mt940.models.Transactions()
        transactions.parse(text)
    except Exception as exc:  # noqa: BLE001 — the package raises plain exceptions on bad input
        raise StatementRejected(_("The MT940 file could not be read: %(error)s", error=str(exc)[:200])) from None
    entries = list(transactions)
    if len(entries) != len(statement_lines):
        raise StatementRejected(_("The MT940 file has %(lines)d :61: lines but %(read)d could be read.",
                                  lines=len(statement_lines), read=len(entries)))
    parsed = ParsedStatement(StatementFormat.MT940)
    parsed.accounts = sorted({line[4:].strip() for line in lines if line.startswith(":25:") and line[4:].strip()})
    counter: dict = {}
    for n, entry in zip(statement_lines, entries, strict=True):
        parsed_entry = _mt940_entry(entry.data, _Place("line", n), counter)
        if isinstance(parsed_entry, Reversal):
            parsed.reversals.append(parsed_entry)
            parsed.skipped += 1
        elif parsed_entry is None:
            parsed.skipped += 1
        else:
            parsed.credits.append(parsed_entry)
    return parsed


def _mt940_entry(d: dict, place: _Place, counter: dict) -> Transaction | Reversal | None:
    amount_obj = d.get("amount")
    amount = _check_amount(str(getattr(amount_obj, "amount", "")), abs(Decimal(getattr(amount_obj, "amount", 0))),
                           place)
    status = d.get("status") or ""
    entry_date = d.get("entry_date") or d.get("date")
    booked_on = date(entry_date.year, entry_date.month, entry_date.day) if entry_date else None
    if booked_on is None:
        raise StatementRejected(_("%(where)s: the entry has no date.", where=place))
    currency = _check_currency(getattr(amount_obj, "currency", None) or d.get("currency"), place)
    details = [str(d.get(k) or "") for k in ("transaction_details", "purpose", "additional_purpose",
                                              "end_to_end_reference", "posting_text", "extra_details")]
    customer = (d.get("customer_reference") or "").strip()
    if customer.upper() == "NONREF":
        customer = ""
    found = _symbols_from([customer, *details])
    vs = found["VS"] or (_symbol(customer, 10) if customer.isdigit() else None)
    bank_ref = (d.get("bank_reference") or "").strip()
    name = (d.get("applicant_name") or "").strip()
    iban = (d.get("applicant_iban") or d.get("gvc_applicant_iban") or "").strip()
    message = " ".join(t for t in (d.get("purpose"), d.get("additional_purpose"), d.get("posting_text")) if t) \
        or " ".join(str(d.get("transaction_details") or "").split())
    if status in ("RC", "RD"):
        refs = {"tx_id": bank_ref, "end_to_end_id": customer, "variable_symbol": vs or ""}
        reference = bank_ref or _derived_reference("mt940-rvsl", [status, booked_on, amount, currency, customer,
                                                                  *details], counter)
        return Reversal(where=f"line {place.number}", direction="DBIT" if status == "RC" else "CRDT",
                        booked_on=booked_on, amount=amount, currency=currency.value,
                        references={k: v for k, v in refs.items() if v}, reference=reference[:100],
                        accounts=(_account(iban),) if iban else ())
    if status != "C" or amount <= 0:
        return None
    # Not the customer reference: it is the payer's (often the VS), the same every month.
    reference = bank_ref or _derived_reference(
        "mt940", [booked_on, amount, currency, vs, iban, *details], counter)
    return Transaction(
        where=f"line {place.number}", booked_on=booked_on, amount=amount, currency=currency,
        bank_reference=reference[:100], variable_symbol=vs, constant_symbol=found["KS"],
        specific_symbol=found["SS"], counterparty_account=iban[:50] or None,
        counterparty_name=name[:200] or None, message=message[:300])
