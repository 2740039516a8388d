"""A job's statements by delivery id go through the primary key, however many ids and
however big the day's partition: the leased read, the takeover of late leases and the
claim by id (the events' read shares their condition). PostgreSQL planned `id IN (...)` of a
few hundred ids as a sequential scan of the day's partition, 20-60 ms a read by the
end of a 20-second W3 run.

The plans are asked of the suite's PostgreSQL inside a transaction that is rolled
back: 30,000 deliveries of one event, made in it and seen by nothing else. The same
ids asked for with `id IN (...)` are planned as a sequential scan on that data, which
shows that the test's data is where the hazard is.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.ids import new_id
from gateway.outbound import ledger
from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver

ROWS = 30_000
ASKED = 300


async def _plan(conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> str:
    """The plan PostgreSQL makes for the statement with these parameters (as sent)."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        sent.append((sql, parameters))

    event.listen(conn.sync_connection, "before_cursor_execute", capture)
    try:
        await conn.execute(statement, params)
    finally:
        event.remove(conn.sync_connection, "before_cursor_execute", capture)
    sql, parameters = sent[0]
    rows = await conn.exec_driver_sql("EXPLAIN " + sql, parameters)
    return "\n".join(row[0] for row in rows)


def test_reads_by_id_probe_the_primary_key(gw: Gateway, receiver: Receiver, path: str) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite plans `id IN (...)` by its index; it has no partitions")
    endpoint_id = make_endpoint(gw, receiver.url(path))["id"]

    async def go() -> dict[str, str]:
        engine = create_async_engine(gw.database_url)
        try:
            async with engine.connect() as conn:
                event_id = new_id("evt")
                await conn.execute(
                    text(
                        "INSERT INTO event (id, type, data, created_at) "
                        "VALUES (:id, 'plan.test', '{}', now())"
                    ),
                    {"id": event_id},
                )
                ids = [new_id("dlv") for _ in range(ROWS)]
                await conn.execute(
                    text(
                        "INSERT INTO delivery (id, event_id, endpoint_id, status, attempt_count,"
                        " stalled_claims, created_at, updated_at)"
                        " SELECT i, :event, :endpoint, 'succeeded', 1, 0, now(), now()"
                        " FROM unnest(CAST(:ids AS text[])) AS i"
                    ),
                    {"ids": ids, "event": event_id, "endpoint": endpoint_id},
                )
                asked = ids[ROWS // 2 : ROWS // 2 + ASKED]
                now = datetime.now(UTC)
                by_id = ledger._id_params(asked)
                times = {"due_by": now, "now": now, "lease": now}
                plans = {
                    "leased": await _plan(conn, ledger._LEASED[True], by_id),
                    "take-over": await _plan(
                        conn, ledger._TAKE_OVER[True], {**by_id, "leases": [now], "new_lease": now}
                    ),
                    "claim": await _plan(
                        conn,
                        ledger._CLAIM["id", True],
                        {**ledger._id_params(asked, "keys"), **times},
                    ),
                    "in-list": await _plan(conn, ledger._LEASED[False], {"ids": asked}),
                }
                await conn.rollback()
                return plans
        finally:
            await engine.dispose()

    plans = asyncio.run(go())
    assert "Seq Scan on delivery" in plans["in-list"], plans["in-list"]
    for name in ("leased", "take-over", "claim"):
        assert "Seq Scan on delivery" not in plans[name], plans[name]
        assert "Index Scan" in plans[name], plans[name]
    # The ids' range prunes the partitions at planning: only today's is read.
    assert plans["leased"].count(" on delivery_") == 1, plans["leased"]
