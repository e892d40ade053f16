"""Pagination on indexed ordering: a page of rows and the count, two queries whatever the size."""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from sqlalchemy import Select, func, select

from portal.extensions import db


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 100_000))
    except ValueError:
        return 1


def paginate(stmt: Select, page: int, per_page: int, scalars: bool = True) -> Page:
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page))
    items = list(rows.scalars()) if scalars else list(rows)
    return Page(items=items, page=page, per_page=per_page, total=total)
