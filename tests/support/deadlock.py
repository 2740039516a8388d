"""A deadlock on purpose, between a transaction of the gateway's and one of the test's,
that PostgreSQL ends by aborting the gateway's: the test's side waits 10 s before it
looks for a deadlock, the gateway's 1 s (PostgreSQL's default)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.ids import new_id
from tests.support.gateway import Gateway, asyncpg_dsn


def two_deliveries(
    gw: Gateway, endpoint: str, status: str, lease: datetime | None = None
) -> tuple[str, str, str]:
    """An event and two deliveries of it to `endpoint`, made in this order (so that a
    walk of the endpoint's index reaches the first first): their ids."""
    event, first, second = new_id("evt"), new_id("dlv"), new_id("dlv")
    now = datetime.now(UTC).isoformat()
    locked_until = "NULL" if lease is None else f"'{lease.isoformat()}'"
    gw.sql(
        f"INSERT INTO event (id, type, data, created_at) VALUES ('{event}', 't', '{{}}', '{now}')"
    )
    for delivery in (first, second):
        gw.sql(
            "INSERT INTO delivery (id, event_id, endpoint_id, status, attempt_count, "
            "stalled_claims, locked_until, created_at, updated_at) VALUES "
            f"('{delivery}', '{event}', '{endpoint}', '{status}', 0, 0, {locked_until}, "
            f"'{now}', '{now}')"
        )
    return event, first, second


async def deadlock(
    gw: Gateway, held: str, wanted: str, waiting: str, gateway_side: Coroutine[Any, Any, Any]
) -> Any:
    """Lock delivery `held`, run `gateway_side` until a statement of it starting with
    `waiting` waits for a lock (it has locked `wanted` and wants `held`), then lock
    `wanted`: a deadlock. Once the gateway's side was aborted, this side gets `wanted`
    and commits; returns what `gateway_side` returned, which must have come through."""
    dsn = asyncpg_dsn(gw.database_url)
    test_side = await asyncpg.connect(dsn)
    watcher = await asyncpg.connect(dsn)
    task = None
    try:
        await test_side.execute("SET deadlock_timeout = '10s'")
        transaction = test_side.transaction()
        await transaction.start()
        await test_side.execute("SELECT 1 FROM delivery WHERE id = $1 FOR UPDATE", held)
        task = asyncio.create_task(gateway_side)
        deadline = asyncio.get_running_loop().time() + 10
        # Only a statement that waits for this side's lock: other tests' statements of
        # the same shape may be waiting for locks of their own at the same moment.
        while not await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 "
            "AND $2::int = ANY(pg_blocking_pids(pid))",
            waiting + "%",
            test_side.get_server_pid(),
        ):
            assert asyncio.get_running_loop().time() < deadline, f"{waiting}... never waited"
            await asyncio.sleep(0.02)
        # Waits until the gateway's transaction, found in the deadlock, is aborted.
        await test_side.execute("SELECT 1 FROM delivery WHERE id = $1 FOR UPDATE", wanted)
        await transaction.commit()
        return await asyncio.wait_for(task, 30)
    finally:
        if task is not None and not task.done():
            task.cancel()
        await test_side.close()
        await watcher.close()


def deadlocks(gw: Gateway) -> int:
    """Deadlocks PostgreSQL has counted in the gateway's database."""
    [(count,)] = gw.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(count)  # type: ignore[call-overload]
