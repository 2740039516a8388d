"""Deleting an endpoint while a worker records attempts on its deliveries: both lock
the same deliveries, each in its own order, and PostgreSQL ends the deadlock by
aborting one of them. The delete that loses runs again and succeeds (it answered
500 before). SQLite has one writer, so there the deadlock cannot happen."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from gateway.outbound.endpoints import delete_endpoint
from tests.support.deadlock import deadlock, deadlocks, two_deliveries
from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver, wait_until


def test_a_delete_that_a_deadlock_aborts_runs_again(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite has one writer: no deadlock")
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    # Finished (the worker leaves them alone); the delete's cascade, walking the
    # endpoint's index, reaches `first` first.
    event, first, second = two_deliveries(gw, endpoint, "succeeded")
    before = deadlocks(gw)

    async def go() -> None:
        engine = create_async_engine(gw.database_url)

        async def delete() -> None:
            async with AsyncSession(engine) as session:
                await delete_endpoint(session, endpoint)
                await session.commit()

        try:
            await deadlock(gw, second, first, "DELETE FROM endpoint", delete())
        finally:
            await engine.dispose()

    asyncio.run(go())
    assert gw.api.get(f"/v1/endpoints/{endpoint}").status_code == 404
    assert gw.sql(f"SELECT count(*) FROM delivery WHERE event_id = '{event}'") == [(0,)]
    # There was a deadlock, and the test's side came through it: the delete was aborted.
    wait_until(lambda: deadlocks(gw) > before, what="the deadlock in the statistics")
