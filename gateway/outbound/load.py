"""Attempts per endpoint: each waits its turn for the endpoint's connections, and a
saturated endpoint's further attempts are put off.

An endpoint may have `connections_per_host` attempts under way at once. Waiting
for one of them happens here, before an attempt takes one of the process's
attempt slots, so that an endpoint which answers slowly (or not at all) holds at
most its own connections' worth of slots, never the slots every other endpoint
needs. An attempt that waits more than a second for its turn is put off (not
counted as an attempt); so are further attempts to an endpoint that has all its
connections busy and takes more than a second to answer. Put-off attempts are
spaced at the rate the endpoint has been answering, so that they come back
about when it can take them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

# An endpoint whose attempts take longer than this, with every connection busy, is
# saturated; a fast one at its limit only queues for a moment and is left alone.
SLOW = 1.0
# Endpoints remembered (their typical answer time); idle ones are forgotten beyond it.
MAX_TRACKED = 10_000


class Busy(Exception):
    """The endpoint has no connection free for this attempt: put it off this long."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"endpoint busy; put off {seconds:.1f}s")
        self.seconds = seconds


@dataclass
class _Load:
    connections: asyncio.Semaphore
    last_end: float  # when the last attempt ended (or tracking began)
    waiting_or_sending: int = 0
    typical: float = 0.0  # moving average of attempt durations, in seconds
    next_slot: float = 0.0  # when the next put-off attempt is due


class EndpointLoads:
    def __init__(self, connections_per_endpoint: int, clock: Callable[[], float] = time.monotonic,
                 max_wait: float = SLOW) -> None:
        self._cap = connections_per_endpoint
        self._clock = clock
        self._max_wait = max_wait
        self._loads: dict[str, _Load] = {}

    def put_off(self, endpoint_id: str) -> float:
        """Seconds to put an attempt to this endpoint off by; 0 to go ahead."""
        load = self._loads.get(endpoint_id)
        if load is None or load.waiting_or_sending < self._cap:
            return 0.0
        pace = self._pace(load)
        if pace <= SLOW:
            return 0.0
        return self._next_slot(load, pace)

    @asynccontextmanager
    async def attempt(self, endpoint_id: str) -> AsyncIterator[None]:
        """Hold one of the endpoint's connections; raises Busy when the endpoint is
        saturated, or after waiting too long for one."""
        wait = self.put_off(endpoint_id)
        if wait > 0:
            raise Busy(wait)
        load = self._loads.get(endpoint_id)
        if load is None:
            if len(self._loads) >= MAX_TRACKED:
                self._forget_idle()
            load = self._loads[endpoint_id] = _Load(asyncio.Semaphore(self._cap),
                                                    last_end=self._clock())
        load.waiting_or_sending += 1
        try:
            if load.connections.locked():  # a deadline only when there is a wait
                try:
                    async with asyncio.timeout(self._max_wait):
                        await load.connections.acquire()
                except TimeoutError:
                    raise Busy(self._next_slot(load, max(self._pace(load), SLOW))) from None
            else:
                await load.connections.acquire()
            start = self._clock()
            try:
                yield
            finally:
                load.connections.release()
                end = self._clock()
                duration = end - start
                load.typical = (duration if not load.typical
                                else 0.8 * load.typical + 0.2 * duration)
                load.last_end = end
        finally:
            load.waiting_or_sending -= 1

    def _pace(self, load: _Load) -> float:
        # Until an attempt ends, the time since the last one did is the best estimate.
        return max(load.typical, self._clock() - load.last_end)

    def _next_slot(self, load: _Load, pace: float) -> float:
        now = self._clock()
        load.next_slot = max(load.next_slot, now) + pace / self._cap
        return load.next_slot - now

    def _forget_idle(self) -> None:
        self._loads = {k: v for k, v in self._loads.items() if v.waiting_or_sending}
