"""Retention: events older than `GATEWAY_RETENTION_DAYS` go, with their deliveries and attempts.

On PostgreSQL, where event, delivery and attempt are partitioned by day
(`store/partitions.py`), a purge first makes the partitions of the days ahead, then
drops whole the partitions whose rows are all past the cutoff and hold nothing
pending: no row is deleted one by one, so the tables stay flat however much passes
through them. What is left past the cutoff (a partition holding a pending delivery,
the DEFAULT partition, SQLite's tables) is purged row by row: in small batches, each
its own short transaction, so no long lock is held and a purge can be interrupted at
any point. Deliveries still pending are kept whatever their age: nothing that may
yet be sent is thrown away. Then the ordering keys that no event uses any more, and
that no publish has taken for as long, are forgotten: their counters would otherwise
grow with every key ever used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db import SessionMaker
from gateway.ids import first_id_at
from gateway.store import partitions
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Event, OrderingKey, table
from gateway.store.partitions import Partition, in_range
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.retention")

BATCH = 500
_EVENT, _DELIVERY, _ATTEMPT = table(Event), table(Delivery), table(Attempt)
_ORDERING_KEY = table(OrderingKey)


async def purge(
    sessionmaker: SessionMaker,
    retention_days: float,
    progress: Callable[[int], None] = lambda n: None,
    max_batches: int = 1000,
) -> int:
    """Delete expired events (and what hangs off them); returns how many events."""
    cutoff = utcnow() - timedelta(days=retention_days)
    rows_before = cutoff
    total = 0
    async with sessionmaker.kw["bind"].connect() as conn:
        partitioned = await partitions.is_partitioned(conn)
        if partitioned:
            await conn.rollback()
            await partitions.create_ahead(conn)
            total += await drop_expired(conn, cutoff, progress)
            if retention_days >= 1:
                # Days go whole: the rows of a day not all expired yet wait for it. (A
                # retention under a day is purged row by row, as on SQLite.)
                rows_before = partitions.day_of(cutoff)
    # Ids begin with their time: the scan stops at the first id past the cutoff.
    below = first_id_at("evt", int(rows_before.timestamp() * 1000))
    for _ in range(max_batches):
        async with sessionmaker() as session, session.begin():
            if partitioned:
                # Looking up a few hundred ids in each partition, the planner would
                # rather read every small partition whole than use its index.
                await session.execute(text("SET LOCAL enable_seqscan = off"))
            purged = await _purge_batch(session, below, cutoff)
        if not purged:
            break
        total += purged
        progress(purged)
    if total:
        log.info("retention: purged %d events older than %g days", total, retention_days)
    forgotten = await forget_idle_keys(sessionmaker, cutoff)
    if forgotten:
        log.info("retention: forgot %d ordering keys unused since the cutoff", forgotten)
    return total


async def _purge_batch(session: AsyncSession, below: str, cutoff: datetime) -> int:
    """Delete the next `BATCH` expired events with their deliveries and attempts; how many.

    The batch is the events up to its last id that are past the cutoff and hold nothing
    pending, named by subqueries: no id goes through this process. (Their lists, tens
    of thousands of ids a minute under load, were most of what the worker allocated
    for the purge, and its memory grew at every purge.)"""
    still_pending = exists().where(
        _DELIVERY.c.event_id == _EVENT.c.id,
        _DELIVERY.c.status == DeliveryStatus.PENDING,
    )
    expired = (_EVENT.c.id < below, _EVENT.c.created_at < cutoff, ~still_pending)
    batch = select(_EVENT.c.id).where(*expired).order_by(_EVENT.c.id).limit(BATCH).subquery()
    last = await session.scalar(select(func.max(batch.c.id)))
    if last is None:
        return 0
    events = select(_EVENT.c.id).where(_EVENT.c.id <= last, *expired)
    deliveries = select(_DELIVERY.c.id).where(_DELIVERY.c.event_id.in_(events))
    await session.execute(delete(_ATTEMPT).where(_ATTEMPT.c.delivery_id.in_(deliveries)))
    await session.execute(delete(_DELIVERY).where(_DELIVERY.c.event_id.in_(events)))
    result = await session.execute(delete(_EVENT).where(_EVENT.c.id.in_(events)))
    return int(getattr(result, "rowcount", 0) or 0)


async def forget_idle_keys(sessionmaker: SessionMaker, cutoff: datetime) -> int:
    """Delete the ordering keys not taken since `cutoff` of which no event is left: the
    next event of such a key starts its sequence at 1 again, with nothing of the key
    left to be ordered against. One statement, so one scan of the counters.

    A publish taking one of them meanwhile holds its row until it commits; the delete
    then reads the row again before it deletes it, finds it used just now, and keeps it
    (PostgreSQL's READ COMMITTED recheck; SQLite has one writer)."""
    k = _ORDERING_KEY.c
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(_ORDERING_KEY).where(
                k.used_at < cutoff, ~exists().where(_EVENT.c.ordering_key == k.key)
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def drop_expired(
    conn: AsyncConnection, cutoff: datetime, progress: Callable[[int], None] = lambda n: None
) -> int:
    """Drop the partitions wholly before `cutoff` that hold nothing pending: attempts
    first, then deliveries, then events, as each refers to the next. Returns how many
    events went."""
    events = 0
    for name in ("attempt", "delivery", "event"):
        async with conn.begin():
            expired = [
                p
                for p in await partitions.partitions(conn, name)
                if p.upper is not None and p.upper <= cutoff
            ]
            kept_deliveries = await partitions.partitions(conn, "delivery")
        for partition in expired:
            assert partition.upper is not None
            start = partition.lower or partitions.EVER
            if name == "event" and any(p.overlaps(start, partition.upper) for p in kept_deliveries):
                continue  # the day's deliveries are kept (one is pending): so are its events
            try:
                dropped = await _drop(conn, partition)
            except DBAPIError as exc:  # a lock not had in time, a row arrived: next time
                log.warning("retention: %s kept for now: %s", partition.name, exc.orig)
                continue
            if dropped is not None and name == "event":
                events += dropped
                progress(dropped)
    return events


async def _drop(conn: AsyncConnection, partition: Partition) -> int | None:
    """Drop `partition` unless it holds something pending; its rows' count, or None."""
    assert partition.upper is not None
    lower, upper = partition.lower, partition.upper
    name = partition.name
    pending = f"status = '{DeliveryStatus.PENDING}'"
    if partition.table == "attempt":
        # Attempts of a pending delivery, which was made before the partition's end.
        held = (
            f"SELECT 1 FROM delivery d WHERE d.{pending} AND d.id < "
            f"{partitions.bound('delivery', upper)} AND EXISTS "
            f"(SELECT 1 FROM {name} a WHERE a.delivery_id = d.id) LIMIT 1"
        )
        # Nothing refers to attempts.
        others = []
    elif partition.table == "delivery":
        held = f"SELECT 1 FROM {name} WHERE {pending} LIMIT 1"
        # Later attempts of these deliveries, in partitions still kept.
        others = [
            f"DELETE FROM attempt a WHERE {in_range('delivery', 'a.delivery_id', lower, upper)} "
            f"AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = a.delivery_id AND d.{pending})"
        ]
    else:
        events = in_range("event", "event_id", lower, upper)
        held = f"SELECT 1 FROM delivery WHERE {events} AND {pending} LIMIT 1"
        # Deliveries of these events made later (a retry's, a replay's), with their
        # attempts.
        later = f"FROM delivery WHERE {events} AND NOT {pending}"
        others = [
            f"DELETE FROM attempt WHERE delivery_id IN (SELECT id {later})",
            f"DELETE {later}",
        ]
    async with conn.begin():
        if await conn.scalar(text(held)):
            return None
        for statement in others:
            await conn.execute(text(statement))
        count = int(await conn.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
    async with conn.begin():
        await partitions.lock(conn)
        # The lock DETACH takes anyway, taken first: nothing is written to the table
        # while it is checked again (a retry may have made a delivery pending since).
        await conn.execute(text(f"LOCK TABLE {partition.table} IN ACCESS EXCLUSIVE MODE"))
        if await conn.scalar(text(held)):
            return None
        # What referred to the partition since the first pass (an attempt of a delivery
        # retried and ended meanwhile): no foreign key stops the drop for it.
        for statement in others:
            await conn.execute(text(statement))
        await conn.execute(text(f"ALTER TABLE {partition.table} DETACH PARTITION {name}"))
        await conn.execute(text(f"DROP TABLE {name}"))
    log.info("retention: dropped partition %s (%d rows)", name, count)
    return count
