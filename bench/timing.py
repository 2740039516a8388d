"""Timing one call in-process, for the benches that compare libraries."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call(fn: Callable[[], object], n: int, rounds: int = 7) -> float:
    """Median seconds per call over `rounds` rounds of n calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)
