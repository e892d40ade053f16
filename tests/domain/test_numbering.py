"""Gapless numbering (portal/domain/numbering.py)."""
import pytest
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain.numbering import format_number, next_number, reserve_numbers
from portal.models import NumberSequence


def test_next_number_starts_at_one_and_counts(db):
    assert [next_number(db, "invoice:1FV", 2026) for _ in range(3)] == [1, 2, 3]
    assert next_number(db, "invoice:2FV", 2026) == 1  # per scope
    assert next_number(db, "invoice:1FV", 2027) == 1  # a new year restarts
    db.commit()
    assert next_number(db, "invoice:1FV", 2026) == 4


def test_reserve_numbers_gives_a_block(db):
    assert list(reserve_numbers(db, "s", 2026, 3)) == [1, 2, 3]
    assert next_number(db, "s", 2026) == 4
    with pytest.raises(ValueError):
        reserve_numbers(db, "s", 2026, 0)


def test_rollback_gives_numbers_back(db):
    next_number(db, "s", 2026)
    db.commit()
    assert next_number(db, "s", 2026) == 2
    db.rollback()
    assert next_number(db, "s", 2026) == 2


def test_existing_row_is_used(db):
    db.add(NumberSequence(scope="agreement:global", year=2026, last_value=41))
    db.commit()
    assert next_number(db, "agreement:global", 2026) == 42
    assert db.scalar(select(NumberSequence.last_value).where(NumberSequence.scope == "agreement:global")) == 42


def test_format_number():
    assert format_number("{year}/{seq:05d}", year=2026, seq=12) == "2026/00012"
    assert format_number("{series}-{year}-{seq:06d}", series="1FV", year=2026, seq=123) == "1FV-2026-000123"
    with pytest.raises(DomainError):
        format_number("{year}/{customer}", year=2026, seq=1)
    with pytest.raises(DomainError):
        format_number("{year/{seq}", year=2026, seq=1)
    with pytest.raises(DomainError):
        format_number("{seq:05d}", seq="x")
