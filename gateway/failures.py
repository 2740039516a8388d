"""Failed credentials per client address: a wrong API key, a bad inbound signature.

Each address may fail `rate` times a second (with a second's worth at once); past
that, its requests are refused with 429 before any credential is looked at, so
that nobody can guess keys or a source's secret at speed, nor make a source's own
rate limit, which only verified requests spend, refuse its provider. Kept in the
process's memory: checked on every request, it must cost nothing, and with N API
processes an address gets at most N times the rate, which still stops guessing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Addresses remembered at most; past it, those whose failures have all lapsed go.
MAX_TRACKED = 100_000


class FailureLimiter:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._burst = max(0.0, (rate - 1) / rate)  # a second's worth at once
        self._clock = clock
        # The generic cell rate algorithm's "theoretical arrival time" per address.
        self._tat: dict[str, float] = {}

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        tat = self._tat.get(address)
        if tat is None:
            return 0.0
        return max(0.0, tat - self._clock() - self._burst)

    def failed(self, address: str) -> None:
        now = self._clock()
        self._tat[address] = max(self._tat.get(address, now), now) + self._interval
        if len(self._tat) > MAX_TRACKED:
            self._tat = {a: t for a, t in self._tat.items() if t > now}
