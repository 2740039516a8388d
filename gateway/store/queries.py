"""Queries shared by the services: look-ups by id and keyset pages, newest first."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from gateway.errors import NotFound
from gateway.store.models import Delivery

M = TypeVar("M", bound=SQLModel)

# What our ids are made of; anything else cannot name a row (and a NUL would make
# PostgreSQL fail the query rather than find nothing).
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


async def get_or_404(
    session: AsyncSession, model: type[M], object_id: str, what: str,
    tenant_id: str | None = None,
) -> M:
    """The row, or 404; with `tenant_id`, also 404 for another tenant's row (no leak)."""
    row = await session.get(model, object_id) if _ID_RE.match(object_id) else None
    if row is None or (tenant_id is not None and getattr(row, "tenant_id", None) != tenant_id):
        raise NotFound(f"{what} {object_id!r} not found")
    return row


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


async def deliveries_page(
    session: AsyncSession, *, endpoint_id: str | None = None, event_id: str | None = None,
    status: str | None = None, limit: int = 50, cursor: str | None = None,
) -> tuple[list[Delivery], str | None]:
    """Deliveries of an endpoint and/or an event, optionally in one state, newest first."""
    query = select(Delivery)
    if endpoint_id is not None:
        query = query.where(col(Delivery.endpoint_id) == endpoint_id)
    if event_id is not None:
        query = query.where(col(Delivery.event_id) == event_id)
    if status is not None:
        query = query.where(col(Delivery.status) == status)
    return await page(session, query, Delivery.id, limit, cursor)
