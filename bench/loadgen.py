"""The load generator: open loop for every measured rate, closed loop for backlogs.

Open loop: request i is due at start + i/rate whatever happened to the others, and
its latency is counted from that due time. A server that stalls, or a generator
that falls behind, shows up in the latencies instead of slowing the offered load
down (coordinated omission). `lag` (due time to the moment the request is handed
to the client) says whether the generator itself kept up.

aiohttp on uvloop, the fastest Python client; bodies and signatures are made
before the clock starts, so the generator spends its time sending.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import uvloop

T = TypeVar("T")
# Connections the generator may open: more than a one-process server answers at once
# (wrk's usual 64, doubled). Beyond them requests wait in the client, from their due
# time, so that wait is measured too; many more only add connection storms.
MAX_CONNECTIONS = 128
REQUEST_TIMEOUT = 30.0
# Generator lag (p99) above which a step's latencies say more about the generator.
LAG_LIMIT = 0.010


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def session(limit: int = MAX_CONNECTIONS) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


@dataclass
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Result:
    due: float  # unix time the request was due (open loop) or sent (closed loop)
    latency: float  # seconds from `due` to the whole answer read
    lag: float  # seconds from `due` to handing the request to the client
    status: int  # 0: no answer (connection error, timeout)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json_id(self, key: str = "id") -> str | None:
        try:
            value = json.loads(self.body)[key]
        except (ValueError, KeyError, TypeError):
            return None
        return str(value)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class LoadRun:
    offered: float  # requests per second asked for (0: closed loop)
    results: list[Result]
    elapsed: float  # first due time to last answer
    errors: int = field(init=False)

    def __post_init__(self) -> None:
        self.errors = sum(not r.ok for r in self.results)

    @property
    def achieved(self) -> float:
        return sum(r.ok for r in self.results) / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self, q: float) -> float:
        return percentile([r.latency for r in self.results], q)

    def lag(self, q: float) -> float:
        return percentile([r.lag for r in self.results], q)

    @property
    def generator_behind(self) -> bool:
        """The generator's own lag is a large part of the latencies: they are its, not
        the server's. (A starved generator lags a little when the server is overloaded
        too; then latency dwarfs the lag.)"""
        lag = self.lag(99)
        return lag > LAG_LIMIT and lag >= 0.4 * self.latency(99)

    def summary(self) -> dict[str, float]:
        return {
            "offered_per_s": round(self.offered, 1),
            "achieved_per_s": round(self.achieved, 1),
            "requests": len(self.results),
            "errors": self.errors,
            "p50_ms": round(self.latency(50) * 1000, 2),
            "p99_ms": round(self.latency(99) * 1000, 2),
            "lag_p99_ms": round(self.lag(99) * 1000, 2),
        }


async def _send(
    client: aiohttp.ClientSession,
    req: Request,
    keep_body: bool,
) -> tuple[int, bytes]:
    try:
        async with client.post(req.url, data=req.body, headers=req.headers) as response:
            body = await response.read()
            return response.status, body if keep_body else b""
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0, b""


def _paused_gc() -> Any:
    """No garbage collection while a run sends: its pauses would show as generator lag."""

    class Paused:
        def __enter__(self) -> None:
            gc.disable()

        def __exit__(self, *exc: object) -> None:
            gc.enable()

    return Paused()


async def open_loop(
    client: aiohttp.ClientSession, requests: Sequence[Request], rate: float, keep_body: bool = False
) -> LoadRun:
    # time.monotonic, not loop.time(): uvloop's clock has millisecond steps and is only
    # updated once per loop iteration.
    clock = time.monotonic
    to_wall = time.time() - clock()
    results: list[Result | None] = [None] * len(requests)
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        lag = clock() - due
        status, body = await _send(client, requests[i], keep_body)
        results[i] = Result(due + to_wall, clock() - due, lag, status, body)

    with _paused_gc():
        start = clock() + 0.01
        tasks: list[asyncio.Task[None]] = []
        i = 0
        while i < len(requests):
            now = clock()
            due = start + i / rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything that is due goes now (timers have millisecond resolution).
            while i < len(requests) and start + i / rate <= now:
                tasks.append(loop.create_task(one(i, start + i / rate)))
                i += 1
        await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT + 10)
        elapsed = clock() - start
    return LoadRun(rate, [r for r in results if r is not None], elapsed)


async def closed_loop(
    client: aiohttp.ClientSession,
    requests: Sequence[Request],
    concurrency: int,
    keep_body: bool = False,
) -> LoadRun:
    """`concurrency` senders back to back: the fastest way to publish a backlog."""
    clock = time.monotonic
    to_wall = time.time() - clock()
    results: list[Result] = []
    todo = iter(requests)

    async def sender() -> None:
        for req in todo:
            sent = clock()
            status, body = await _send(client, req, keep_body)
            results.append(Result(sent + to_wall, clock() - sent, 0.0, status, body))

    start = clock()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return LoadRun(0.0, results, clock() - start)


def publish_requests(
    api: str,
    auth: dict[str, str],
    event_type: str,
    n: int,
    first: int = 0,
    keys: int | None = None,
) -> list[Request]:
    """n `POST /v1/events` bodies of about the size the facts were measured with (~150 B);
    with `keys`, each with one of that many ordering keys, in turn."""
    headers = {**auth, "Content-Type": "application/json"}
    return [
        Request(
            f"{api}/v1/events",
            json.dumps(
                {
                    "type": event_type,
                    "data": {
                        "order": f"ord_{i:08d}",
                        "amount": 1200 + i % 100,
                        "currency": "eur",
                        "customer": "cus_bench",
                    },
                    **({"ordering_key": f"key_{i % keys}"} if keys else {}),
                }
            ).encode(),
            headers,
        )
        for i in range(first, first + n)
    ]


def publish_backlog(
    api: str,
    auth: dict[str, str],
    event_type: str,
    n: int,
    concurrency: int = 32,
    keys: int | None = None,
) -> LoadRun:
    async def go() -> LoadRun:
        async with session(concurrency) as client:
            return await closed_loop(
                client, publish_requests(api, auth, event_type, n, keys=keys), concurrency
            )

    return run(go())
