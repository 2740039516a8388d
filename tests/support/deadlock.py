"""A deadlock on purpose, between a transaction of the gateway's and one of the test's,
that PostgreSQL ends by aborting the gateway's: the test's side waits 10 s before it
looks for a deadlock, the gateway's 1 s (PostgreSQL's default)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.gateway import Gateway


def dsn_of(gw: Gateway) -> str:
    return make_url(gw.database_url).set(drivername="postgresql").render_as_string(False)


async def deadlock(
    dsn: str, held: str, wanted: str, waiting: str, gateway_side: Coroutine[Any, Any, Any]
) -> Any:
    """Lock delivery `held`, run `gateway_side` until a statement of it starting with
    `waiting` waits for a lock (it has locked `wanted` and wants `held`), then lock
    `wanted`: a deadlock. Once the gateway's side was aborted, this side gets `wanted`
    and commits; returns what `gateway_side` returned, which must have come through."""
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
        while not await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE $1",
            waiting + "%",
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
