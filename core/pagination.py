"""Cursor pagination (`limit`, `starting_after`) in a stable order, shaped as SPEC §13 says."""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session


class Page(TypedDict):
    data: list[Any]
    has_more: bool
    next_cursor: Any


def paginate(
    session: Session,
    stmt: Select[Any],
    key: InstrumentedAttribute[Any],
    limit: int,
    starting_after: Any = None,
) -> Page:
    """Rows of `stmt` ordered by `key` (unique), after the cursor, at most `limit` of them."""
    if starting_after is not None:
        stmt = stmt.where(key > starting_after)
    rows = list(session.scalars(stmt.order_by(key).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    cursor = getattr(page[-1], key.key) if more and page else None
    return {"data": page, "has_more": more, "next_cursor": cursor}
