"""The refusal log: requests to `/in/{source}` that were refused, and why.

A refused request stores nothing of itself (no event, never its body nor its
signature), but an operator whose provider's webhooks do not arrive needs to see
that they came and why they were turned away. Each refusal keeps the reason, the
caller's address, and a few headers that are never secret.

Written off the request's path: `RefusalLog.refused` only appends to a bounded
queue in memory, and one task per process writes what is queued in batches. An
attacker cannot grow the table: the queue drops its oldest entries when full (the
failure limiter already bounds each address), and each write prunes its sources
to their latest `KEEP_PER_SOURCE` refusals.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import SessionMaker
from gateway.inbound.sources import get_source
from gateway.store.models import SourceRefusal, table
from gateway.timeutil import as_utc, utcnow

log = logging.getLogger("gateway.inbound")

KEEP_PER_SOURCE = 100
# Refusals waiting to be written, at most; past it the oldest are dropped.
QUEUE_LIMIT = 1000
BATCH = 200
# Headers worth seeing and never secret; of the others, only their names are kept.
SHOWN_HEADERS = (
    "user-agent",
    "content-type",
    "content-length",
    "x-github-event",
    "x-github-delivery",
    "x-gitlab-event",
    "x-shopify-topic",
    "x-shopify-webhook-id",
    "webhook-id",
    "webhook-timestamp",
    "x-slack-request-timestamp",
)
MAX_HEADER_VALUE = 200
MAX_HEADER_NAMES = 40

_REFUSAL = table(SourceRefusal)


def shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The harmless headers' values, and under `(names)` the names of all that came
    (which signature header was sent tells much; its value stays out)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    shown = {
        name: lowered[name][:MAX_HEADER_VALUE].replace("\x00", "")
        for name in SHOWN_HEADERS
        if name in lowered
    }
    shown["(names)"] = ", ".join(sorted(lowered)[:MAX_HEADER_NAMES])[:1000]
    return shown


class RefusalLog:
    """One per API process; `close()` writes what is still queued."""

    def __init__(self, sessionmaker: SessionMaker) -> None:
        self._sessionmaker = sessionmaker
        self._queue: deque[dict[str, Any]] = deque(maxlen=QUEUE_LIMIT)
        self._writer: asyncio.Task[None] | None = None

    def refused(
        self,
        source_id: str,
        reason: str,
        message: str,
        client: str,
        headers: Mapping[str, str],
    ) -> None:
        self._queue.append(
            {
                "source_id": source_id,
                "received_at": utcnow(),
                "reason": reason[:32],
                "message": message[:255],
                "client": client[:64],
                "headers": shown_headers(headers),
            }
        )
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="refusal-log")

    async def _write(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                async with self._sessionmaker() as session, session.begin():
                    await session.execute(insert(_REFUSAL), batch)
                    for source_id in {row["source_id"] for row in batch}:
                        await _prune(session, source_id)
            except Exception as exc:  # the log is a courtesy: never let it take the API down
                log.warning("%d refused requests not logged: %s", len(batch), type(exc).__name__)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


async def _prune(session: AsyncSession, source_id: str) -> None:
    r = _REFUSAL.c
    kept = (
        select(r.id)
        .where(r.source_id == source_id)
        .order_by(r.id.desc())
        .limit(KEEP_PER_SOURCE)
        .scalar_subquery()
    )
    await session.execute(delete(_REFUSAL).where(r.source_id == source_id, r.id.not_in(kept)))


async def recent_refusals(
    session: AsyncSession, source_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest refused requests, newest first: of one source (404 if there is no
    such source), or of every source.

    Each is a dict: `id` (int), `source_id` (str), `received_at` (aware UTC
    datetime), `reason` (short code: `missing_header`, `malformed`, `bad_signature`,
    `expired`, `disabled`, `rate_limited`), `message` (why, in words, never a secret),
    `client` (the caller's address) and `headers` (a dict: the values of a few
    harmless headers such as `user-agent` and `content-type`, and under `(names)` the
    names of every header sent, comma-separated; never a signature's value)."""
    r = _REFUSAL.c
    query = select(_REFUSAL).order_by(r.id.desc()).limit(limit)
    if source_id is not None:
        await get_source(session, source_id)
        query = query.where(r.source_id == source_id)
    rows = await session.execute(query)
    return [_out(dict(row._mapping)) for row in rows]


def _out(row: dict[str, Any]) -> dict[str, Any]:
    row["received_at"] = as_utc(row["received_at"])
    return row


REFUSAL_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "source_id": "src_01JHQ3Z2W0V6S8N4T5K7M9P1R3",
    "received_at": "2026-01-15T10:15:02.331Z",
    "reason": "bad_signature",
    "message": "no signature in X-Hub-Signature-256 matches",
    "client": "192.0.2.10",
    "headers": {
        "user-agent": "GitHub-Hookshot/7d4e2c1",
        "content-type": "application/json",
        "x-github-event": "issues",
        "(names)": "content-type, user-agent, x-github-event, x-hub-signature-256",
    },
}


class RefusalOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [REFUSAL_EXAMPLE]})

    id: int = Field(description="The refusal's number; higher is newer.")
    source_id: str = Field(description="The source the request was sent to (`src_...`).")
    received_at: datetime = Field(description="When it was refused (RFC 3339, UTC).")
    reason: str = Field(
        description="Why, as a code: `missing_header`, `malformed`, `bad_signature`, "
        "`expired`, `disabled` or `rate_limited`; for a verified request, "
        "`transformation_failed` (the source's transformation failed: answered 503) or "
        "`cancelled` (its transformation dropped it: answered 200)."
    )
    message: str = Field(description="Why, in words (never a secret nor a signature).")
    client: str = Field(description="The address the request came from.")
    headers: dict[str, str] = Field(
        description="A few harmless headers' values (`user-agent`, `content-type`, the "
        "provider's event and delivery ids), and under `(names)` the names of every "
        "header sent; never a signature's value nor the body."
    )


class RefusalList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [REFUSAL_EXAMPLE]}]})

    data: list[RefusalOut] = Field(
        description=f"The latest refusals, newest first (at most {KEEP_PER_SOURCE} are kept "
        "per source)."
    )
