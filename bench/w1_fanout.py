"""W1, fan-out throughput: events to 1, 10 and 100 endpoints each, deliveries per second
at the receiver and worker CPU per delivery; then 10 endpoints with two workers.

Each phase has its own endpoints (`/w1/<phase>/e<i>`, subscribed to the phase's
event type only) on one PostgreSQL + Redis stack, and the same number of
deliveries: a backlog published with no worker running, then drained (drain.py).
Yardsticks: Y3 for 1 endpoint per event (one job per delivery: the queue is the
ceiling), Y1 for 10 and 100 (the HTTP client is).
"""

from __future__ import annotations

from bench import arq_jobs, ledger, y1_clients
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.report import Row

# (endpoints per event, workers)
PHASES = [(1, 1), (10, 1), (100, 1), (10, 2)]
CPU_FULL = 0.9  # machine CPU share above which more workers cannot add anything


def _phase(run: Run, stack: Stack, per_event: int, workers: int) -> tuple[Drain, bool]:
    name = f"k{per_event}w{workers}"
    event_type = f"w1.{name}"
    stack.endpoints([run.receiver.url("w1", name, f"e{i}") for i in range(per_event)], event_type)
    drain = backlog_drain(
        stack,
        run.receiver.arrivals,
        event_type,
        max(1, run.sizes.w1_deliveries // per_event),
        f"/w1/{name}",
        per_event,
        workers,
    )
    book = ledger.check(
        f"W1 {name}",
        stack.db_url,
        [event_type],
        drain.published,
        per_event,
        run.receiver.arrivals,
        run.receiver.base,
        drain.unanswered,
    )
    run.details[f"w1_{name}"] = {**drain.summary(), "ledger": book.summary()}
    return drain, book.ok


def capacity(run: Run) -> float:
    """Deliveries/s at 10 endpoints per event with one worker: W1's if this run measured
    it, else measured now on a stack of its own (W3 and W5 load the gateway relative to it)."""

    def measure() -> float:
        print("W1 capacity (10 endpoints per event, 1 worker), for the loads of W3/W5:")
        with Stack(run.dir, "w1-capacity") as stack:
            drain, _ok = _phase(run, stack, 10, 1)
        return drain.rate

    return run.once("w1_capacity", measure)


def run_w1(run: Run) -> list[Row]:
    y3 = arq_jobs.ceiling(run)
    y1 = y1_clients.aiohttp_ceiling(run)
    y1_httpx = y1_clients.httpx_ceiling(run)
    results: dict[tuple[int, int], tuple[Drain, bool]] = {}
    with Stack(run.dir, "w1") as stack:
        for per_event, workers in PHASES:
            results[(per_event, workers)] = _phase(run, stack, per_event, workers)
    one, _ok = results[(10, 1)]
    run.once("w1_capacity", lambda: one.rate)

    def note(d: Drain, ok: bool) -> str:
        text = f"workers {d.cores:.2f} cores, machine CPU {d.busy:.0%}"
        if not d.complete:
            text += f"; only {d.arrived}/{d.expected} arrived"
        return text if ok else "ledger broken; " + text

    rows = []
    for (per_event, workers), (d, ok) in results.items():
        figure = f"W1 fan-out {per_event} ep/event, {workers} worker{'s' * (workers > 1)}"
        if workers == 2:
            # "More workers scale it until the CPU is full": 10% more, or at least as
            # much on a machine that is now full (fewer is never scaling).
            rows.append(
                Row(
                    figure,
                    d.rate,
                    one.rate,
                    "1 worker",
                    void=not ok,
                    target_label="≥ 1.1x, or ≥ 1x with CPU full",
                    verdict=d.rate >= 1.1 * one.rate or (d.busy >= CPU_FULL and d.rate >= one.rate),
                    note=note(d, ok),
                )
            )
        elif per_event == 1:
            rows.append(
                Row(figure, d.rate, y3, "Y3", target=(">=", 0.5), void=not ok, note=note(d, ok))
            )
        else:
            rows.append(
                Row(
                    figure,
                    d.rate,
                    y1.rate,
                    "Y1 aiohttp",
                    void=not ok,
                    target=(">=", 0.3) if per_event == 10 else None,
                    note=note(d, ok),
                )
            )
            if per_event == 10:
                rows.append(
                    Row(figure + " vs httpx", d.rate, y1_httpx.rate, "Y1 httpx", void=not ok)
                )
    for (per_event, workers), (d, ok) in results.items():
        if workers == 1:
            rows.append(
                Row(
                    f"W1 worker CPU per delivery, {per_event} ep/event",
                    d.cpu_ms,
                    y1.cpu_ms,
                    "Y1 aiohttp",
                    unit="ms",
                    void=not ok,
                    note="yardstick: client CPU per request",
                )
            )
    return rows
