"""Queries shared by the services: look-ups by id and keyset pages, newest first."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from gateway.errors import NotFound

M = TypeVar("M", bound=SQLModel)
T = TypeVar("T")
U = TypeVar("U")

# What our ids are made of; anything else cannot name a row (and a NUL would make
# PostgreSQL fail the query rather than find nothing).
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


async def get_or_404(
    session: AsyncSession,
    model: type[M],
    object_id: str,
    what: str,
    tenant_id: str | None = None,
) -> M:
    """The row, or 404; with `tenant_id`, also 404 for another tenant's row (no leak)."""
    row = await session.get(model, object_id) if _ID_RE.match(object_id) else None
    if row is None or (tenant_id is not None and getattr(row, "tenant_id", None) != tenant_id):
        raise NotFound(f"{what} {object_id!r} not found")
    return row


@dataclass
class Page(Generic[T]):
    """One page of a list, newest first; `next_cursor` asks for the next one."""

    data: list[T]
    next_cursor: str | None

    def map(self, shown: Callable[[T], U]) -> Page[U]:
        return Page([shown(row) for row in self.data], self.next_cursor)

    def body(self) -> dict[str, Any]:
        """As the API answers it."""
        return {"data": self.data, "next_cursor": self.next_cursor}


async def page(
    session: AsyncSession, query: Select[Any], id_column: Any, limit: int, cursor: str | None
) -> Page[Any]:
    """One page of `query`, newest first; ids sort by age, so the cursor is the last id."""
    if cursor:
        query = query.where(id_column < cursor)
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, rows[-1].id)
    return Page(rows, None)
