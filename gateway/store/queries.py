"""Queries shared by the services: keyset pages, newest first."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)


async def page(
    session: AsyncSession, query: Select[Any], id_column: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of `query`, newest first; ids sort by age, so the cursor is the last id."""
    if cursor:
        query = query.where(id_column < cursor)
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1].id
    return rows, None
