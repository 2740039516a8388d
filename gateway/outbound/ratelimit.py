"""Per-endpoint `rate_limit` (deliveries per second), shared by every worker through Redis.

Each delivery reserves a send slot, spaced `1/rate` apart (the generic cell rate
algorithm, with no burst). A slot in the future is not waited for in the job: the
delivery is put back until then, holding its slot, and is not counted as an
attempt. A backlog therefore drains at exactly the endpoint's rate, with one
reservation per delivery however long it waits.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.groupcall import GroupCall
from gateway.logs import Throttled

log = logging.getLogger("gateway.ratelimit")
_outage = Throttled(log)

# KEYS[1] holds the next free slot (unix seconds). Returns the wait for the slot
# this call reserves.
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl = math.ceil((slot - now + interval) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', ttl)
return tostring(slot - now)
"""


class RateLimiter(Protocol):
    async def reserve(self, key: str, rate: float) -> float:
        """Reserve the next send slot; the seconds until it (0 when it is now)."""


class MemoryRateLimiter:
    """Embedded mode: one process, so the slots live in memory."""

    def __init__(self) -> None:
        self._next_slot: dict[str, float] = {}

    async def reserve(self, key: str, rate: float) -> float:
        now = time.time()
        slot = max(self._next_slot.get(key, 0.0), now)
        self._next_slot[key] = slot + 1.0 / rate
        if len(self._next_slot) > 100_000:  # forget endpoints with no reservation ahead
            self._next_slot = {k: v for k, v in self._next_slot.items() if v > now}
        return slot - now


class RedisRateLimiter:
    """Workers share one slot counter per endpoint."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._reserve = redis.register_script(_RESERVE)
        self._prefix = prefix

    async def reserve(self, key: str, rate: float) -> float:
        try:
            wait = await self._reserve(
                keys=[f"{self._prefix}:rate:{key}"], args=[repr(time.time()), repr(1.0 / rate)]
            )
        except (RedisError, OSError) as exc:
            # Fail open: a Redis outage must not stop deliveries.
            _outage.warning(
                "limiter", "rate limiter unavailable, sending anyway: %s", type(exc).__name__
            )
            return 0.0
        return max(0.0, float(wait))


# Admission control for incoming requests (per API key, per inbound source): the same
# cell-rate algorithm, but a request over the rate is refused rather than put off.
# Each KEYS[i] holds a theoretical arrival time, with its interval and burst in
# ARGV[2i] and ARGV[2i+1] (ARGV[1] is now). Returns, per key, the seconds to wait,
# 0 if admitted. A key may come more than once: each is a request of its own.
_ADMIT = """
local now = tonumber(ARGV[1])
local waits = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local over = tat - now - burst
  if over > 0 then
    waits[i] = tostring(over)
  else
    local ttl = math.ceil((tat - now + interval) * 1000) + 1000
    redis.call('SET', key, tostring(tat + interval), 'PX', ttl)
    waits[i] = '0'
  end
end
return waits
"""


class Admission(Protocol):
    async def admit(self, key: str, rate: float) -> float:
        """0 when a request may proceed, else the seconds until one may (Retry-After)."""


def _burst(rate: float) -> float:
    # A second's worth of requests may arrive at once.
    return max(0.0, (rate - 1) / rate)


class MemoryAdmission:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def admit(self, key: str, rate: float) -> float:
        now = time.time()
        tat = max(self._tat.get(key, 0.0), now)
        over = tat - now - _burst(rate)
        if over > 0:
            return over
        self._tat[key] = tat + 1.0 / rate
        if len(self._tat) > 100_000:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return 0.0


class RedisAdmission:
    """Every API process shares the counters. The requests that arrive together are
    admitted in one script call (`gateway.groupcall`): a round trip per request
    cost the API more CPU than storing its event."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._admit = redis.register_script(_ADMIT)
        self._prefix = prefix
        self._group: GroupCall[tuple[str, float], float] = GroupCall(self._admit_many, 500)

    async def admit(self, key: str, rate: float) -> float:
        return await self._group((key, rate))

    async def _admit_many(self, requests: list[tuple[str, float]]) -> list[float]:
        args = [repr(time.time())]
        for _, rate in requests:
            args += [repr(1.0 / rate), repr(_burst(rate))]
        try:
            waits = await self._admit(
                keys=[f"{self._prefix}:admit:{key}" for key, _ in requests], args=args
            )
        except (RedisError, OSError) as exc:
            _outage.warning(
                "admission", "request rate limiter unavailable, admitting: %s", type(exc).__name__
            )
            return [0.0] * len(requests)
        return [max(0.0, float(wait)) for wait in waits]
