"""A publish that keeps losing its endpoints to deletes between matching and insert:
its last try locks the endpoints it matched, so it stores instead of failing.

Driven in-process against the suite's PostgreSQL: before each insert of deliveries,
another connection deletes one of the endpoints, as `DELETE /v1/endpoints/{id}`
would. SQLite has one writer, so there the race cannot happen."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from gateway.outbound.fanout import STORE_TRIES, Publish, publish_many
from tests.support.gateway import Gateway, asyncpg_dsn
from tests.support.helpers import make_endpoint
from tests.support.jobs import QueuedJobs
from tests.support.receiver import Receiver


def _delete_elsewhere(dsn: str, endpoint_id: str) -> str:
    """Delete the endpoint over a connection of its own, in a thread of its own (the
    publish's loop is blocked meanwhile): "deleted", or "locked" when its row is held."""
    outcome: list[str] = []

    async def delete() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SET lock_timeout = '200ms'")
            await conn.execute("DELETE FROM endpoint WHERE id = $1", endpoint_id)
            outcome.append("deleted")
        except asyncpg.LockNotAvailableError:
            outcome.append("locked")
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(delete(),))
    thread.start()
    thread.join()
    return outcome[0]


def test_a_publish_losing_an_endpoint_on_every_try_stores_on_the_last(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite has one writer: no delete comes between matching and insert")
    tenant = f"locks-{uuid.uuid4().hex[:8]}"
    ids = [
        make_endpoint(gw, receiver.url(f"{path}/{i}"), tenant_id=tenant)["id"]
        for i in range(STORE_TRIES + 2)
    ]
    dsn = asyncpg_dsn(gw.database_url)
    deletes: list[str] = []

    async def go() -> Any:
        engine = create_async_engine(gw.database_url)

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def delete_one_first(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("INSERT INTO delivery"):
                deletes.append(_delete_elsewhere(dsn, ids[len(deletes)]))

        jobs = QueuedJobs()
        try:
            async with engine.connect() as conn:
                async with AsyncSession(bind=conn) as session:
                    return await publish_many(
                        session, jobs, [Publish("order.created", {"n": 1}, tenant_id=tenant)]
                    )
        finally:
            await engine.dispose()

    [published] = asyncio.run(go())
    # Each try but the last lost an endpoint; the last one held its endpoints, so the
    # delete that came then had to wait for it.
    assert deletes == ["deleted"] * (STORE_TRIES - 1) + ["locked"]
    assert not isinstance(published, Exception), published
    assert published.deliveries == len(ids) - (STORE_TRIES - 1)
    stored = gw.sql(f"SELECT endpoint_id FROM delivery WHERE event_id = '{published.event.id}'")
    assert {row[0] for row in stored} == set(ids[STORE_TRIES - 1 :])
    # Once the publish committed, the endpoint it held can go, its delivery with it.
    assert _delete_elsewhere(dsn, ids[STORE_TRIES - 1]) == "deleted"
    assert len(gw.sql(f"SELECT id FROM delivery WHERE event_id = '{published.event.id}'")) == (
        len(ids) - STORE_TRIES
    )
