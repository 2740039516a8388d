"""Publishing while the workers run: open-loop publish at a fixed rate, then the latency
of each delivery from the publish's due time to its arrival at the receiver.

Latency starts at the time the publish request was *due* (open loop), on the
same wall clock nginx stamps arrivals with, so a slow API, a slow queue, a slow
worker and a generator that fell behind all count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bench import loadgen
from bench.arrivals import Arrivals
from bench.harness import Stack
from bench.loadgen import LoadRun


@dataclass
class Published:
    load: LoadRun
    due: dict[str, float]  # event id -> when its publish was due (unix time)

    @property
    def accepted(self) -> int:
        return len(self.due)

    @property
    def unanswered(self) -> int:
        return sum(r.status == 0 for r in self.load.results)


def publish(
    stack: Stack,
    event_type: str,
    rate: float,
    count: int,
    sample: Callable[[], object] | None = None,
    every: float = 1.0,
) -> Published:
    """Open loop, `count` events at `rate`/s; `sample` is called every `every` seconds
    meanwhile (on the generator's loop, so it must be quick)."""

    async def go() -> LoadRun:
        sampler = None
        if sample is not None:

            async def sampling() -> None:
                while True:
                    sample()
                    await asyncio.sleep(every)

            sampler = asyncio.create_task(sampling())
        try:
            async with loadgen.session() as client:
                return await _stream(client, stack, event_type, rate, count)
        finally:
            if sampler is not None:
                sampler.cancel()

    return _published(event_type, rate, count, loadgen.run(go()))


def publish_together(stack: Stack, streams: list[tuple[str, float, int]]) -> list[Published]:
    """Several open loops at once, each (event type, rate, count), on one generator."""

    async def go() -> list[LoadRun]:
        async with loadgen.session() as client:
            return list(
                await asyncio.gather(
                    *(
                        _stream(client, stack, event_type, rate, count)
                        for event_type, rate, count in streams
                    )
                )
            )

    return [
        _published(event_type, rate, count, load)
        for (event_type, rate, count), load in zip(streams, loadgen.run(go()), strict=True)
    ]


async def _stream(
    client: aiohttp.ClientSession, stack: Stack, event_type: str, rate: float, count: int
) -> LoadRun:
    requests = loadgen.publish_requests(stack.api, stack.auth, event_type, count)
    return await loadgen.open_loop(client, requests, rate, keep_body=True)


def _published(event_type: str, rate: float, count: int, load: LoadRun) -> Published:
    due = {}
    for result in load.results:
        event_id = result.json_id() if result.ok else None
        if event_id is not None:
            due[event_id] = result.due
    lag = load.lag(99) * 1000
    print(
        f"  {event_type}: {len(due)}/{count} published at {rate:,.1f}/s "
        f"(publish p99 {load.latency(99) * 1000:.1f} ms, generator lag p99 {lag:.1f} ms)"
    )
    return Published(load, due)


@dataclass
class Latencies:
    first: list[float]  # per event: publish due -> first delivery at the receiver (s)
    every: list[float]  # per delivery
    missing: int  # events none of whose deliveries arrived

    def first_ms(self, q: float) -> float:
        # Events that never arrived count as infinitely late.
        values = self.first + [float("inf")] * self.missing
        return loadgen.percentile(values, q) * 1000

    def every_ms(self, q: float) -> float:
        return loadgen.percentile(self.every, q) * 1000


def latencies(
    arrivals: Arrivals, groups: list[str], due: dict[str, float], uris: set[str] | None = None
) -> Latencies:
    first: dict[str, float] = {}
    every = []
    for a in arrivals.of(*groups):
        published = due.get(a.event_id)
        if published is None or (uris is not None and a.uri not in uris):
            continue
        every.append(a.at - published)
        if a.event_id not in first or a.at < first[a.event_id]:
            first[a.event_id] = a.at
    return Latencies([t - due[e] for e, t in first.items()], every, len(due) - len(first))
