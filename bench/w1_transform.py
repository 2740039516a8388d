"""W1 with transformations: 10 endpoints per event, each with a trivial JavaScript
transformation, against the same fan-out without any, in the same run on one stack
(target: at least 0.7 of it).

Each kind drains its own backlog three times, in turns (plain, transformed, plain,
transformed, ...), and the better drain of each kind is compared: a slow spell of the
machine then costs both kinds alike. The transformation adds a header and returns the
webhook: what it costs is the call into V8 (and its answer), not the script.
"""

from __future__ import annotations

from bench import ledger
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.report import Row

PER_EVENT = 10
# Drains of each kind, in turns; the better of each kind is compared.
TURNS = 3
TRIVIAL = "function handler(webhook) { webhook.headers['x-bench'] = '1'; return webhook; }"


def _drain(run: Run, stack: Stack, name: str, code: str | None) -> tuple[Drain, bool]:
    event_type = f"w1t.{name}"
    ids = stack.endpoints(
        [run.receiver.url("w1t", name, f"e{i}") for i in range(PER_EVENT)], event_type
    )
    if code is not None:
        for endpoint_id in ids:
            stack.admin("PATCH", f"/v1/endpoints/{endpoint_id}", json={"transformation": code})
    drain = backlog_drain(
        stack,
        run.receiver.arrivals,
        event_type,
        max(1, run.sizes.w1_deliveries // PER_EVENT),
        f"/w1t/{name}",
        PER_EVENT,
        1,
    )
    book = ledger.check(
        f"W1 {name}",
        stack.db_url,
        [event_type],
        drain.published,
        PER_EVENT,
        run.receiver.arrivals,
        run.receiver.base,
        drain.unanswered,
    )
    run.details[f"w1t_{name}"] = {**drain.summary(), "ledger": book.summary()}
    return drain, book.ok


def run_w1_transform(run: Run) -> list[Row]:
    drains: dict[str, list[tuple[Drain, bool]]] = {"plain": [], "transformed": []}
    with Stack(run.dir, "w1t") as stack:
        for turn in range(TURNS):
            drains["plain"].append(_drain(run, stack, f"plain{turn}", None))
            drains["transformed"].append(_drain(run, stack, f"transformed{turn}", TRIVIAL))
    plain = max((d for d, _ok in drains["plain"]), key=lambda d: d.rate)
    best = max((d for d, _ok in drains["transformed"]), key=lambda d: d.rate)
    ok = all(good for kind in drains.values() for _d, good in kind)
    return [
        Row(
            "W1 10 ep/event, each with a transformation",
            best.rate,
            plain.rate,
            "W1 10 ep/event without",
            target=(">=", 0.7),
            void=not ok,
            note=f"better of {TURNS} drains each; worker CPU {best.cpu_ms:.3f} ms per delivery "
            f"against {plain.cpu_ms:.3f} ms",
        ),
        Row(
            "W1 worker CPU per delivery, with a transformation",
            best.cpu_ms,
            plain.cpu_ms,
            "without",
            unit="ms",
            void=not ok,
        ),
    ]
