"""W4, isolation: 10% of the endpoints answer after 10 s or never; what the healthy
90% keep of their throughput and p99.

20 endpoints per event. Baseline: all 20 healthy (nginx). Then: 18 healthy, one
that answers after 10 s (`/slow`, within the default 15 s delivery timeout, so it
succeeds) and one that never answers (`/never`, each attempt times out), each on
its own port (host), as two broken customers would be. The same 18 healthy
deliveries per event are measured in both cases:

- throughput: a backlog drain (drain.py), time to the last healthy delivery;
- p99: open loop at 50% of the baseline's capacity, every healthy delivery's
  latency from its publish's due time.

The bad scenario's drain goes straight on into its open-loop phase with the same
workers (the bad endpoints' attempts still in flight and their breakers as they
are), as a gateway with broken customers lives.

Then the bad mix, one healthy endpoint among many broken ones: 43 endpoints that hang,
answer a byte a second, send their headers a byte a second or answer 1 GB, sent
5 events/s, and one healthy endpoint sent 1 event/s. Its p99 is measured against the
same healthy stream alone, just before.
"""

from __future__ import annotations

import time

from bench import ledger, live
from bench.arrivals import Arrival
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.receivers import start_bad_endpoints
from bench.report import Row

PER_EVENT = 20
HEALTHY = 18
LOAD = 0.5
# "Keep their p99": at most 1.5x the baseline's, or within 20 ms of it (small p99s jitter).
P99_FACTOR, P99_SLACK_MS = 1.5, 20.0
# The bad mix: broken endpoints by kind (43 in all), their events/s, the healthy one's.
MIX = {"never": 11, "trickle": 11, "slow-headers": 11, "huge": 10}
MIX_BAD_RATE, MIX_HEALTHY_RATE = 5.0, 1.0


def _live(
    run: Run,
    stack: Stack,
    scenario: str,
    events_per_s: float,
    drained: Drain,
) -> tuple[live.Published, live.Latencies]:
    published = live.publish(
        stack, f"w4.{scenario}.live", events_per_s, max(1, int(events_per_s * run.sizes.w4_seconds))
    )
    group = f"/w4/{scenario}"
    # The group's healthy deliveries, the drain's included (some may still be on their way).
    expected = (drained.published + published.accepted) * HEALTHY
    run.receiver.arrivals.wait_for(group, expected, 60, stack.check_alive, stall=20)
    lat = live.latencies(run.receiver.arrivals, [group], published.due)
    print(f"    healthy deliveries p50 {lat.every_ms(50):.1f} ms, p99 {lat.every_ms(99):.1f} ms")
    return published, lat


def _book(
    run: Run,
    stack: Stack,
    scenario: str,
    drain: Drain,
    published: live.Published,
) -> ledger.Ledger:
    return ledger.check(
        f"W4 {scenario}",
        stack.db_url,
        [f"w4.{scenario}.drain", f"w4.{scenario}.live"],
        drain.published + published.accepted,
        PER_EVENT,
        run.receiver.arrivals,
        run.receiver.base,
        drain.unanswered + published.unanswered,
    )


def run_w4(run: Run) -> list[Row]:
    arrivals = run.receiver.arrivals
    events = max(1, run.sizes.w4_deliveries // PER_EVENT)
    bad = start_bad_endpoints(run.dir, {"slow": 1, "never": 1})
    try:
        with Stack(run.dir, "w4") as stack:
            url = run.receiver.url
            stack.endpoints([url("w4", "base", f"e{i}") for i in range(HEALTHY)], "w4.base.*")
            stack.endpoints(
                [url("w4", "base-rest", f"e{i}") for i in range(PER_EVENT - HEALTHY)], "w4.base.*"
            )
            stack.endpoints([url("w4", "bad", f"e{i}") for i in range(HEALTHY)], "w4.bad.*")
            stack.endpoints([bad.urls["slow"][0] + "/w4", bad.urls["never"][0] + "/w4"], "w4.bad.*")

            print("W4 baseline, 20 healthy endpoints per event:")
            base_drain = backlog_drain(
                stack, arrivals, "w4.base.drain", events, "/w4/base", HEALTHY, run.workers
            )
            # Events/s at 50% of the baseline's capacity: the drain measured 18 of each
            # event's 20 deliveries, so its rate / 18 is events/s.
            rate = LOAD * base_drain.rate / HEALTHY
            stack.start_workers(run.workers, wait=True)
            base_pub, base_lat = _live(run, stack, "base", rate, base_drain)
            stack.stop_workers()
            base_book = _book(run, stack, "base", base_drain, base_pub)

            print("W4 with 1 endpoint answering after 10 s and 1 never answering:")
            bad_drain = backlog_drain(
                stack,
                arrivals,
                "w4.bad.drain",
                events,
                "/w4/bad",
                HEALTHY,
                run.workers,
                keep_workers=True,
            )
            bad_pub, bad_lat = _live(run, stack, "bad", rate, bad_drain)
            bad_book = _book(run, stack, "bad", bad_drain, bad_pub)
            bad.stop()  # the attempts hanging on it end now
            stack.stop_workers()
            mix = _bad_mix(run, stack)
    finally:
        bad.stop()

    ok = base_book.ok and bad_book.ok
    run.details["w4"] = {
        "events_per_s_live": rate,
        "baseline": {
            "drain": base_drain.summary(),
            "p99_ms": base_lat.every_ms(99),
            "p50_ms": base_lat.every_ms(50),
            "ledger": base_book.summary(),
        },
        "bad": {
            "drain": bad_drain.summary(),
            "p99_ms": bad_lat.every_ms(99),
            "p50_ms": bad_lat.every_ms(50),
            "ledger": bad_book.summary(),
        },
        "mix": mix.summary(),
    }
    drain_note = (
        ""
        if bad_drain.complete
        else (f"only {bad_drain.arrived}/{bad_drain.expected} healthy deliveries arrived")
    )
    base_p99, bad_p99 = base_lat.every_ms(99), bad_lat.every_ms(99)
    keeps = bad_p99 <= max(base_p99 * P99_FACTOR, base_p99 + P99_SLACK_MS)
    return [
        Row(
            "W4 healthy 90%: drain deliveries/s, 10% bad",
            bad_drain.rate,
            base_drain.rate,
            "all healthy",
            target=(">=", 0.9),
            void=not ok,
            note=drain_note or f"{HEALTHY} of {PER_EVENT} per event measured",
        ),
        Row(
            f"W4 healthy 90%: p99 at {LOAD:.0%} load, 10% bad",
            bad_p99,
            base_p99,
            "all healthy",
            unit="ms",
            void=not ok,
            target_label=f"≤ {P99_FACTOR:g}x or +{P99_SLACK_MS:g} ms",
            verdict=keeps,
            note=f"{rate:,.1f} events/s x {PER_EVENT}",
        ),
        Row(
            "W4 1 healthy endpoint: p99 among 43 bad",
            mix.bad_p99,
            mix.base_p99,
            "alone",
            unit="ms",
            void=mix.missing > 0,
            target_label=f"≤ {P99_FACTOR:g}x or +{P99_SLACK_MS:g} ms",
            verdict=mix.keeps,
            note=mix.note,
        ),
    ]


class Mix:
    def __init__(
        self, alone: live.Latencies, among_bad: live.Latencies, seconds: float, bad_accepted: int
    ) -> None:
        self.base_p99, self.bad_p99 = alone.first_ms(99), among_bad.first_ms(99)
        self.missing = alone.missing + among_bad.missing
        self.keeps = self.bad_p99 <= max(self.base_p99 * P99_FACTOR, self.base_p99 + P99_SLACK_MS)
        self.p50s = alone.first_ms(50), among_bad.first_ms(50)
        self.note = (
            f"{MIX_HEALTHY_RATE:g} event/s for {seconds:g} s, beside "
            f"{bad_accepted} events to the bad at {MIX_BAD_RATE:g}/s; "
            f"p50 {self.p50s[1]:.1f} ms (alone {self.p50s[0]:.1f} ms)"
        )
        if self.missing:
            self.note = f"{self.missing} healthy deliveries never arrived; " + self.note

    def summary(self) -> dict[str, object]:
        return {
            "alone_p99_ms": self.base_p99,
            "among_bad_p99_ms": self.bad_p99,
            "alone_p50_ms": self.p50s[0],
            "among_bad_p50_ms": self.p50s[1],
            "missing": self.missing,
            "note": self.note,
        }


def _bad_mix(run: Run, stack: Stack) -> Mix:
    """The healthy endpoint alone, then beside the 43 bad ones, with fresh workers."""
    arrivals = run.receiver.arrivals
    seconds = 2 * run.sizes.w4_seconds
    count = max(1, int(MIX_HEALTHY_RATE * seconds))
    stack.endpoints([run.receiver.url("w4", "mix-alone", "e0")], "w4.mix.alone")
    stack.endpoints([run.receiver.url("w4", "mix-healthy", "e0")], "w4.mix.healthy")
    bad = start_bad_endpoints(run.dir, MIX)
    try:
        stack.endpoints([url + "/w4" for url in bad.all()], "w4.mix.bad")
        stack.start_workers(run.workers, wait=True)
        print(f"W4 bad mix, 1 healthy endpoint alone at {MIX_HEALTHY_RATE:g} event/s:")
        alone = live.publish(stack, "w4.mix.alone", MIX_HEALTHY_RATE, count)
        arrivals.wait_for("/w4/mix-alone", alone.accepted, 60, stack.check_alive, stall=20)
        alone_lat = live.latencies(arrivals, ["/w4/mix-alone"], alone.due)
        print(f"W4 bad mix, beside {sum(MIX.values())} bad endpoints at {MIX_BAD_RATE:g} events/s:")
        started = time.monotonic()
        healthy, to_bad = live.publish_together(
            stack,
            [
                ("w4.mix.healthy", MIX_HEALTHY_RATE, count),
                ("w4.mix.bad", MIX_BAD_RATE, int(MIX_BAD_RATE * seconds)),
            ],
        )
        left = max(10.0, 60 - (time.monotonic() - started))
        # Those that have not arrived by then count as missing (infinitely late).
        arrivals.wait_for("/w4/mix-healthy", healthy.accepted, left, stack.check_alive)
        mix_lat = live.latencies(arrivals, ["/w4/mix-healthy"], healthy.due)
        _print_slowest(arrivals.of("/w4/mix-healthy"), healthy.due)
        print(
            f"    healthy p50 {mix_lat.first_ms(50):.1f} ms, p99 {mix_lat.first_ms(99):.1f} ms"
            f" (alone: {alone_lat.first_ms(50):.1f} / {alone_lat.first_ms(99):.1f} ms)"
        )
    finally:
        bad.stop()  # hanging attempts end, so that the workers stop quickly
        stack.stop_workers()
    return Mix(alone_lat, mix_lat, seconds, to_bad.accepted)


def _print_slowest(arrived: list[Arrival], due: dict[str, float], n: int = 3) -> None:
    """The slowest healthy deliveries, and when in the phase they were published."""
    start = min(due.values(), default=0.0)
    slowest = sorted(
        ((a.at - due[a.event_id], due[a.event_id] - start) for a in arrived if a.event_id in due),
        reverse=True,
    )[:n]
    print(
        "    slowest: "
        + ", ".join(f"{lat * 1000:.0f} ms (published at +{at:.1f} s)" for lat, at in slowest)
    )
