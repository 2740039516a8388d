"""W1 with one change on every endpoint (a signature scheme, a transformation, an
authentication), against the same fan-out without it, in the same run on one stack.

The drains take turns in the order A B B A (without, with, with, without, ...), each
kind draining its own backlog of 10 endpoints per event, and the better drain of each
kind is compared: a slow spell of the machine then costs both kinds alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import ledger
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.report import Row

PER_EVENT = 10
# A B B A, twice: each kind drains four times.
ORDER = (False, True, True, False) * 2


@dataclass(frozen=True)
class Compared:
    without: Drain  # the better drain of each kind
    with_change: Drain
    ok: bool  # every drain's ledger balanced
    turns: int  # drains of each kind


def _drain(
    run: Run,
    stack: Stack,
    prefix: str,
    name: str,
    change: dict[str, Any] | None,
    events: int,
    keys: int | None,
) -> tuple[Drain, bool]:
    event_type = f"{prefix}.{name}"
    ids = stack.endpoints(
        [run.receiver.url(prefix, name, f"e{i}") for i in range(PER_EVENT)], event_type
    )
    if change is not None:
        for endpoint_id in ids:
            stack.admin("PATCH", f"/v1/endpoints/{endpoint_id}", json=change)
    drain = backlog_drain(
        stack,
        run.receiver.arrivals,
        event_type,
        events,
        f"/{prefix}/{name}",
        PER_EVENT,
        1,
        keys=keys,
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
    run.details[f"{prefix}_{name}"] = {**drain.summary(), "ledger": book.summary()}
    return drain, book.ok


def compare_w1(
    run: Run,
    stack: Stack,
    prefix: str,
    change: dict[str, Any],
    events: int | None = None,
    keys: int | None = None,
    order: tuple[bool, ...] = ORDER,
) -> Compared:
    """Drain W1 in turns with and without `change` (a PATCH body for every endpoint):
    backlogs of `events` (W1's size if None), over `keys` ordering keys if given."""
    events = events or max(1, run.sizes.w1_deliveries // PER_EVENT)
    drains: dict[bool, list[tuple[Drain, bool]]] = {False: [], True: []}
    for turn, changed in enumerate(order):
        name = f"{'with' if changed else 'without'}{turn}"
        drains[changed].append(
            _drain(run, stack, prefix, name, change if changed else None, events, keys)
        )
    return Compared(
        without=max((d for d, _ok in drains[False]), key=lambda d: d.rate),
        with_change=max((d for d, _ok in drains[True]), key=lambda d: d.rate),
        ok=all(good for kind in drains.values() for _d, good in kind),
        turns=len(drains[True]),
    )


def rows(compared: Compared, what: str, baseline: str, target: float, note: str = "") -> list[Row]:
    """The throughput ratio (with its target) and the worker CPU per delivery."""
    best, plain = compared.with_change, compared.without
    return [
        Row(
            f"W1 10 ep/event, {what}",
            best.rate,
            plain.rate,
            f"W1 10 ep/event {baseline}",
            target=(">=", target),
            void=not compared.ok,
            note=f"better of {compared.turns} drains each, in turns A B B A; {note}worker CPU "
            f"{best.cpu_ms:.3f} ms per delivery against {plain.cpu_ms:.3f} ms",
        ),
        Row(
            f"W1 worker CPU per delivery, {what}",
            best.cpu_ms,
            plain.cpu_ms,
            baseline,
            unit="ms",
            void=not compared.ok,
        ),
    ]
