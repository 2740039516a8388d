"""Retention: expired events go with their deliveries and attempts, in batches; pending stays."""

from __future__ import annotations

import asyncio

from gateway.db import create_engine, create_sessionmaker
from gateway.outbound import retention
from gateway.settings import Settings
from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply


async def _purge(database_url: str, days: float) -> int:
    engine = create_engine(Settings(database_url=database_url))
    try:
        return await retention.purge(create_sessionmaker(engine), days)
    finally:
        await engine.dispose()


def test_expired_events_are_purged_with_their_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path))
    receiver.set(f"{path}/slow", Reply(500))
    old = [publish(gw, "old", {"i": i}) for i in range(3)]
    recent = publish(gw, "recent")
    for event in [*old, recent]:
        [delivery] = deliveries_of(gw, event["id"])
        wait_delivery(gw, delivery["id"], "succeeded")
    # One old event still has a delivery pending: it must survive.
    stuck_endpoint = make_endpoint(gw, receiver.url(f"{path}/slow"), event_types=["stuck"])
    stuck = publish(gw, "stuck")
    old_ids = [e["id"] for e in [*old, stuck]]
    gw.sql(
        "UPDATE event SET created_at = '2000-01-01 00:00:00' WHERE id IN ("
        + ", ".join(f"'{i}'" for i in old_ids)
        + ")"
    )
    retention.BATCH = 2  # several batches
    try:
        purged = asyncio.run(_purge(gw.database_url, 30))
    finally:
        retention.BATCH = 500
    assert purged == 3
    remaining = {row[0] for row in gw.sql("SELECT id FROM event")}
    assert remaining == {recent["id"], stuck["id"]}
    kept = gw.sql("SELECT count(*) FROM delivery")[0][0]
    assert kept == 3  # the recent one, and both of the event still pending
    orphans = gw.sql(
        "SELECT count(*) FROM attempt WHERE delivery_id NOT IN (SELECT id FROM delivery)"
    )[0][0]
    assert orphans == 0
    assert gw.api.get(f"/v1/events/{old[0]['id']}").status_code == 404
    assert stuck_endpoint["id"]


def test_purge_command(gw: Gateway, receiver: Receiver, path: str) -> None:
    import json as json_module

    make_endpoint(gw, receiver.url(path))
    event = publish(gw, "old")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    gw.sql(f"UPDATE event SET created_at = '2000-01-01 00:00:00' WHERE id = '{event['id']}'")
    result = gw.run_cli("purge", "--json")
    assert result.returncode == 0, result.stderr
    assert json_module.loads(result.stdout) == {"purged": 1}
    assert gw.api.get(f"/v1/events/{event['id']}").status_code == 404
