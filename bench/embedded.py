"""The second run, in embedded mode: `gateway serve` alone on SQLite, delivering in-process.

W1 at 10 endpoints per event: embedded mode has no queue to fill while nothing
delivers (publishing dispatches straight into the process's own tasks), so the
backlog is published as fast as possible while the same process delivers it,
and deliveries/s are timed at the receiver from the first arrival to the last.
That is the throughput of one embedded process doing all the work; its CPU,
counted from before publishing to the last arrival, includes publishing.
W2 publish: the same search as on PostgreSQL, the one subscribed endpoint being
delivered to in-process meanwhile.
"""

from __future__ import annotations

from bench import ledger, w2_ingest, y2_ingest
from bench.context import Run
from bench.drain import Span, measure, sample
from bench.harness import Stack
from bench.loadgen import LoadRun, publish_backlog
from bench.report import Row

ENDPOINTS = 10


def capacity(run: Run) -> float:
    """Deliveries/s of one embedded process publishing and delivering W1's backlog (10
    endpoints per event): the embedded section's if this run measured it, else measured
    now on a stack of its own (W3 loads embedded mode relative to it)."""

    def measure_alone() -> float:
        with Stack(run.dir, "embedded-capacity", embedded=True) as stack:
            span, *_ = _w1(run, stack)
        return span.rate

    return run.once("embedded_capacity", measure_alone)


def _w1(run: Run, stack: Stack) -> tuple[Span, LoadRun, int, int, ledger.Ledger]:
    assert stack.server is not None
    arrivals = run.receiver.arrivals
    stack.endpoints([run.receiver.url("emb", "k10", f"e{i}") for i in range(ENDPOINTS)], "emb.k10")
    events = max(1, run.sizes.embedded_deliveries // ENDPOINTS)
    print(f"Embedded W1: {events} events x {ENDPOINTS} endpoints, published while delivered")
    # CPU from before publishing to the last arrival: one process does both.
    before = sample(arrivals, "/emb/k10", [stack.server])
    publish = publish_backlog(stack.api, stack.auth, "emb.k10", events)
    published = sum(r.ok for r in publish.results)
    unanswered = sum(r.status == 0 for r in publish.results)
    expected = published * ENDPOINTS
    span = measure(
        arrivals, "/emb/k10", expected, [stack.server], stack, 60 + expected / 100, since=before
    )
    print(
        f"    {span.arrived}/{expected} in {span.seconds:.2f}s: {span.rate:,.0f} "
        f"deliveries/s (publish {publish.achieved:,.0f} events/s), the process using "
        f"{span.cores:.2f} cores, machine CPU {span.busy:.0%}"
    )
    w1_book = ledger.check(
        "embedded W1",
        stack.db_url,
        ["emb.k10"],
        published,
        ENDPOINTS,
        arrivals,
        run.receiver.base,
        unanswered,
    )
    return span, publish, published, unanswered, w1_book


def run_embedded(run: Run) -> list[Row]:
    y2 = y2_ingest.ceiling(run)
    with Stack(run.dir, "embedded", embedded=True) as stack:
        span, publish, published, _unanswered, w1_book = _w1(run, stack)
        run.once("embedded_capacity", lambda: span.rate)
        expected = published * ENDPOINTS
        print("Embedded W2:")
        search, w2_book = w2_ingest.search_publish(run, stack, "emb.w2")
    run.details["embedded"] = {
        "w1": {**span.summary(), "publish_per_s": publish.achieved, "ledger": w1_book.summary()},
        "w2": {**search.summary(), "ledger": w2_book.summary()},
    }
    pg = run.known("w1_capacity")
    best = search.best
    return [
        Row(
            f"Embedded W1 fan-out {ENDPOINTS} ep/event (SQLite, while publishing)",
            span.rate,
            pg,
            "PG, 1 worker",
            void=not w1_book.ok,
            note=f"{span.cpu_ms:.3f} ms CPU/delivery incl. publishing, process "
            f"{span.cores:.2f} cores, machine CPU {span.busy:.0%}"
            + ("" if span.complete else f"; only {span.arrived}/{expected} arrived"),
        ),
        Row(
            "Embedded W2 publish held (p99 < 50 ms)",
            search.held,
            y2.held,
            "Y2",
            void=not w2_book.ok,
            note=(f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held")
            + "; delivering in-process meanwhile",
        ),
    ]
