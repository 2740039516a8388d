"""Pages: the console's pages and the stats routes with 1,000,000 attempts stored.

A PostgreSQL gateway (no worker: nothing is delivered meanwhile) gets 50 endpoints
of 5 tenants through the API, then the database is filled in SQL, set-wise
(`INSERT ... SELECT generate_series`): 600,000 events of the last 30 days (the
default retention; `PAGES_DAYS` in the environment to change it), one
delivery each, and 1,000,000 attempts (80% of deliveries succeed at once; the
others fail once or twice, with a 5xx or a timeout, and a third of those then
succeed). Then VACUUM ANALYZE, as autovacuum would have done on a table filled
this way over days.

Each page is requested `REQUESTS` times in a row by a client signed in to the
console (the stats routes with the API key), after a few warm-up requests; p95 of
the wall time, target < 200 ms. A page that does not answer 200 is listed as
missing, not measured.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.context import Run
from bench.harness import Stack, asyncpg_dsn
from bench.loadgen import percentile
from bench.report import Row
from gateway.store import partitions
from gateway.timeutil import utcnow

ENDPOINTS = 50
TENANTS = 5
EVENTS = 600_000
# GATEWAY_RETENTION_DAYS' default: how a gateway with default settings holds 1M
# attempts (33,000 a day). `PAGES_DAYS=7` packs them denser (143,000 a day).
DAYS = int(os.environ.get("PAGES_DAYS", "30"))
WARMUP = 3
REQUESTS = 40
TARGET_MS = 200.0


# The first 10 characters of a ULID made at `t`: its millisecond, in Crockford base32,
# so that the ids sort by time and fall in their day's partition, as the gateway's do.
_ULID_TIME = (
    "CREATE FUNCTION pg_temp.ulid_time(t timestamp) RETURNS text IMMUTABLE LANGUAGE sql "
    "AS $$ SELECT "
    + " || ".join(
        "substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', ((floor(extract(epoch FROM t) * 1000)::bigint"
        f" >> {45 - 5 * i}) & 31)::int + 1, 1)"
        for i in range(10)
    )
    + " $$"
)


def _fill_sql(endpoint_ids: list[str], now: datetime) -> list[str]:
    ids = "(ARRAY[" + ", ".join(f"'{i}'" for i in endpoint_ids) + "])"
    span = f"interval '{DAYS} days'"
    # g = 1 is the newest. One `now` for all the statements: a delivery's id is its
    # event's, with its own prefix.
    at = f"(TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}' - (g * {span} / {EVENTS}))"
    ulid = f"pg_temp.ulid_time({at}) || lpad(g::text, 16, '0')"
    return [
        _ULID_TIME,
        f"""INSERT INTO event (id, type, tenant_id, data, created_at)
        SELECT 'evt_' || {ulid},
               (ARRAY['order.created', 'order.paid', 'invoice.sent'])[g % 3 + 1],
               'tenant-' || (g % {ENDPOINTS} % {TENANTS}), '{{"n": ' || g || '}}', {at}
        FROM generate_series(1, {EVENTS}) g""",
        f"""INSERT INTO delivery (id, event_id, event_type, endpoint_id, status, attempt_count,
               next_attempt_at, dispatched_at, stalled_claims, last_status_code,
               created_at, updated_at)
        SELECT 'dlv_' || {ulid}, 'evt_' || {ulid},
               (ARRAY['order.created', 'order.paid', 'invoice.sent'])[g % 3 + 1],
               {ids}[g % {ENDPOINTS} + 1],
               CASE WHEN g % 3 <> 0 OR g % 6 = 0 THEN 'succeeded' ELSE 'failed' END,
               CASE WHEN g % 3 <> 0 THEN 1 ELSE 3 END,
               NULL, {at}, 0,
               CASE WHEN g % 3 <> 0 OR g % 6 = 0 THEN 200 ELSE NULL END, {at}, {at}
        FROM generate_series(1, {EVENTS}) g""",
        # First attempts of every delivery: 600,000.
        f"""INSERT INTO attempt (delivery_id, attempt, started_at, status_code, duration_ms,
               response_body, error, endpoint_id, retried)
        SELECT 'dlv_' || {ulid}, 1, {at},
               CASE WHEN g % 3 <> 0 THEN 200 ELSE 503 END,
               5 + (random() * random() * 900)::int,
               CASE WHEN g % 3 <> 0 THEN '{{"ok":true}}' ELSE 'unavailable' END, NULL,
               {ids}[g % {ENDPOINTS} + 1],
               CASE WHEN g % 3 <> 0 THEN NULL ELSE true END
        FROM generate_series(1, {EVENTS}) g""",
        # Attempts 2 and 3 of the deliveries whose first failed: 400,000.
        f"""INSERT INTO attempt (delivery_id, attempt, started_at, status_code, duration_ms,
               response_body, error, endpoint_id, retried)
        SELECT 'dlv_' || {ulid}, a,
               {at} + a * interval '30 seconds',
               CASE WHEN a = 2 THEN 500 WHEN g % 6 = 0 THEN 200 ELSE NULL END,
               CASE WHEN a = 3 AND g % 6 <> 0 THEN 10000
                    ELSE 5 + (random() * random() * 900)::int END,
               CASE WHEN a = 2 THEN 'error' WHEN g % 6 = 0 THEN 'ok' ELSE NULL END,
               CASE WHEN a = 3 AND g % 6 <> 0 THEN 'timed out after 10s' ELSE NULL END,
               {ids}[g % {ENDPOINTS} + 1],
               CASE WHEN a = 2 THEN true WHEN g % 6 = 0 THEN NULL ELSE false END
        FROM generate_series(3, {EVENTS}, 3) g CROSS JOIN generate_series(2, 3) a""",
        "ANALYZE",
    ]


async def _fill(db_url: str, endpoint_ids: list[str]) -> tuple[int, str]:
    """Fills the database; the number of attempts, and an event of the 12th newest."""
    import asyncpg

    now = utcnow()
    engine = create_async_engine(db_url)
    try:  # the days filled need their partitions (PostgreSQL makes a week ahead)
        async with engine.connect() as partitioned:
            if await partitions.is_partitioned(partitioned):
                await partitioned.rollback()
                await partitions.create_ahead(partitioned, since=now - timedelta(days=DAYS))
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        for statement in _fill_sql(endpoint_ids, now):
            await conn.execute(statement)
        # Outside a transaction: the visibility map lets the figures read the index alone.
        await conn.execute("VACUUM ANALYZE attempt")
        attempts = int(await conn.fetchval("SELECT count(*) FROM attempt"))
        event = str(await conn.fetchval("SELECT id FROM event ORDER BY id DESC OFFSET 12 LIMIT 1"))
        return attempts, event
    finally:
        await conn.close()


def _sign_in(base: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise RuntimeError(f"no sign-in form at /console/login ({form.status_code})")
    answer = client.post(
        "/console/login", data={"api_key": key, "csrf_token": token.group(1), "next": "/console"}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in refused: {answer.status_code}")
    return client


def _time(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, list[float]]:
    status = 0
    for _ in range(WARMUP):
        status = client.get(path, headers=headers).status_code
        if status != 200:
            return status, []
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            return response.status_code, []
    return 200, times


def run_pages(run: Run) -> list[Row]:
    with Stack(run.dir, "pages") as stack:
        endpoint_ids = [
            stack.admin(
                "POST",
                "/v1/endpoints",
                json={
                    "url": f"{run.receiver.base}/pages/e{i}",
                    "tenant_id": f"tenant-{i % TENANTS}",
                    "description": f"bench endpoint {i}",
                },
            )["id"]
            for i in range(ENDPOINTS)
        ]
        started = time.monotonic()
        attempts, event = asyncio.run(_fill(stack.db_url, endpoint_ids))
        fill_seconds = time.monotonic() - started
        print(f"  filled: {attempts:,} attempts, {EVENTS:,} events in {fill_seconds:.0f}s")
        endpoint = endpoint_ids[7]
        pages = [
            ("/console", "console"),
            ("/console/endpoints", "console"),
            (f"/console/endpoints/{endpoint}", "console"),
            ("/console/events", "console"),
            ("/console/events?type=order.paid&delivery_status=failed", "console"),
            (f"/console/events/{event}", "console"),
            (f"/console/deliveries/{event.replace('evt_', 'dlv_')}", "console"),
            ("/console/events/retry-failed", "console"),
            ("/console/events/retry-failed?type=order.paid", "console"),
            ("/v1/stats", "api"),
            ("/v1/stats?bucket=minute", "api"),
            (f"/v1/endpoints/{endpoint}/stats", "api"),
            (f"/v1/endpoints/{endpoint}/stats?bucket=minute", "api"),
        ]
        rows: list[Row] = []
        missing: list[str] = []
        details: dict[str, Any] = {"attempts": attempts, "fill_seconds": round(fill_seconds, 1)}
        console = _sign_in(stack.api, stack.api_key)
        try:
            for path, kind in pages:
                headers = stack.auth if kind == "api" else {}
                status, times = _time(console, path, headers)
                shown = re.sub(r"(ep|evt|dlv)_\w+", r"\1_…", path)
                if status != 200:
                    missing.append(f"{shown} ({status})")
                    print(f"  GET {shown}: {status}, not measured")
                    continue
                p50, p95 = percentile(times, 50), percentile(times, 95)
                print(f"  GET {shown}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
                details[path] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
                rows.append(
                    Row(
                        f"Pages: GET {shown} p95, 1M attempts over {DAYS} days",
                        p95,
                        unit="ms",
                        target=("<", TARGET_MS),
                        on="gateway",
                        note=f"p50 {p50:.0f} ms, {REQUESTS} requests in a row",
                    )
                )
        finally:
            console.close()
        details["missing"] = missing
        run.details["pages"] = details
    if missing:
        rows.append(Row(f"Pages not measured (not 200): {', '.join(missing)}"[:150], None))
    return rows
