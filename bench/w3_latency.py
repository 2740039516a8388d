"""W3, latency: publish to first delivery at the receiver, p50/p99/p99.9, at 50% and
80% of W1's capacity (10 endpoints per event, one worker), open loop; and at 50% of
embedded mode's own capacity (one `gateway serve` on SQLite publishing and delivering).

Events go to 10 endpoints each, as W1's headline figure; the latency of an event
is that of the first of its 10 deliveries (all of them are in the JSON). The
worker runs while the API publishes, so both share the machine, as in
production. A short warm-up at the same rate comes first (connections, caches)
and is left out of the figures but not out of the ledger.
"""

from __future__ import annotations

from typing import Any

from bench import embedded, ledger, live, w1_fanout
from bench.context import Run
from bench.harness import Stack
from bench.procs import busy_share, cpu_seconds, machine_cpu, shared_server_cpu
from bench.report import Row

ENDPOINTS = 10
LOADS = (0.5, 0.8)
EMBEDDED_LOAD = 0.5
WARM_SECONDS = 2.0


def run_w3(run: Run) -> list[Row]:
    capacity = w1_fanout.capacity(run)
    rows = []
    with Stack(run.dir, "w3") as stack:
        for load in LOADS:
            _endpoints(run, stack, _name(load))
        stack.start_workers(run.workers, wait=True)
        for load in LOADS:
            rows += _level(run, stack, _name(load), load, capacity, "")
    embedded_capacity = embedded.capacity(run)
    with Stack(run.dir, "w3-embedded", embedded=True) as stack:
        name = "emb" + _name(EMBEDDED_LOAD)
        _endpoints(run, stack, name)
        rows += _level(run, stack, name, EMBEDDED_LOAD, embedded_capacity, ", embedded")
    return rows


def _name(load: float) -> str:
    return f"l{load * 100:.0f}"


def _endpoints(run: Run, stack: Stack, name: str) -> None:
    stack.endpoints(
        [run.receiver.url("w3", name, f"e{i}") for i in range(ENDPOINTS)], f"w3.{name}.*"
    )


def _level(run: Run, stack: Stack, name: str, load: float, capacity: float, mode: str) -> list[Row]:
    rate = load * capacity / ENDPOINTS
    print(
        f"W3{mode} at {load:.0%} of {capacity:,.0f} deliveries/s: {rate:,.1f} events/s "
        f"x {ENDPOINTS} endpoints"
    )
    cpu_before = _cpu(stack)
    warm = live.publish(stack, f"w3.{name}.warm", rate, max(1, int(rate * WARM_SECONDS)))
    measured = live.publish(stack, f"w3.{name}.run", rate, max(1, int(rate * run.sizes.w3_seconds)))
    group = f"/w3/{name}"
    expected = (warm.accepted + measured.accepted) * ENDPOINTS
    got = run.receiver.arrivals.wait_for(
        group, expected, 60 + expected / 100, stack.check_alive, stall=20
    )
    cost = _cost(cpu_before, _cpu(stack), warm.accepted + measured.accepted)
    book = ledger.check(
        f"W3 {name}",
        stack.db_url,
        [f"w3.{name}.warm", f"w3.{name}.run"],
        warm.accepted + measured.accepted,
        ENDPOINTS,
        run.receiver.arrivals,
        run.receiver.base,
        warm.unanswered + measured.unanswered,
    )
    lat = live.latencies(run.receiver.arrivals, [group], measured.due)
    note = (
        f"{rate:,.0f} events/s x {ENDPOINTS}; CPU per event "
        + ", ".join(
            f"{who} {ms:.1f}" for who, ms in cost.items() if who != "machine_busy" and ms >= 0.05
        )
        + f" ms; machine {cost['machine_busy']:.0%} busy"
    )
    if measured.load.generator_behind:
        note += f"; generator lag p99 {measured.load.lag(99) * 1000:.0f} ms"
    if lat.missing:
        note += f"; {lat.missing} events never arrived"
    if got < expected:
        note += f"; {got}/{expected} deliveries arrived"
    if not book.ok:
        note += "; ledger broken"
    details: dict[str, Any] = {
        "events_per_s": rate,
        "publish": measured.load.summary(),
        "first_delivery_ms": {q: lat.first_ms(q) for q in (50, 99, 99.9)},
        "every_delivery_ms": {q: lat.every_ms(q) for q in (50, 99, 99.9)},
        "missing": lat.missing,
        "cpu_ms_per_event": cost,
        "ledger": book.summary(),
    }
    run.details[f"w3_{name}"] = details
    print(
        f"    first delivery p50 {lat.first_ms(50):.1f} ms, "
        f"p99 {lat.first_ms(99):.1f} ms, p99.9 {lat.first_ms(99.9):.1f} ms; "
        "every delivery p99 "
        f"{lat.every_ms(99):.1f} ms\n    " + note
    )
    return [
        Row(
            f"W3 publish→first delivery p{q:g} at {load:.0%} load{mode}",
            lat.first_ms(q),
            unit="ms",
            target=("<", 100.0) if (q == 99 and load == 0.5) else None,
            on="gateway",
            void=not book.ok,
            note=note if q == 50 else "",
        )
        for q in (50, 99, 99.9)
    ]


def _cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the stack's processes and the servers, and the machine's."""
    assert stack.server is not None
    servers = shared_server_cpu()
    busy, total = machine_cpu()
    return {
        "API": cpu_seconds(stack.server.pid),
        "worker": sum(cpu_seconds(w.pid) for w in stack.workers),
        "PostgreSQL": servers["postgres"],
        "Redis": servers["redis-server"],
        "nginx": servers["nginx"],
        "busy": busy,
        "total": total,
    }


def _cost(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
    """Milliseconds of CPU per event by process between two `_cpu` samples, and the
    machine's busy share."""
    cost = {
        who: round(1000 * (after[who] - before[who]) / max(1, events), 2)
        for who in before
        if who not in ("busy", "total")
    }
    cost["machine_busy"] = round(
        busy_share((before["busy"], before["total"]), (after["busy"], after["total"])), 3
    )
    return cost
