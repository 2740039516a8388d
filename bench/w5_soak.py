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

import re
import time
from collections import Counter
from typing import Any

import redis

from bench import ledger, live, w1_fanout
from bench.context import Run
from bench.harness import Stack, redis_client
from bench.procs import rss_bytes
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
        deadline, last, last_change = time.monotonic() + 120 + expected / 200, -1, time.monotonic()
        while (s := sample())["delivered"] < expected and time.monotonic() < deadline:
            if s["delivered"] != last:
                last, last_change = s["delivered"], time.monotonic()
            elif time.monotonic() - last_change > 30:
                break
            stack.check_alive()
            time.sleep(1)
        end = sample()
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
