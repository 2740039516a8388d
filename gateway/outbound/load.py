"""Attempts in flight per endpoint, so that a saturated endpoint's further attempts are put off.

An endpoint that holds all the connections it may have (`connections_per_host`)
and takes more than a second to answer (slow, or not answering at all) would
otherwise collect attempts waiting for a connection, each holding one of the
process's attempt slots, which every other endpoint needs too. Its further
attempts are put off instead (not counted as attempts), spaced at the rate it
has been answering, so that they come back about when it can take them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# An endpoint whose attempts take longer than this, with every connection busy, is
# saturated; a fast one at its limit only queues for a moment and is left alone.
SLOW = 1.0
# Endpoints remembered (their typical answer time); idle ones are forgotten beyond it.
MAX_TRACKED = 10_000


@dataclass
class _Load:
    last_end: float  # monotonic; when the last attempt ended (or tracking began)
    in_flight: int = 0
    typical: float = 0.0  # moving average of attempt durations, in seconds
    next_slot: float = 0.0  # monotonic; when the next put-off attempt is due


class EndpointLoads:
    def __init__(self, connections_per_endpoint: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cap = connections_per_endpoint
        self._clock = clock
        self._loads: dict[str, _Load] = {}

    def put_off(self, endpoint_id: str) -> float:
        """Seconds to put an attempt to this endpoint off by; 0 to send it now."""
        load = self._loads.get(endpoint_id)
        if load is None or load.in_flight < self._cap:
            return 0.0
        now = self._clock()
        # Until an attempt ends, the time since the last one did is the best estimate.
        pace = max(load.typical, now - load.last_end)
        if pace <= SLOW:
            return 0.0
        load.next_slot = max(load.next_slot, now) + pace / self._cap
        return load.next_slot - now

    @contextmanager
    def attempt(self, endpoint_id: str) -> Iterator[None]:
        start = self._clock()
        load = self._loads.get(endpoint_id)
        if load is None:
            if len(self._loads) >= MAX_TRACKED:
                self._forget_idle()
            load = self._loads[endpoint_id] = _Load(last_end=start)
        load.in_flight += 1
        try:
            yield
        finally:
            end = self._clock()
            load.in_flight -= 1
            duration = end - start
            load.typical = duration if not load.typical else 0.8 * load.typical + 0.2 * duration
            load.last_end = end

    def _forget_idle(self) -> None:
        self._loads = {k: v for k, v in self._loads.items() if v.in_flight}
