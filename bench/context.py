"""One benchmark run: its sizes, its receiver, the rows so far, and figures that later
workloads reuse (Y1, Y2, Y3 and W1's capacity are measured once per run, on demand)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.receivers import Receiver
from bench.report import Row

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    y1_requests: int = 30_000
    y1_httpx_requests: int = 4_000  # httpx manages ~250/s here
    y3_jobs: int = 20_000
    w1_deliveries: int = 20_000  # per endpoint count
    step_seconds: float = 4.0  # one step of a rate search
    refine_steps: int = 3
    w3_seconds: float = 20.0  # per load level
    w4_deliveries: int = 20_000  # backlog of each W4 drain
    w4_seconds: float = 15.0  # open-loop phase of W4
    soak_deliveries: int = 200_000
    long_soak_deliveries: int = 1_000_000  # the purge soak, section w5-purge
    long_soak_full: bool = True  # the purge soak lasts PURGE_SOAK_SECONDS at least
    embedded_deliveries: int = 20_000


QUICK = Sizes(
    y1_requests=5_000,
    y1_httpx_requests=1_500,
    y3_jobs=5_000,
    w1_deliveries=4_000,
    step_seconds=1.0,
    refine_steps=2,
    w3_seconds=5.0,
    w4_deliveries=4_000,
    w4_seconds=5.0,
    soak_deliveries=20_000,
    long_soak_deliveries=40_000,
    long_soak_full=False,  # a few minutes: its figures only show that it runs
    embedded_deliveries=4_000,
)


@dataclass
class Run:
    sizes: Sizes
    dir: Path
    receiver: Receiver
    workers: int = 1
    soak_rate: float | None = None  # events/s for W5; None: 60% of W1's capacity
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    shared: list[str] = field(default_factory=list)  # sections another load disturbed
    _memo: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, rows: list[Row]) -> None:
        for row in rows:
            row.section = section
        self.rows.extend(rows)

    def once(self, key: str, measure: Callable[[], T]) -> T:
        """A figure measured the first time some workload needs it, then reused."""
        if key not in self._memo:
            self._memo[key] = measure()
        return self._memo[key]  # type: ignore[no-any-return]

    def known(self, key: str) -> Any:
        return self._memo.get(key)
