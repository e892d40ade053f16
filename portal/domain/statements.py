"""Bank statement import: CSV and ISO 20022 CAMT.053 (versions 001.02–001.08).

The rules:

- A file is read whole and validated before anything is written: a malformed file is refused
  with a message naming where (CSV line number; XML entry number and element) and nothing is
  recorded. Files over 10 MB are refused.
- The same file (same SHA-256) is imported once; importing it again is refused, naming the
  date of the first import.
- Only credits (incoming money) become payments; debits (and, in CAMT, entries not yet
  booked) are counted and skipped.
- A CAMT entry marked as a reversal (RvslInd true), or returning an earlier one (a collected
  direct debit returned unpaid, a transfer sent back: TxDtls/RtrInf, or the bank
  transaction sub-family UPDD, PRDD, RRTN), is never a new payment. With CRDT it
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

Reading the files is `portal.domain.statement_formats` (CSV, CAMT.053/.054) and
`portal.domain.statement_readers` (ABO/GPC, MT940, Fio CSV, and the detection by content);
their names stay importable from here.
- The statement must be for one of our accounts (`our_accounts`: the partners' IBAN and
  local account, config STATEMENT_ACCOUNTS) when the file names its account and the portal
  knows any; otherwise it is refused, naming both.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.domain import audit
from portal.domain.actors import Actor
from portal.domain.invoice_state import _money
from portal.domain.pairing import _pair, vs_candidates
from portal.domain.payments import _new_payment, reverse_payment
from portal.domain.statement_formats import (
    CAMT_NAMESPACE,
    ParsedStatement,
    Reversal,
    StatementRejected,
    Transaction,
    _account,
    _parse_amount,
    parse_camt053,
    parse_csv,
)
from portal.domain.statement_readers import parse_abo, parse_fio_csv, parse_mt940, parse_statement
from portal.domain.wording import day
from portal.models import (
    Currency,
    Partner,
    Payment,
    PaymentSource,
    PaymentState,
    StatementImport,
)
from portal.models.base import ZERO, utcnow

__all__ = [
    "CAMT_NAMESPACE", "MAX_FILE_SIZE", "PROGRESS_EVERY", "AlreadyImported", "ParsedStatement", "Reversal",
    "StatementRejected", "Transaction", "check_statement", "import_statement", "parse_camt053", "parse_csv",
    "parse_statement", "_parse_amount", "parse_abo", "parse_fio_csv", "parse_mt940", "our_accounts",
    "REVERSED", "ALREADY_REVERSED", "RETURNED_DEBIT", "LEFT_FOR_STAFF",
    "NO_ORIGINAL", "AMBIGUOUS", "ORIGINAL_ALREADY_REVERSED", "UNKNOWN_CURRENCY",
]

MAX_FILE_SIZE = 10 * 1024 * 1024


class AlreadyImported(StatementRejected):
    """The same file (same SHA-256) was imported before."""


# ---------------------------------------------------------------- the import


def check_statement(session: Session, data: bytes) -> ParsedStatement:
    """What import_statement refuses before it writes anything, without writing: too large,
    empty, imported before, malformed (StatementRejected, the message names the line or
    entry). The parsed statement when none of these: pages check an upload this way, answer
    at once, and leave the import itself (the pairing of every payment) to a job."""
    if len(data) > MAX_FILE_SIZE:
        raise StatementRejected(_("The file is larger than %(mb)d MB.", mb=MAX_FILE_SIZE // (1024 * 1024)))
    if not data.strip():
        raise StatementRejected(_("The file is empty."))
    earlier = session.scalar(select(StatementImport).where(StatementImport.sha256 == hashlib.sha256(data).hexdigest()))
    if earlier is not None:
        raise AlreadyImported(_already(earlier))
    parsed = parse_statement(data)
    _check_account(session, parsed)
    return parsed


def our_accounts(session: Session) -> list[str]:
    """The accounts statements may be for: every partner's IBAN and local account, and
    STATEMENT_ACCOUNTS (config, a list) for accounts printed on no document."""
    rows = session.execute(select(Partner.iban, Partner.bank_account)).all()
    extra = current_app.config.get("STATEMENT_ACCOUNTS") or []
    return sorted({a for row in rows for a in row if a} | {a for a in extra if a})


_CZSK_IBAN = re.compile(r"^(CZ|SK)\d{2}(\d{4})(\d{6})(\d{10})$")
_LOCAL = re.compile(r"^(?:(\d{1,6})-)?(\d{1,10})(?:/(\d{4}))?$")


def _account_key(value: str) -> tuple:
    """An account as compared: Czech and Slovak IBANs and local numbers as (prefix, number,
    bank) without leading zeros — an ABO header names no bank (None matches any) and writes
    prefix and number as 16 digits; anything else compact and upper case (a "/CZK" currency
    suffix of an MT940 :25: dropped)."""
    compact = re.sub(r"[\s]", "", value or "").upper()
    compact = re.sub(r"/(CZK|EUR)$", "", compact)
    if m := _CZSK_IBAN.match(compact):
        return (m[3].lstrip("0"), m[4].lstrip("0"), m[2])
    if compact.isdigit() and len(compact) == 16:
        return (compact[:6].lstrip("0"), compact[6:].lstrip("0"), None)
    if m := _LOCAL.match(compact):
        return ((m[1] or "").lstrip("0"), m[2].lstrip("0"), m[3])
    return (compact,)


def _same_account(a: tuple, b: tuple) -> bool:
    if len(a) == 3 and len(b) == 3:
        return a[:2] == b[:2] and (a[2] is None or b[2] is None or a[2] == b[2])
    return a == b


def _check_account(session: Session, parsed: ParsedStatement) -> None:
    """Refuse a statement of an account that is not ours (a file of another company, another
    bank account): its payments would be paired to our customers. No check while the portal
    knows none of its accounts."""
    ours = our_accounts(session)
    if not ours or not parsed.accounts:
        return
    keys = [_account_key(a) for a in ours]
    for account in parsed.accounts:
        key = _account_key(account)
        if not any(_same_account(key, k) for k in keys):
            raise StatementRejected(_(
                "The statement is for account %(account)s, which is not one of the portal's accounts "
                "(%(ours)s); nothing was imported.", account=account, ours=", ".join(ours)))


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
                payment = _new_payment(
                    session, amount=t.amount, currency=t.currency, received_on=t.booked_on,
                    variable_symbol=t.variable_symbol, source=PaymentSource.BANK_IMPORT, customer=None,
                    bank_reference=t.bank_reference, counterparty_account=t.counterparty_account,
                    counterparty_name=t.counterparty_name, constant_symbol=t.constant_symbol,
                    specific_symbol=t.specific_symbol, message=t.message, statement_import=imp,
                    check_reference=False,
                )
                _pair(session, payment, actor)
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
                              _("The file was imported concurrently by someone else; nothing was written.")) from None
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
        return sorted((p for p in rows if _money(p.amount) == r.amount), key=lambda p: p.id)

    refs = sorted({r.references.get(k) for k in ("acct_svcr_ref", "entry_acct_svcr_ref", "tx_id", "end_to_end_id")}
                  - {None, ""})
    found = exact(session.scalars(select(Payment).where(*same_money, Payment.bank_reference.in_(refs)))) if refs else []
    if not found and r.references.get("variable_symbol"):
        rows = session.scalars(select(Payment).where(
            *same_money, Payment.variable_symbol.in_(vs_candidates(r.references["variable_symbol"])),
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
    reverse_payment(
        session, payment, actor=actor, reason=f"bank reversal ({r.where} of import #{imp.id})",
        reversed_on=r.booked_on or utcnow().date(), reference=r.reference, statement_import=imp)
    return {"outcome": REVERSED, "payment_id": payment.id, "customer_id": payment.customer_id}


def _already(earlier: StatementImport) -> str:
    return _("This file was already imported on %(day)s %(time)s UTC (import #%(id)s, %(name)s).",
             day=day(earlier.imported_at), time=f"{earlier.imported_at:%H:%M}", id=earlier.id,
             name=earlier.file_name)


def _known_references(session: Session, refs: list[str]) -> set[str]:
    known: set[str] = set()
    for i in range(0, len(refs), 500):
        chunk = refs[i:i + 500]
        known.update(session.scalars(
            select(Payment.bank_reference).where(
                Payment.source == PaymentSource.BANK_IMPORT, Payment.bank_reference.in_(chunk))
        ))
    return known
