"""W5, soak: 200,000 deliveries (10 endpoints x 20,000 events) published open loop at a
rate the gateway holds, with the workers running; worker and API memory after
warm-up and at the end, and what the run left in Redis.

The rate is 60% of W1's capacity unless `--soak-rate` says otherwise. RSS comes
from /proc (VmRSS), sampled every second: "warm-up" is the first sample after 10%
of the deliveries arrived, "end" the one after the last did.

Redis, after everything drained and arq had a few seconds to clean up: any key
of the run's work still there (a job, in-progress or retry key naming an event
or a delivery, a job result, a queued event job) is left behind. arq's own
bookkeeping (the health-check key, the sweeper cron's next job and its
unique-run marker) is listed apart, again after the workers stopped, and
`used_memory` is compared with its value before the workers started.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from bench import ledger, live, w1_fanout
from bench.context import Run, Sizes
from bench.harness import Stack, asyncpg_dsn, redis_client
from bench.procs import cpu_seconds, rss_bytes
from bench.report import Row

ENDPOINTS = 10
LOAD = 0.6
WARM_SHARE = 0.1
RSS_GROWTH_LIMIT = 1.10
CLEANUP_SECONDS = 3.0
_ID = re.compile(r"(evt|dlv|ep|src|gateway_bench)_[0-9A-Za-z]+|\d+")


def key_patterns(keys: list[str]) -> dict[str, int]:
    """`arq:job:evt:evt_01J...` -> `arq:job:evt:evt_*`: what kinds of keys, how many."""
    return dict(
        Counter(_ID.sub(lambda m: (m.group(1) + "_*") if m.group(1) else "N", k) for k in keys)
    )


def _listing(patterns: dict[str, int]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in patterns.items())


_WORK = re.compile(rb"(evt|dlv)_|^arq:result:")


def work_left(client: redis.Redis, keys: set[bytes], queue: str) -> tuple[list[str], list[str]]:
    """The keys (and queued jobs) of the run's work, and arq's own bookkeeping."""
    work = [k.decode() for k in keys if _WORK.search(k)]
    own = [k.decode() for k in keys if not _WORK.search(k)]
    queued: list[bytes] = client.zrange(queue, 0, -1)  # type: ignore[assignment]
    work += [f"{queue} member {m.decode()}" for m in queued if _WORK.search(m)]
    return work, own


def _redis_state(client: redis.Redis) -> dict[str, int]:
    memory: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    return {"used_memory": int(memory["used_memory"]), "dbsize": int(client.dbsize())}  # type: ignore[arg-type]


def _wait_delivered(
    stack: Stack, sample: Callable[[], dict[str, Any]], expected: int
) -> dict[str, Any]:
    """Sample every second until `expected` deliveries arrived (or 30 s pass without one)."""
    deadline, last, last_change = time.monotonic() + 120 + expected / 200, -1, time.monotonic()
    while (s := sample())["delivered"] < expected and time.monotonic() < deadline:
        if s["delivered"] != last:
            last, last_change = s["delivered"], time.monotonic()
        elif time.monotonic() - last_change > 30:
            break
        stack.check_alive()
        time.sleep(1)
    return sample()


def run_w5(run: Run) -> list[Row]:
    total = run.sizes.soak_deliveries
    events = max(1, total // ENDPOINTS)
    rate = run.soak_rate or LOAD * w1_fanout.capacity(run) / ENDPOINTS
    group = "/w5/soak"
    arrivals = run.receiver.arrivals
    client = redis_client()
    with Stack(run.dir, "w5") as stack:
        stack.endpoints(
            [run.receiver.url("w5", "soak", f"e{i}") for i in range(ENDPOINTS)], "w5.soak"
        )
        redis_before = _redis_state(client)
        workers = stack.start_workers(run.workers, wait=True)
        assert stack.server is not None
        api_pid = stack.server.pid
        samples: list[dict[str, Any]] = []

        def sample() -> dict[str, Any]:
            s = {
                "t": round(time.time(), 3),
                "delivered": arrivals.count(group),
                "worker_rss": sum(rss_bytes(w.pid) for w in workers),
                "api_rss": rss_bytes(api_pid),
            }
            samples.append(s)
            return s

        print(
            f"W5 soak: {events} events x {ENDPOINTS} endpoints at {rate:,.1f} events/s "
            f"(~{events / rate:,.0f} s)"
        )
        published = live.publish(stack, "w5.soak", rate, events, sample=sample)
        expected = published.accepted * ENDPOINTS
        end = _wait_delivered(stack, sample, expected)
        warm = next((s for s in samples if s["delivered"] >= WARM_SHARE * total), end)
        lat = live.latencies(arrivals, [group], published.due)
        time.sleep(CLEANUP_SECONDS)
        left, own = work_left(client, stack.our_redis_keys(), stack.queue)
        stack.stop_workers()
        _left_stopped, own_stopped = work_left(client, stack.our_redis_keys(), stack.queue)
        redis_after = _redis_state(client)
        patterns, own_patterns = key_patterns(left), key_patterns(own)
        book = ledger.check(
            "W5",
            stack.db_url,
            ["w5.soak"],
            published.accepted,
            ENDPOINTS,
            arrivals,
            run.receiver.base,
            published.unanswered,
        )
    print(
        f"    RSS worker {warm['worker_rss'] / 1e6:.1f} -> {end['worker_rss'] / 1e6:.1f} MB, "
        f"API {warm['api_rss'] / 1e6:.1f} -> {end['api_rss'] / 1e6:.1f} MB; Redis keys left: "
        f"{patterns or 'none'}"
    )
    run.details["w5"] = {
        "events_per_s": rate,
        "publish": published.load.summary(),
        "every_delivery_p99_ms": lat.every_ms(99),
        "delivered": end["delivered"],
        "expected": expected,
        "warm": warm,
        "end": end,
        "samples": samples,
        "redis_before": redis_before,
        "redis_after": redis_after,
        "redis_work_left": patterns,
        "redis_arq_own": own_patterns,
        "redis_arq_own_after_workers_stopped": key_patterns(own_stopped),
        "ledger": book.summary(),
    }
    void = not book.ok
    note = (
        f"{end['delivered']:,} deliveries offered at {rate * ENDPOINTS:,.0f}/s, "
        f"delivery p99 {lat.every_ms(99):,.0f} ms"
    )
    if end["delivered"] < expected:
        note = f"only {end['delivered']:,}/{expected:,} deliveries arrived"
    rows = [
        Row(
            "W5 soak: worker RSS, end vs warm-up",
            end["worker_rss"],
            warm["worker_rss"],
            "warm-up",
            unit="MB",
            target=("<", RSS_GROWTH_LIMIT),
            void=void,
            note=note,
        ),
        Row(
            "W5 soak: API RSS, end vs warm-up",
            end["api_rss"],
            warm["api_rss"],
            "warm-up",
            unit="MB",
            target=("<", RSS_GROWTH_LIMIT),
            void=void,
        ),
        Row(
            "W5 soak: Redis keys of the run's work left",
            len(left),
            unit="keys",
            target=("<", 1),
            on="gateway",
            void=void,
            note="; ".join(
                filter(
                    None,
                    [
                        _listing(patterns),
                        "arq's own: " + (_listing(own_patterns) or "none"),
                        "after stopping the workers: "
                        + (_listing(key_patterns(own_stopped)) or "none"),
                    ],
                )
            )[:200],
        ),
        Row(
            "W5 soak: Redis used_memory after vs before",
            redis_after["used_memory"],
            redis_before["used_memory"],
            "before",
            unit="MB",
            void=void,
            note="whole Redis server: other users move it too",
        ),
    ]
    return rows


# The purge soak (section `w5-purge`, not part of `all`: ~25 minutes at 1,000,000
# deliveries). W5 with retention purging as it goes: events kept 0.001 days (86 s),
# the purge every minute. Figures at the end of the first quarter of the deliveries
# against the end: the memory of the processes, the size in PostgreSQL of what the
# purge keeps in check, Redis' memory, and the drain rate of each quarter. The tables
# grow for retention + a purge interval + a vacuum interval (rows deleted but not yet
# vacuumed take room too), then level off: measured, 130 MB at the first quarter's end
# (5.2 minutes in), 137 MB at 6 minutes, 137-139.5 MB from there to the end (21 min).
# At 0.002 days they leveled off later, and "end vs first quarter" (1.10-1.12) was
# mostly the climb.
PURGE_SETTINGS = {"GATEWAY_RETENTION_DAYS": "0.001", "GATEWAY_PURGE_INTERVAL_MINUTES": "1"}
# So its first quarter ends past that level-off, the purge soak runs at least this
# long unless `--soak-rate` says otherwise: at 60% of a faster W1 (2,575 deliveries/s)
# 1,000,000 deliveries took 6.5 minutes, its first quarter ended 97 s in, and the
# tables doubled after it (1.94) while the purge kept them as level as before; in 21
# minutes the first quarter ended at 5.3 and the end was 1.10 of it.
PURGE_SOAK_SECONDS = 1500.0
FLAT_LIMIT = 1.10
DRAIN_FLOOR = 0.90
STORE_EVERY = 5.0  # seconds between samples of PostgreSQL's sizes and Redis' memory
VACUUM_EVERY = 60.0  # seconds, where the server's autovacuum is off (see _StoreSampler)
_TABLES = ("event", "delivery", "attempt")
# The table and its partitions, if it has any (the tree of a plain table is empty).
_TREE = (
    "(SELECT relid FROM pg_partition_tree($1::text::regclass) "
    "UNION SELECT $1::text::regclass) AS tree"
)
# Table, indexes and TOAST, summed over partitions (a partitioned parent has none).
_SIZE_SQL = f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM {_TREE}"
# Live and dead rows, summed the same way: dead ones are what vacuum has yet to
# reclaim, so they tell a purge that falls behind from a vacuum that does.
_ROWS_SQL = (
    "SELECT coalesce(sum(s.n_live_tup), 0), coalesce(sum(s.n_dead_tup), 0) "
    f"FROM {_TREE} JOIN pg_stat_user_tables s ON s.relid = tree.relid"
)
_LEFT_SQL = (
    "SELECT (SELECT count(*) FROM event), "
    "(SELECT count(*) FROM delivery WHERE status IN ('pending', 'failed'))"
)


async def _table_state(conn: Any) -> dict[str, int]:
    """Bytes of each table, and the live and dead rows of all three."""
    state = {f"pg_{t}": int(await conn.fetchval(_SIZE_SQL, t)) for t in _TABLES}
    state["pg_live_rows"] = state["pg_dead_rows"] = 0
    for t in _TABLES:
        live, dead = await conn.fetchrow(_ROWS_SQL, t) or (0, 0)
        state["pg_live_rows"] += int(live)
        state["pg_dead_rows"] += int(dead)
    return state


async def _left(db_url: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        row = await conn.fetchrow(_LEFT_SQL)
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


class _StoreSampler(threading.Thread):
    """PostgreSQL's sizes and Redis' used_memory every few seconds, in a thread of its
    own: the publisher's loop calls the 1 s sample and must not wait on a query.

    The thread keeps one event loop and one connection: `asyncio.run` here would list
    every task of the process at its end, racing the publisher's loop (which makes
    thousands), and fail. Where the server runs without autovacuum (a test server), it
    also vacuums the three tables every minute in autovacuum's place: without it no
    deleted or updated row's space is ever reused, and no table can level off.
    """

    def __init__(self, db_url: str) -> None:
        super().__init__(name="w5-store-sampler", daemon=True)
        self.db_url = db_url
        self.samples: list[dict[str, Any]] = []
        self.vacuums = 0
        self.autovacuum = True
        self._done = threading.Event()

    def run(self) -> None:
        import asyncpg

        loop = asyncio.new_event_loop()
        client = redis_client()
        conn = loop.run_until_complete(asyncpg.connect(asyncpg_dsn(self.db_url)))
        try:
            self.autovacuum = loop.run_until_complete(conn.fetchval("SHOW autovacuum")) == "on"
            next_vacuum = time.monotonic() + VACUUM_EVERY
            while not self._done.is_set():
                if not self.autovacuum and time.monotonic() >= next_vacuum:
                    loop.run_until_complete(conn.execute(f"VACUUM {', '.join(_TABLES)}"))
                    self.vacuums += 1
                    next_vacuum = time.monotonic() + VACUUM_EVERY
                state = loop.run_until_complete(_table_state(conn))
                memory: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
                self.samples.append(
                    {
                        "t": round(time.time(), 3),
                        "pg_bytes": sum(state[f"pg_{t}"] for t in _TABLES),
                        **state,
                        "redis_used_memory": int(memory["used_memory"]),
                    }
                )
                self._done.wait(STORE_EVERY)
        finally:
            loop.run_until_complete(conn.close())
            loop.close()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=120)  # a VACUUM under way finishes first

    def at(self, t: float) -> dict[str, Any]:
        """The last sample taken by time `t` (the first one if none was)."""
        before = [s for s in self.samples if s["t"] <= t]
        return before[-1] if before else self.samples[0]


def quarters(samples: list[dict[str, Any]], expected: int) -> list[dict[str, Any]]:
    """The sample at which each quarter of the deliveries had arrived (the last is the end),
    with the quarter's drain rate and worker CPU per delivery."""
    out, previous = [], samples[0]
    for k in (1, 2, 3, 4):
        boundary = (
            next((s for s in samples if s["delivered"] >= k * expected / 4), samples[-1])
            if k < 4
            else samples[-1]
        )
        seconds = max(1e-3, boundary["t"] - previous["t"])
        delivered = boundary["delivered"] - previous["delivered"]
        cpu = boundary["worker_cpu"] - previous["worker_cpu"]
        out.append(
            {
                **boundary,
                "drain_per_s": delivered / seconds,
                "worker_cpu_ms_per_delivery": 1000 * cpu / delivered if delivered else None,
            }
        )
        previous = boundary
    return out


def purge_soak_rate(sizes: Sizes, capacity: float) -> float:
    """Events/s for the purge soak: 60% of W1's `capacity` (deliveries/s), or slower
    where that would end it within `PURGE_SOAK_SECONDS` (full sizes only)."""
    rate = LOAD * capacity / ENDPOINTS
    if sizes.long_soak_full:
        rate = min(rate, sizes.long_soak_deliveries / ENDPOINTS / PURGE_SOAK_SECONDS)
    return rate


def run_w5_purge(run: Run) -> list[Row]:
    total = run.sizes.long_soak_deliveries
    events = max(1, total // ENDPOINTS)
    rate = run.soak_rate or purge_soak_rate(run.sizes, w1_fanout.capacity(run))
    group = "/w5p/soak"
    arrivals = run.receiver.arrivals
    with Stack(run.dir, "w5-purge", settings=PURGE_SETTINGS) as stack:
        stack.endpoints(
            [run.receiver.url("w5p", "soak", f"e{i}") for i in range(ENDPOINTS)], "w5.purge"
        )
        workers = stack.start_workers(run.workers, wait=True)
        assert stack.server is not None
        api_pid = stack.server.pid
        samples: list[dict[str, Any]] = []

        def sample() -> dict[str, Any]:
            s = {
                "t": round(time.time(), 3),
                "delivered": arrivals.count(group),
                "worker_rss": sum(rss_bytes(w.pid) for w in workers),
                "api_rss": rss_bytes(api_pid),
                "worker_cpu": sum(cpu_seconds(w.pid) for w in workers),
            }
            samples.append(s)
            return s

        print(
            f"W5 purge soak: {events} events x {ENDPOINTS} endpoints at {rate:,.1f} events/s "
            f"(~{events / rate:,.0f} s), retention {PURGE_SETTINGS['GATEWAY_RETENTION_DAYS']} "
            "days, purge every minute"
        )
        store = _StoreSampler(stack.db_url)
        store.start()
        try:
            published = live.publish(stack, "w5.purge", rate, events, sample=sample)
            expected = published.accepted * ENDPOINTS
            _wait_delivered(stack, sample, expected)
        finally:
            store.stop()
        events_left, unfinished = asyncio.run(_left(stack.db_url))
        stack.stop_workers()
    pairs = {(a.event_id, a.uri) for a in arrivals.of(group)}
    quarter = quarters(samples, expected)
    for q in quarter:
        q.update({k: v for k, v in store.at(q["t"]).items() if k != "t"})
    first, end = quarter[0], quarter[-1]
    problems = []
    if len(pairs) < expected:
        problems.append(f"{len(pairs):,}/{expected:,} deliveries arrived")
    if unfinished:
        problems.append(f"{unfinished} deliveries pending or failed at the end")
    void = bool(problems)
    purged = published.accepted - events_left
    for i, q in enumerate(quarter, 1):
        cpu = q["worker_cpu_ms_per_delivery"]
        print(
            f"    Q{i}: {q['drain_per_s']:,.0f} deliveries/s"
            + (f" ({cpu:.2f} ms worker CPU each)" if cpu is not None else "")
            + f", RSS worker {q['worker_rss'] / 1e6:.1f} MB, API {q['api_rss'] / 1e6:.1f} MB, "
            f"PostgreSQL {q['pg_bytes'] / 1e6:.1f} MB ({q['pg_live_rows']:,} live rows, "
            f"{q['pg_dead_rows']:,} dead), Redis {q['redis_used_memory'] / 1e6:.1f} MB"
        )
    print(f"    events purged during the run: {purged:,}; {'; '.join(problems) or 'ledger ok'}")
    run.details["w5_purge"] = {
        "events_per_s": rate,
        "settings": PURGE_SETTINGS,
        "publish": published.load.summary(),
        "expected": expected,
        "received_pairs": len(pairs),
        "events_left": events_left,
        "events_purged": purged,
        "unfinished": unfinished,
        "problems": problems,
        "quarters": quarter,
        "samples": samples,
        "store_samples": store.samples,
        "autovacuum": store.autovacuum,
        "bench_vacuums": store.vacuums,
    }

    def flat(figure: str, key: str, note: str = "") -> Row:
        return Row(
            f"W5 purge soak: {figure}, end vs first quarter",
            end[key],
            first[key],
            "first quarter",
            unit="MB",
            target=("<", FLAT_LIMIT),
            void=void,
            note=note,
        )

    return [
        flat(
            "worker RSS",
            "worker_rss",
            f"{expected:,} deliveries at {rate * ENDPOINTS:,.0f}/s; {purged:,} events purged "
            "meanwhile" + (f"; VOID: {'; '.join(problems)}" if problems else ""),
        ),
        flat("API RSS", "api_rss"),
        flat(
            "PostgreSQL event+delivery+attempt",
            "pg_bytes",
            ("" if store.autovacuum else f"autovacuum off: the bench vacuumed {store.vacuums}x; ")
            + "tables, indexes and TOAST, summed over partitions; rows live/dead first "
            f"{first['pg_live_rows']:,}/{first['pg_dead_rows']:,}, end "
            f"{end['pg_live_rows']:,}/{end['pg_dead_rows']:,}",
        ),
        flat("Redis used_memory", "redis_used_memory", "whole Redis server: other users move it"),
        Row(
            "W5 purge soak: drain rate, last quarter vs first",
            end["drain_per_s"],
            first["drain_per_s"],
            "first quarter",
            target=(">=", DRAIN_FLOOR),
            void=void,
            note="open loop: equal to the offered rate while the gateway keeps up; "
            + "worker CPU per delivery Q1..Q4 (ms): "
            + ", ".join(
                f"{q['worker_cpu_ms_per_delivery']:.2f}"
                if q["worker_cpu_ms_per_delivery"] is not None
                else "-"
                for q in quarter
            ),
        ),
    ]
