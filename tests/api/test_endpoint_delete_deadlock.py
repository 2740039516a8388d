"""Deleting an endpoint while a worker records attempts on its deliveries: both lock
the same deliveries, each in its own order, and PostgreSQL ends the deadlock by
aborting one of them. The delete that loses runs again and succeeds (it answered
500 before). SQLite has one writer, so there the deadlock cannot happen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from gateway.ids import new_id
from gateway.outbound.endpoints import delete_endpoint
from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver, wait_until


def test_a_delete_that_a_deadlock_aborts_runs_again(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite has one writer: no deadlock")
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    event = new_id("evt")
    # Two finished deliveries (the worker leaves them alone), made in this order: the
    # delete's cascade, walking the endpoint's index, reaches `first` first.
    first, second = new_id("dlv"), new_id("dlv")
    now = datetime.now(UTC).isoformat()
    gw.sql(
        f"INSERT INTO event (id, type, data, created_at) VALUES ('{event}', 't', '{{}}', '{now}')"
    )
    for delivery in (first, second):
        gw.sql(
            "INSERT INTO delivery (id, event_id, endpoint_id, status, attempt_count, "
            f"stalled_claims, created_at, updated_at) VALUES ('{delivery}', '{event}', "
            f"'{endpoint}', 'succeeded', 1, 0, '{now}', '{now}')"
        )
    dsn = make_url(gw.database_url).set(drivername="postgresql").render_as_string(False)
    deadlocks_before = _deadlocks(gw)

    async def go() -> None:
        # The "worker": holds `second`, as a record in flight would, and asks for `first`
        # once the delete holds it. It waits 10 s before looking for a deadlock, the
        # delete 1 s (PostgreSQL's default): the delete is the one aborted.
        worker = await asyncpg.connect(dsn)
        watcher = await asyncpg.connect(dsn)
        engine = create_async_engine(gw.database_url)
        try:
            await worker.execute("SET deadlock_timeout = '10s'")
            recording = worker.transaction()
            await recording.start()
            await worker.execute("SELECT 1 FROM delivery WHERE id = $1 FOR UPDATE", second)

            async def delete() -> None:
                async with AsyncSession(engine) as session:
                    await delete_endpoint(session, endpoint)
                    await session.commit()

            deleting = asyncio.create_task(delete())

            async def delete_waits() -> bool:
                return bool(
                    await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'DELETE FROM endpoint%'"
                    )
                )

            deadline = asyncio.get_running_loop().time() + 10
            while not await delete_waits():
                assert asyncio.get_running_loop().time() < deadline, "the delete never waited"
                await asyncio.sleep(0.02)
            # Blocks until the delete, found in the deadlock, is aborted; it is run
            # again at once and waits for this transaction to end.
            await worker.execute("SELECT 1 FROM delivery WHERE id = $1 FOR UPDATE", first)
            await recording.commit()
            await asyncio.wait_for(deleting, 30)
        finally:
            await worker.close()
            await watcher.close()
            await engine.dispose()

    asyncio.run(go())
    assert gw.api.get(f"/v1/endpoints/{endpoint}").status_code == 404
    assert gw.sql(f"SELECT count(*) FROM delivery WHERE event_id = '{event}'") == [(0,)]
    # There was a deadlock, and the "worker" came through it: the delete was aborted.
    wait_until(lambda: _deadlocks(gw) > deadlocks_before, what="the deadlock in the statistics")


def _deadlocks(gw: Gateway) -> int:
    [(count,)] = gw.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(count)  # type: ignore[call-overload]
