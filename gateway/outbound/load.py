"""Attempts in flight, per endpoint, per tenant and per process: endpoints that answer
slowly, or never, cannot hold what the endpoints that answer need.

The process has `delivery_concurrency` slots, in two lanes:

- **Fast.** An attempt to an endpoint not known to be slow takes a slot (waiting for
  one if all are taken). If it is still unanswered after `SLOW` seconds it moves to
  the slow lane and gives its slot back, so no slot is held longer than that, by
  anyone: however many endpoints hang, the one that answers waits at most that
  long for a slot, and in practice not at all.
- **Slow.** An endpoint is slow while its answers typically take longer than `SLOW`,
  or one of its attempts has gone that long unanswered. Its attempts start in the
  slow lane, and only while the endpoint holds fewer than `slow_per_endpoint`
  attempts, its tenant less than a quarter of the lane, and the lane is less than
  half the process's slots. Otherwise the attempt is put off (`Busy`, not counted
  as an attempt), spaced at the rate the endpoint answers, so that it comes back
  about when the endpoint can take it.

Per endpoint, at most `connections_per_endpoint` attempts are under way at once. An
attempt waits for its endpoint's turn while the endpoint's queue goes round fast enough
to reach it within `MAX_TURN_WAIT`, and is put off otherwise (checked every `max_wait`).
Waiting for a turn happens before a slot is taken. (There is no slow start: a window that had
to be earned, and shrank at a slow answer, held healthy endpoints back whenever the
worker itself was busy, and bought nothing the slow lane does not already give.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# An attempt unanswered for this long is slow; so is an endpoint whose answers take it.
SLOW = 1.0
# The longest an attempt waits for its endpoint's turn, even while the endpoint answers:
# the job that holds it has a deadline (`job_timeout`, at least 2 x the delivery timeout
# + 10 s, so that this wait and then the attempt itself fit within it).
MAX_TURN_WAIT = 10.0
# Endpoints remembered (their typical answer time); idle ones are forgotten beyond it.
MAX_TRACKED = 10_000


class Busy(Exception):
    """The endpoint cannot take this attempt now: put it off this long."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"endpoint busy; put off {seconds:.1f}s")
        self.seconds = seconds


@dataclass
class _Load:
    tenant: str | None
    last_end: float  # when the last attempt ended (or tracking began)
    in_flight: int = 0
    finished: int = 0  # attempts ended, ever: waiters for a turn see them go round
    sending: int = 0  # attempts sent and not yet answered (in_flight counts waiting ones)
    sending_since: float = 0.0  # when `sending` last went from 0 to 1
    typical: float = 0.0  # moving average of answer times, in seconds
    next_slot: float = 0.0  # when the next put-off attempt is due
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class Admitted:
    """An admitted attempt. `sending()` holds its place in a lane while it sends."""

    def __init__(self, loads: EndpointLoads, load: _Load, slow: bool) -> None:
        self._loads = loads
        self._load = load
        self.slow = slow  # in the slow lane (admitted there, or moved there while sending)
        self.sent_at: float | None = None  # when it had its slot and began to send

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        loads, load = self._loads, self._load
        timer = None
        if not self.slow:
            await loads._fast.acquire()
            timer = asyncio.get_running_loop().call_later(loads._slow_after, self._to_slow_lane)
        self.sent_at = loads._clock()
        if not load.sending:
            load.sending_since = self.sent_at
        load.sending += 1
        try:
            yield
        finally:
            load.sending -= 1
            if timer is not None:
                timer.cancel()
                if not self.slow:
                    loads._fast.release()

    def _to_slow_lane(self) -> None:
        self.slow = True
        self._loads._fast.release()
        self._loads._enter_slow(self._load)


class EndpointLoads:
    def __init__(
        self,
        connections_per_endpoint: int,
        clock: Callable[[], float] = time.monotonic,
        max_wait: float = SLOW,
        slots: int = 1_000_000,
        slow_after: float = SLOW,
    ) -> None:
        self._cap = connections_per_endpoint
        self._clock = clock
        self._max_wait = max_wait
        self._slow_after = slow_after
        self._fast = asyncio.Semaphore(slots)
        self._slow_budget = max(1, slots // 2)
        self._tenant_slow_budget = max(1, self._slow_budget // 4)
        self._slow_per_endpoint = max(1, connections_per_endpoint // 10)
        self._slow = 0
        self._slow_by_tenant: Counter[str] = Counter()
        self._loads: dict[str, _Load] = {}

    @asynccontextmanager
    async def attempt(
        self, endpoint_id: str, tenant_id: str | None = None
    ) -> AsyncIterator[Admitted]:
        """Admit an attempt to the endpoint; raises Busy when it must be put off."""
        load = self._load(endpoint_id, tenant_id)
        slow = self._is_slow(load)
        if slow:
            self._admit_slow(load)
        else:
            await self._turn(load)
        admitted = Admitted(self, load, slow)
        try:
            yield admitted
        finally:
            end = self._clock()
            if admitted.slow:
                self._leave_slow(load)
            # Only the time the endpoint had the request says how it answers: waiting
            # for a slot (or for a rate limit) before sending is the gateway's.
            if admitted.sent_at is None:
                self._ended(load, 0.0, None)
            else:
                self._ended(load, end - admitted.sent_at, end)

    # admission

    def _admit_slow(self, load: _Load) -> None:
        tenant_full = (
            load.tenant is not None
            and self._slow_by_tenant[load.tenant] >= self._tenant_slow_budget
        )
        if (
            load.in_flight >= self._slow_per_endpoint
            or tenant_full
            or self._slow >= self._slow_budget
        ):
            raise Busy(self._next_slot(load, max(self._pace(load), SLOW)))
        load.in_flight += 1
        self._enter_slow(load)

    async def _turn(self, load: _Load) -> None:
        """Wait for one of the endpoint's attempts; Busy once the endpoint has gone
        `max_wait` without ending one, or its queue would not drain at the pace seen
        within `MAX_TURN_WAIT` of the start of the wait."""
        if not load.waiters and load.in_flight < self._cap:
            load.in_flight += 1
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        load.waiters.append(turn)
        give_up = loop.time() + MAX_TURN_WAIT
        try:
            while True:
                finished, since = load.finished, loop.time()
                await asyncio.wait([turn], timeout=self._max_wait)
                if turn.done():
                    return
                # Its turns still go round, fast enough for the whole queue to have
                # them before `give_up`: the wait is the gateway's own (a worker that
                # took on a large backlog), and putting those attempts off, spaced a
                # second apart, only slowed the backlog down (to 50 a second per
                # endpoint in W1's drains with two workers).
                went_round = load.finished - finished
                now = loop.time()
                if (
                    not went_round
                    or self._is_slow(load)
                    or len(load.waiters) * (now - since) / went_round > give_up - now
                ):
                    break
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._ended(load, 0.0, None)  # handed over, never used: give it back
            elif turn in load.waiters:
                load.waiters.remove(turn)
            raise
        load.waiters.remove(turn)
        turn.cancel()
        # Spaced at the pace the endpoint answers: a second or more when it stopped
        # answering, its typical answer time while it answers (floored at a second, that
        # came to one attempt a second per connection: 50 a second for an endpoint that
        # took thousands).
        raise Busy(self._next_slot(load, self._pace(load)))

    def _is_slow(self, load: _Load) -> bool:
        if load.typical > SLOW:
            return True
        unanswered_since = max(load.last_end, load.sending_since)
        return load.sending > 0 and self._clock() - unanswered_since > SLOW

    # bookkeeping

    def _enter_slow(self, load: _Load) -> None:
        self._slow += 1
        if load.tenant is not None:
            self._slow_by_tenant[load.tenant] += 1

    def _leave_slow(self, load: _Load) -> None:
        self._slow -= 1
        if load.tenant is not None:
            self._slow_by_tenant[load.tenant] -= 1
            if not self._slow_by_tenant[load.tenant]:
                del self._slow_by_tenant[load.tenant]

    def _ended(self, load: _Load, duration: float, end: float | None) -> None:
        load.in_flight -= 1
        load.finished += 1
        if end is not None:
            load.typical = duration if not load.typical else 0.8 * load.typical + 0.2 * duration
            load.last_end = end
        # Hand freed turns straight to the next waiters (counted for them here).
        while load.waiters and load.in_flight < self._cap:
            turn = load.waiters.popleft()
            if not turn.done():
                load.in_flight += 1
                turn.set_result(None)

    def _load(self, endpoint_id: str, tenant_id: str | None) -> _Load:
        load = self._loads.get(endpoint_id)
        if load is None:
            if len(self._loads) >= MAX_TRACKED:
                self._loads = {k: v for k, v in self._loads.items() if v.in_flight}
            load = self._loads[endpoint_id] = _Load(tenant_id, last_end=self._clock())
        return load

    def _pace(self, load: _Load) -> float:
        # Until an attempt ends, the time since the last one did is the best estimate.
        return max(load.typical, self._clock() - load.last_end)

    def _next_slot(self, load: _Load, pace: float) -> float:
        now = self._clock()
        per_turn = pace / max(1, self._slow_per_endpoint if self._is_slow(load) else self._cap)
        load.next_slot = max(load.next_slot, now) + per_turn
        return load.next_slot - now
