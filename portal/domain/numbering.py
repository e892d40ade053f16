"""Gapless document numbers: one counter per scope (an invoice series, a credit-note series,
an agreement numbering) and year, in `number_sequence`.

The rule: numbers are taken inside the transaction that uses them. The counter is advanced
with one `UPDATE … SET last_value = last_value + n … RETURNING last_value`, which locks the
row until that transaction ends (PostgreSQL: a row lock, the same as SELECT … FOR UPDATE;
SQLite: the database write lock). A concurrent caller waits, then continues from the
committed value; a transaction that rolls back gives its numbers back with it. So numbers
are unique and without gaps per scope and year, also under concurrent runs.
"""
from __future__ import annotations

import string

from flask_babel import gettext as _
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.domain import DomainError
from portal.models import NumberSequence
from portal.models.base import utcnow

_seq = NumberSequence.__table__


class NumberFormatError(DomainError):
    """A number format names a part that is not given, or is malformed."""


def reserve_numbers(session: Session, scope: str, year: int, count: int) -> range:
    """Take `count` consecutive numbers of (scope, year): the returned range is yours for the
    rest of the transaction (the row stays locked until commit or rollback). The first
    number of a new scope/year is 1. The row is created when missing; if another
    transaction creates it at the same moment, the unique constraint tells us and we use
    that row instead (the insert runs in a SAVEPOINT so the failure costs nothing)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if len(scope) > 60:
        raise DomainError(_("Number scope %(scope)s is longer than 60 characters.", scope=repr(scope)))
    advance = (
        update(_seq)
        .where(_seq.c.scope == scope, _seq.c.year == year)
        .values(last_value=_seq.c.last_value + count, updated_at=utcnow())
        .returning(_seq.c.last_value)
    )
    last = session.execute(advance).scalar_one_or_none()
    if last is None:
        now = utcnow()
        try:
            with session.begin_nested():
                session.execute(
                    insert(_seq).values(scope=scope, year=year, last_value=0, created_at=now, updated_at=now)
                )
        except IntegrityError:
            pass  # created concurrently: the UPDATE below waits for it and uses it
        last = session.execute(advance).scalar_one()
    return range(last - count + 1, last + 1)


def next_number(session: Session, scope: str, year: int) -> int:
    """The next number of (scope, year), gapless: see `reserve_numbers`."""
    return reserve_numbers(session, scope, year, 1)[0]


def format_number(fmt: str, **parts) -> str:
    """A document number from a format such as "{year}/{seq:05d}" or
    "{series}-{year}-{seq:06d}" and its parts. Unknown or malformed placeholders are a
    `NumberFormatError` (a DomainError), not a crash."""
    try:
        names = {name for _text, name, _spec, _conv in string.Formatter().parse(fmt) if name is not None}
    except ValueError as exc:
        raise NumberFormatError(_("Malformed number format %(format)s: %(error)s", format=repr(fmt), error=exc),
                                field="number_format") from exc
    missing = sorted(n for n in names if n.split(".")[0].split("[")[0] not in parts)
    if missing:
        raise NumberFormatError(
            _("Number format %(format)s uses %(missing)s, which is not available (available: %(available)s).",
              format=repr(fmt), missing=", ".join(missing), available=", ".join(sorted(parts))),
            field="number_format",
        )
    try:
        return fmt.format(**parts)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise NumberFormatError(_("Number format %(format)s cannot be applied: %(error)s", format=repr(fmt), error=exc),
                                field="number_format") from exc
