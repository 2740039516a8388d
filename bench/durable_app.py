"""Y4, the durable ingest yardstick: what storing an event costs without the framework.

A bare Starlette route that writes the rows a publish writes (the event, and its
delivery to the one endpoint W2 subscribes) with asyncpg, concurrent requests
grouped into one transaction (group commit, as the gateway does), then queues the
arq job, and answers 202 only after both. No validation, matching, idempotency or
metrics: W2's publish held against it reads as what the gateway costs on top of
durability. Configured by environment: Y4_DATABASE (an asyncpg DSN), Y4_REDIS,
Y4_QUEUE, Y4_ENDPOINT (an endpoint's id in that database).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from arq.connections import ArqRedis, RedisSettings, create_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# As `gateway.queue.dispatch`: events share a job up to this many deliveries.
DELIVERIES_PER_JOB = 100
MAX_BATCH = 200

_EVENT = "INSERT INTO event (id, type, data, created_at) VALUES ($1, $2, $3, $4)"
_DELIVERY = (
    "INSERT INTO delivery (id, event_id, event_type, endpoint_id, status, attempt_count,"
    " stalled_claims, next_attempt_at, dispatched_at, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5, $5, $5, $5)"
)


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(13)}"


class GroupCommit:
    """Events waiting meanwhile are written in the next transaction, one at a time."""

    def __init__(self, conn: asyncpg.Connection, redis: ArqRedis, endpoint: str) -> None:
        self.conn, self.redis, self.endpoint = conn, redis, endpoint
        self.waiting: list[tuple[tuple[str, str, str], asyncio.Future[None]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def store(self, event: tuple[str, str, str]) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((event, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            now = datetime.now(UTC)
            try:
                async with self.conn.transaction():
                    await self.conn.executemany(_EVENT, [(*e, now) for e, _ in batch])
                    await self.conn.executemany(
                        _DELIVERY,
                        [(_id("dlv"), e[0], e[1], self.endpoint, now) for e, _ in batch],
                    )
                ids = [e[0] for e, _ in batch]
                await asyncio.gather(
                    *(
                        self.redis.enqueue_job("deliver_events", chunk, _job_id=f"evt:{chunk[0]}")
                        for i in range(0, len(ids), DELIVERIES_PER_JOB)
                        for chunk in [ids[i : i + DELIVERIES_PER_JOB]]
                    )
                )
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for _, future in batch:
                future.set_result(None)


async def publish(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    event_id = _id("evt")
    data = json.dumps(body["data"], separators=(",", ":"), ensure_ascii=False)
    await request.app.state.group.store((event_id, body["type"], data))
    return JSONResponse({"id": event_id}, status_code=202)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    conn = await asyncpg.connect(os.environ["Y4_DATABASE"])
    redis = await create_pool(
        RedisSettings.from_dsn(os.environ["Y4_REDIS"]), default_queue_name=os.environ["Y4_QUEUE"]
    )
    app.state.group = GroupCommit(conn, redis, os.environ["Y4_ENDPOINT"])
    try:
        yield
    finally:
        await redis.aclose()
        await conn.close()


async def ready(_request: Request) -> JSONResponse:
    return JSONResponse({})


app: Any = Starlette(
    routes=[Route("/v1/events", publish, methods=["POST"]), Route("/ready", ready)],
    lifespan=lifespan,
)
