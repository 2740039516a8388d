"""Fan-out throughput: how fast N workers drain a published backlog to a local receiver.

The API publishes the events first with no worker running (so it has the machine
to itself), then the workers start and the receiver's count is timed. Y1, the
yardstick, is a bare aiohttp client posting the same kind of body to the same
receiver at concurrency 100.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx

from bench.harness import Stack


async def yardstick(url: str, total: int, concurrency: int) -> float:
    body = json.dumps({"id": "evt_x", "type": "bench", "timestamp": "t", "data": {"i": 1}})
    connector = aiohttp.TCPConnector(limit=concurrency)
    sent = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one_worker() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                async with session.post(url, data=body,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()
        start = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


async def _publish(stack: Stack, events: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.api, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {stack.api_key}"}) as client:
        numbers = iter(range(events))

        async def one_worker() -> None:
            for i in numbers:
                r = await client.post("/v1/events", json={"type": "bench.event",
                                                          "data": {"i": i}})
                r.raise_for_status()
        start = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - start)


def run(events: int, endpoints: int, workers: int, timeout: float) -> dict[str, float]:
    with Stack() as stack:
        y1 = asyncio.run(yardstick(f"{stack.receiver}/y", 20000, 100))
        for i in range(endpoints):
            stack.admin("POST", "/v1/endpoints", json={"url": f"{stack.receiver}/ep{i}"})
        publish_rate = asyncio.run(_publish(stack, events, 20))
        before = stack.received()
        expected = before + events * endpoints
        stack.start_workers(workers)
        deadline = time.perf_counter() + timeout
        while (got := stack.received()) == before and time.perf_counter() < deadline:
            time.sleep(0.01)
        start, first = time.perf_counter(), got
        while (got := stack.received()) < expected and time.perf_counter() < deadline:
            time.sleep(0.05)
        rate = (got - first) / (time.perf_counter() - start)
        if got < expected:
            raise SystemExit(f"only {got - before} of {events * endpoints} deliveries arrived")
    print(f"publish:              {events} events, {publish_rate:,.0f}/s "
          f"(httpx client, concurrency 20, no worker running)")
    print(f"fan-out:              {events * endpoints} deliveries to {endpoints} endpoints, "
          f"{workers} worker(s): {rate:,.0f}/s")
    print(f"Y1 aiohttp client:    {y1:,.0f}/s (bare client, same receiver, concurrency 100)")
    print(f"ratio:                {rate / y1:.2f}")
    return {"publish_per_s": publish_rate, "deliveries_per_s": rate, "y1_aiohttp_per_s": y1}
