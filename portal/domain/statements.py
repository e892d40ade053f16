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

Reading the files (CSV, CAMT.053) is `portal.domain.statement_formats`; its names stay
importable from here.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

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
    parse_statement,
)
from portal.domain.wording import day
from portal.models import (
    Currency,
    Payment,
    PaymentSource,
    PaymentState,
    StatementImport,
)
from portal.models.base import ZERO, utcnow

__all__ = [
    "CAMT_NAMESPACE", "MAX_FILE_SIZE", "PROGRESS_EVERY", "AlreadyImported", "ParsedStatement", "Reversal",
    "StatementRejected", "Transaction", "check_statement", "import_statement", "parse_camt053", "parse_csv",
    "parse_statement", "_parse_amount",
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
