"""Migration 0013 (PostgreSQL partitions) on an installation with data, and what the
purge then costs: `python -m bench.migration_0013 [events]` (default 1,000,000).

A database at revision 0012 is filled as `bench/pages.py` fills it (the events and
one delivery each over 30 days, 1.67 attempts a delivery), copied, and:

- the copy is migrated to head: the time of the migration's one transaction is the
  time the three tables are locked (publishing and delivering wait meanwhile);
- the purge with a retention of 25 days is timed on a database partitioned from the
  start and filled alike (it drops the expired days whole), on the migrated copy
  (whose rows are all in its `_before` partitions, purged row by row until they all
  expire) and on the plain tables (rows deleted).

Three scratch databases, dropped at the end; about 15 minutes at 1,000,000 events.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import bench.pages as pages
from bench.harness import PG_URL, asyncpg_dsn
from gateway import migrate
from gateway.db import create_sessionmaker
from gateway.outbound import retention
from gateway.settings import Settings

RETENTION_DAYS = 25.0


def _url(name: str) -> str:
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(PG_URL))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _endpoints(url: str) -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    ids = [f"ep_bench{i:020d}" for i in range(pages.ENDPOINTS)]
    try:
        for endpoint in ids:
            await conn.execute(
                "INSERT INTO endpoint (id, url, secret, headers, disabled, consecutive_failures,"
                " failed_deliveries_in_row, warned_percent, created_at, updated_at)"
                " VALUES ($1, 'http://127.0.0.1:9/', 'unused', '{}', false, 0, 0, 0, now(), now())",
                endpoint,
            )
    finally:
        await conn.close()
    return ids


async def _purge(url: str) -> tuple[int, float]:
    engine = create_async_engine(url)
    try:
        started = time.monotonic()
        count = await retention.purge(create_sessionmaker(engine), RETENTION_DAYS)
        return count, time.monotonic() - started
    finally:
        await engine.dispose()


def _filled(name: str, events: int, revision: str) -> None:
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    migrate.upgrade(Settings(database_url=_url(name)), revision)
    endpoint_ids = asyncio.run(_endpoints(_url(name)))
    pages.EVENTS = events
    started = time.monotonic()
    attempts, _ = asyncio.run(pages._fill(_url(name), endpoint_ids))
    print(
        f"filled at {revision}: {events:,} events and deliveries, {attempts:,} attempts "
        f"over {pages.DAYS} days in {time.monotonic() - started:.0f} s"
    )


def main(events: int) -> None:
    base = f"bench_0013_{uuid.uuid4().hex[:6]}"
    plain, migrated, daily = f"{base}_plain", f"{base}_migrated", f"{base}_daily"
    try:
        _filled(plain, events, "0012")
        asyncio.run(_admin(f'CREATE DATABASE "{migrated}" TEMPLATE "{plain}"'))
        started = time.monotonic()
        migrate.upgrade(Settings(database_url=_url(migrated)))
        print(
            "migration 0012 -> head (one transaction, tables locked): "
            f"{time.monotonic() - started:.1f} s"
        )
        _filled(daily, events, "head")  # stored since partitioned: in daily partitions
        for name, label in (
            (daily, "partitioned, expired days dropped"),
            (migrated, "migrated, rows deleted from the _before partitions"),
            (plain, "plain tables, rows deleted"),
        ):
            count, seconds = asyncio.run(_purge(_url(name)))
            print(
                f"purge, retention {RETENTION_DAYS:g} days, {label}: {count:,} events "
                f"in {seconds:.1f} s"
            )
    finally:
        asyncio.run(
            _admin(
                *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in (daily, migrated, plain))
            )
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
