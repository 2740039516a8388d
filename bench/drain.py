"""Backlog drains: publish with no worker running, then start the workers and time the
deliveries at the receiver, with the workers' CPU meanwhile.

The API publishes first so that it has the machine to itself, and the workers are
measured alone. The clock runs from the first delivery to arrive to the last one
(nginx's own timestamps), so worker start-up is not counted; CPU is sampled over
the same span from /proc.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.arrivals import Arrivals
from bench.harness import Stack
from bench.loadgen import publish_backlog
from bench.procs import Proc, busy_share, cpu_seconds, machine_cpu

FIRST_ARRIVAL_TIMEOUT = 60.0
STALL_SECONDS = 30.0  # nothing arrives for this long: the drain is given up


@dataclass
class Span:
    """Deliveries to one group of endpoints, from the first arrival to the last."""

    expected: int
    arrived: int
    rate: float  # deliveries per second, first to last arrival
    seconds: float
    cpu_ms: float  # CPU of the measured processes per delivery, in ms
    cores: float  # CPU of the measured processes per second of wall time
    busy: float  # share of the whole machine's CPU in use meanwhile

    @property
    def complete(self) -> bool:
        return self.arrived >= self.expected

    def summary(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "arrived": self.arrived,
            "deliveries_per_s": round(self.rate, 1),
            "seconds": round(self.seconds, 3),
            "cpu_ms_per_delivery": round(self.cpu_ms, 4),
            "process_cores": round(self.cores, 3),
            "machine_cpu_busy": round(self.busy, 3),
        }


@dataclass
class Drain(Span):
    published: int = 0  # events accepted
    unanswered: int = 0

    def summary(self) -> dict[str, object]:
        return {"published": self.published, **super().summary()}


@dataclass
class Sample:
    count: int
    wall: float
    cpu: float
    machine: tuple[float, float]


def sample(arrivals: Arrivals, group: str, procs: list[Proc]) -> Sample:
    return Sample(
        arrivals.count(group),
        time.monotonic(),
        sum(cpu_seconds(p.pid) for p in procs),
        machine_cpu(),
    )


def measure(
    arrivals: Arrivals,
    group: str,
    expected: int,
    procs: list[Proc],
    stack: Stack,
    timeout: float,
    since: Sample | None = None,
) -> Span:
    """Wait for the first arrival in `group`, then for `expected`, sampling the CPU of
    `procs` and of the machine in between (or from `since`, taken by the caller)."""
    if arrivals.wait_for(group, 1, FIRST_ARRIVAL_TIMEOUT, stack.check_alive) == 0:
        raise RuntimeError(f"nothing arrived at {group} within {FIRST_ARRIVAL_TIMEOUT:g}s")
    start = since or sample(arrivals, group, procs)
    count0, wall0, cpu0, machine0 = start.count, start.wall, start.cpu, start.machine
    arrived = arrivals.wait_for(group, expected, timeout, stack.check_alive, STALL_SECONDS)
    cpu1, machine1 = sum(cpu_seconds(p.pid) for p in procs), machine_cpu()
    wall = time.monotonic() - wall0
    times = sorted(a.at for a in arrivals.of(group))
    seconds = times[-1] - times[0]
    rate = (len(times) - 1) / seconds if seconds > 0 else 0.0
    cpu_ms = (cpu1 - cpu0) / max(1, arrived - count0) * 1000
    return Span(
        expected,
        arrived,
        rate,
        seconds,
        cpu_ms,
        (cpu1 - cpu0) / max(wall, 1e-3),
        busy_share(machine0, machine1),
    )


def backlog_drain(
    stack: Stack,
    arrivals: Arrivals,
    event_type: str,
    events: int,
    group: str,
    per_event_in_group: int,
    workers: int,
    keep_workers: bool = False,
    keys: int | None = None,
) -> Drain:
    """Publish `events` of `event_type` (with `keys`, over that many ordering keys), then
    drain them; the workers are stopped after, unless `keep_workers` (a phase that goes
    on with them)."""
    publish = publish_backlog(stack.api, stack.auth, event_type, events, keys=keys)
    published = sum(r.ok for r in publish.results)
    unanswered = sum(r.status == 0 for r in publish.results)
    expected = published * per_event_in_group
    print(
        f"  {event_type}: {published} events published ({publish.achieved:,.0f}/s, no worker "
        f"running); draining {expected} deliveries with {workers} worker(s)"
    )
    procs = stack.start_workers(workers)
    try:
        # Generous: at 100 deliveries/s, plus start-up; a stall ends it sooner.
        timeout = 60 + expected / 100
        span = measure(arrivals, group, expected, procs, stack, timeout)
    except BaseException:
        stack.stop_workers()
        raise
    if not keep_workers:
        stack.stop_workers()
    drain = Drain(**vars(span), published=published, unanswered=unanswered)
    print(
        f"    {drain.arrived}/{expected} in {drain.seconds:.2f}s: {drain.rate:,.0f} "
        f"deliveries/s, {drain.cpu_ms:.3f} ms worker CPU each, workers using "
        f"{drain.cores:.2f} cores, machine CPU {drain.busy:.0%} busy"
    )
    return drain
