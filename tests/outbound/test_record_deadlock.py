"""A worker's record of attempts that PostgreSQL aborts to end a deadlock (an endpoint's
delete cascading to the same deliveries, in another order) runs again: the attempts
are recorded, not sent a second time by a later job. SQLite has one writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db import create_sessionmaker
from gateway.outbound import ledger
from tests.support.deadlock import deadlock, deadlocks, two_deliveries
from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver, wait_until


def test_a_record_that_a_deadlock_aborts_runs_again(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite has one writer: no deadlock")
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    now = datetime.now(UTC)
    # Leased far ahead, as by a job in flight: the sweeper leaves them alone.
    lease = now + timedelta(hours=1)
    event, first, second = two_deliveries(gw, endpoint, "pending", lease)
    # The record updates `first`, then `second`.
    deliveries: list[dict[str, Any]] = [
        {
            "b_id": delivery,
            "b_lease": lease,
            "v_status": "succeeded",
            "v_attempt_count": 1,
            "v_next_attempt_at": None,
            "v_dispatched_at": now,
            "v_rate_slot_at": None,
            "v_last_status_code": 200,
            "v_updated_at": now,
        }
        for delivery in (first, second)
    ]
    attempts = [
        {
            "delivery_id": delivery,
            "attempt": 1,
            "started_at": now,
            "status_code": 200,
            "duration_ms": 3,
            "response_body": "",
            "error": None,
            "endpoint_id": endpoint,
            "retried": None,
        }
        for delivery in (first, second)
    ]
    before = deadlocks(gw)

    async def go() -> None:
        engine = create_async_engine(gw.database_url)
        # All that recording needs of a worker's context.
        ctx: Any = SimpleNamespace(sessionmaker=create_sessionmaker(engine))
        try:
            record = ledger._write_records(ctx, deliveries, attempts)
            await deadlock(gw, second, first, "UPDATE delivery", record)
        finally:
            await engine.dispose()

    asyncio.run(go())
    assert gw.sql(
        f"SELECT id, status, locked_until FROM delivery WHERE event_id = '{event}' ORDER BY id"
    ) == [(first, "succeeded", None), (second, "succeeded", None)]
    assert gw.sql(
        f"SELECT delivery_id FROM attempt WHERE endpoint_id = '{endpoint}' ORDER BY delivery_id"
    ) == [(first,), (second,)]
    # There was a deadlock, and the test's side came through it: the record was aborted.
    wait_until(lambda: deadlocks(gw) > before, what="the deadlock in the statistics")
