"""Pagination on indexed ordering: a page of rows and the count, two queries whatever the size."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

from sqlalchemy import Select, bindparam, func, select

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


def paginate(stmt: Select, page: int, per_page: int, scalars: bool = True, params: dict | None = None) -> Page:
    """A page of `stmt` and the count. With `params`, `stmt` is a statement built once with
    bound parameters (their values in `params`): its count and page statements are built once too."""
    if params is None:
        count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery())
        page_stmt = stmt.limit(per_page).offset((page - 1) * per_page)
    else:
        count_stmt, page_stmt = _paged(stmt)
        params = {**params, "page_limit": per_page, "page_offset": (page - 1) * per_page}
    total = db.session.scalar(count_stmt, params) or 0
    rows = db.session.execute(page_stmt, params)
    items = list(rows.scalars()) if scalars else list(rows)
    return Page(items=items, page=page, per_page=per_page, total=total)


@lru_cache(maxsize=128)
def _paged(stmt: Select):
    return (select(func.count()).select_from(stmt.order_by(None).subquery()),
            stmt.limit(bindparam("page_limit")).offset(bindparam("page_offset")))
