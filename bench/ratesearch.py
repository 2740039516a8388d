"""The highest request rate a server holds: p99 under 50 ms and no errors, open loop.

Steps of a few seconds each: the rate doubles while steps pass, then a few
bisection steps narrow it between the last pass and the first fail. A failed
step is tried once more before it counts: one hiccup of a shared 2-core machine
(a test suite starting, a checkpoint) should not end the search. The same
search, generator and request sizes drive the gateway and Y2, so their ratio is
like for like. Every step is bounded in count (rate x seconds) and time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench import loadgen
from bench.loadgen import LoadRun, Request

P99_LIMIT = 0.050
START_RATE = 250.0
MAX_RATE = 32000.0
SETTLE_SECONDS = 0.5  # between steps, so that one step's backlog does not spill over


@dataclass
class Step:
    rate: float
    run: LoadRun

    @property
    def ok(self) -> bool:
        return self.run.errors == 0 and self.run.latency(99) < P99_LIMIT


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    warmup: LoadRun | None = None

    def results(self) -> list[loadgen.Result]:
        """Every request sent, the warm-up's included (the ledger counts them all)."""
        runs = ([self.warmup] if self.warmup else []) + [s.run for s in self.steps]
        return [r for run in runs for r in run.results]

    @property
    def best(self) -> Step | None:
        passed = [s for s in self.steps if s.ok]
        return max(passed, key=lambda s: s.rate) if passed else None

    @property
    def held(self) -> float:
        return self.best.rate if self.best else 0.0

    @property
    def generator_limited(self) -> bool:
        """The first failing step above the held rate failed with the generator behind."""
        above = [s for s in self.steps if not s.ok and s.rate > self.held]
        return bool(above) and min(above, key=lambda s: s.rate).run.generator_behind

    def summary(self) -> dict[str, object]:
        return {
            "held_per_s": self.held,
            "generator_limited": self.generator_limited,
            "steps": [{"ok": s.ok, **s.run.summary()} for s in self.steps],
        }


async def search_async(
    make: Callable[[int], Sequence[Request]],
    seconds: float,
    refine: int,
    log: Callable[[str], None] = print,
) -> Search:
    result = Search()
    async with loadgen.session() as client:

        async def step(rate: float) -> bool:
            for attempt in (1, 2):
                count = max(50, int(rate * seconds))
                requests = make(count)
                run = await loadgen.open_loop(client, requests, rate)
                s = Step(rate, run)
                result.steps.append(s)
                log(
                    f"    {rate:8,.0f}/s  p99 {run.latency(99) * 1000:7.1f} ms  "
                    f"errors {run.errors:4}  lag p99 {run.lag(99) * 1000:5.1f} ms  "
                    f"{'ok' if s.ok else 'FAIL' if attempt == 2 else 'fail, once more'}"
                )
                await asyncio.sleep(SETTLE_SECONDS)
                if s.ok:
                    return True
            return False

        # Warm-up, not counted: connections, the server's pools and caches.
        result.warmup = await loadgen.open_loop(client, make(int(START_RATE)), START_RATE)
        low, high, rate = 0.0, 0.0, START_RATE
        while rate <= MAX_RATE:
            if not await step(rate):
                high = rate
                break
            low, rate = rate, rate * 2
        if high:
            for _ in range(refine):
                mid = (low + high) / 2
                if high - low < max(25.0, low * 0.05):
                    break
                if await step(mid):
                    low = mid
                else:
                    high = mid
    return result


def search(
    make: Callable[[int], Sequence[Request]],
    seconds: float,
    refine: int,
    log: Callable[[str], None] = print,
) -> Search:
    return loadgen.run(search_async(make, seconds, refine, log))
