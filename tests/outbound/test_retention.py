"""Retention: expired events go with their deliveries and attempts, in batches; pending stays.
On PostgreSQL, days go whole: the purge makes the days ahead, and drops the expired days
that hold nothing pending (a day with a pending delivery stays)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.db import create_engine, create_sessionmaker
from gateway.ids import first_id_at
from gateway.outbound import retention
from gateway.settings import Settings
from gateway.store.partitions import AHEAD_DAYS, PREFIXES, create_day_sql, day_of, partition_name
from gateway.timeutil import utcnow
from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver

LONG_AGO = datetime(2000, 1, 1, 12, tzinfo=UTC)


async def _purge(database_url: str, days: float) -> int:
    engine = create_engine(Settings(database_url=database_url))
    try:
        return await retention.purge(create_sessionmaker(engine), days)
    finally:
        await engine.dispose()


def _id(prefix: str, at: datetime, n: int) -> str:
    return first_id_at(prefix, int(at.timestamp() * 1000))[:-3] + f"{n:03d}"


def _store(gw: Gateway, endpoint: str, at: datetime, n: int, status: str) -> tuple[str, str]:
    """An event of `at`, its delivery in `status` and one attempt; their ids."""
    event, delivery = _id("evt", at, n), _id("dlv", at, n)
    later = "2100-01-01" if status == "pending" else f"{at:%Y-%m-%d}"  # never swept
    gw.sql(
        f"INSERT INTO event (id, type, data, created_at) VALUES ('{event}', 'old', '{{}}', "
        f"'{at:%Y-%m-%d %H:%M:%S}+00')"
    )
    gw.sql(
        "INSERT INTO delivery (id, event_id, endpoint_id, status, attempt_count, "
        "stalled_claims, next_attempt_at, created_at, updated_at) VALUES "
        f"('{delivery}', '{event}', '{endpoint}', '{status}', 1, 0, '{later}', "
        f"'{at:%Y-%m-%d}', '{at:%Y-%m-%d}')"
    )
    _attempt(gw, delivery, 1, at)
    return event, delivery


def _attempt(gw: Gateway, delivery: str, n: int, at: datetime) -> None:
    gw.sql(
        "INSERT INTO attempt (delivery_id, attempt, started_at, status_code, duration_ms) "
        f"VALUES ('{delivery}', {n}, '{at:%Y-%m-%d %H:%M:%S}+00', 200, 5)"
    )


def _tables(gw: Gateway) -> set[str]:
    return {str(row[0]) for row in gw.sql("SELECT relname FROM pg_class WHERE relkind = 'r'")}


def test_expired_events_are_purged_with_their_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    recent = publish(gw, "recent")
    [delivery] = deliveries_of(gw, recent["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    # Stored long ago (on PostgreSQL: in the DEFAULT partition, no day has one).
    old = [_store(gw, endpoint, LONG_AGO, n, "succeeded")[0] for n in range(3)]
    # One old event still has a delivery pending: it must survive.
    stuck, _ = _store(gw, endpoint, LONG_AGO, 3, "pending")
    retention.BATCH = 2  # several batches
    try:
        purged = asyncio.run(_purge(gw.database_url, 30))
    finally:
        retention.BATCH = 500
    assert purged == 3
    remaining = {row[0] for row in gw.sql("SELECT id FROM event")}
    assert remaining == {recent["id"], stuck}
    assert gw.sql("SELECT count(*) FROM delivery")[0][0] == 2
    orphans = gw.sql(
        "SELECT count(*) FROM attempt WHERE delivery_id NOT IN (SELECT id FROM delivery)"
    )[0][0]
    assert orphans == 0
    assert gw.api.get(f"/v1/events/{old[0]}").status_code == 404


def test_purge_command(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    event, _ = _store(gw, endpoint, LONG_AGO, 1, "succeeded")
    result = gw.run_cli("purge", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"purged": 1}
    assert gw.api.get(f"/v1/events/{event}").status_code == 404


def test_purge_drops_expired_days_and_keeps_a_day_with_a_pending_delivery(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("SQLite has no partitions")
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    today = day_of(utcnow())
    gone_day, kept_day = today - timedelta(days=40), today - timedelta(days=39)
    for day in (gone_day, kept_day):
        for table in PREFIXES:
            for statement in create_day_sql(table, day):
                gw.sql(statement)
    noon = timedelta(hours=12)
    gone_event, gone_delivery = _store(gw, endpoint, gone_day + noon, 1, "succeeded")
    # What refers to the expired day from days still kept: a later attempt, a replay's
    # delivery with its attempt. They go with it (no foreign key takes them along).
    _attempt(gw, gone_delivery, 2, kept_day + noon)
    replay = _id("dlv", utcnow(), 1)
    gw.sql(
        "INSERT INTO delivery (id, event_id, endpoint_id, status, attempt_count, "
        f"stalled_claims, created_at, updated_at) VALUES ('{replay}', '{gone_event}', "
        f"'{endpoint}', 'succeeded', 0, 0, now(), now())"
    )
    _attempt(gw, replay, 1, utcnow())
    kept_event, kept_delivery = _store(gw, endpoint, kept_day + noon, 1, "pending")
    # The cron makes what is missing ahead.
    farthest = today + timedelta(days=AHEAD_DAYS)
    gw.sql(f"DROP TABLE {partition_name('attempt', farthest)}")

    assert asyncio.run(_purge(gw.database_url, 30)) == 1

    tables = _tables(gw)
    for table in PREFIXES:
        assert partition_name(table, gone_day) not in tables
        assert partition_name(table, kept_day) in tables
        assert partition_name(table, farthest) in tables
    assert gw.sql("SELECT id FROM event") == [(kept_event,)]
    assert gw.sql("SELECT id FROM delivery") == [(kept_delivery,)]
    assert gw.sql("SELECT delivery_id, attempt FROM attempt") == [(kept_delivery, 1)]

    # Once nothing is pending, the day goes too.
    gw.sql(f"UPDATE delivery SET status = 'failed' WHERE id = '{kept_delivery}'")
    assert asyncio.run(_purge(gw.database_url, 30)) == 1
    tables = _tables(gw)
    assert not {partition_name(t, kept_day) for t in PREFIXES} & tables
    assert gw.sql("SELECT count(*) FROM event") == [(0,)]


def test_purge_forgets_ordering_keys_that_nothing_uses_any_more(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))["id"]
    first = publish(gw, "recent", ordering_key="recent")
    assert first["sequence"] == 1
    long_ago = f"'{LONG_AGO:%Y-%m-%d %H:%M:%S}+00'"
    # Taken long ago, its events all gone: forgotten.
    gw.sql(
        "INSERT INTO ordering_key (key, last_sequence, used_at) "
        f"VALUES ('idle-gone', 7, {long_ago})"
    )
    # Taken long ago, but one of its events is still pending: kept, with its count.
    gw.sql(
        "INSERT INTO ordering_key (key, last_sequence, used_at) "
        f"VALUES ('idle-kept', 3, {long_ago})"
    )
    stuck, _ = _store(gw, endpoint, LONG_AGO, 1, "pending")
    gw.sql(f"UPDATE event SET ordering_key = 'idle-kept', sequence = 3 WHERE id = '{stuck}'")

    asyncio.run(_purge(gw.database_url, 30))

    kept = {row[0]: row[1] for row in gw.sql("SELECT key, last_sequence FROM ordering_key")}
    assert kept == {"recent": 1, "idle-kept": 3}
    # A forgotten key starts again at 1; the others go on from where they were.
    assert publish(gw, "again", ordering_key="idle-gone")["sequence"] == 1
    assert publish(gw, "again", ordering_key="idle-kept")["sequence"] == 4
    assert publish(gw, "again", ordering_key="recent")["sequence"] == 2
