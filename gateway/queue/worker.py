"""arq's worker, made to ride out Redis outages; `gateway/worker.py` gives it its jobs."""

from __future__ import annotations

import asyncio
import logging
import time

from arq.worker import Worker
from redis.exceptions import RedisError

log = logging.getLogger("gateway.worker")


class ResilientWorker(Worker):
    """An arq worker that rides out a Redis outage instead of exiting.

    arq lets a connection error in its poll loop end the worker; here the loop
    waits and tries again (backing off to 5 s), logging once when Redis goes and
    once when it is back. Jobs lost with Redis are found again by the sweeper.
    """

    _down_since: float | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                log.warning("Redis unreachable (%s); waiting for it", type(exc).__name__)
            await asyncio.sleep(min(5.0, 0.2 + (now - self._down_since) / 4))
            return
        if self._down_since is not None:
            log.warning("Redis is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
