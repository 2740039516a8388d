"""arq's worker, made to ride out Redis outages and to start ready jobs at once;
`gateway/worker.py` gives it its jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

from gateway.queue.dispatch import wake_channel

log = logging.getLogger("gateway.worker")


class ResilientWorker(Worker):
    """An arq worker that rides out a Redis outage instead of exiting, and that is
    woken by new jobs instead of waiting out its poll delay.

    arq lets a connection error in its poll loop end the worker; here the loop
    waits and tries again (backing off to 5 s), logging once when Redis goes and
    once when it is back. Jobs lost with Redis are found again by the sweeper.

    Between polls arq sleeps its poll delay. Here that sleep is an idle wait that
    a message on the queue's wake channel ends (`ArqDispatcher` sends one after
    queueing a job that is due now): a published event's job starts without
    waiting for the next poll. The poll delay still bounds the wait, for jobs put
    off until later and for wake-ups lost (Pub/Sub keeps nothing for a listener
    that is away).
    """

    _down_since: float | None = None
    _listener: asyncio.Task[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle = self.poll_delay_s
        self.poll_delay_s = 0  # arq's own sleep between polls: the idle wait replaces it
        self._woken = asyncio.Event()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            _stop_if_cancelled(exc)
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                log.warning("Redis unreachable (%s); waiting for it", type(exc).__name__)
            await asyncio.sleep(min(5.0, 0.2 + (now - self._down_since) / 4))
            return
        # A stop (a cancellation) that arrives during the Redis transaction of arq's
        # start_jobs can end there: redis-py turns a watched transaction cut short into
        # a WatchError, which arq takes for a job started elsewhere. The worker then
        # polled on, unstoppable; a queue test hung on it about one run in ten.
        _stop_if_cancelled()
        if self._down_since is not None:
            log.warning("Redis is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
        await self._idle_wait()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # A running job stays in arq's queue until it ends, and arq checks each one it
        # reads again (a transaction with Redis) before reaching the jobs behind it.
        # Those running here are known without asking.
        job_ids = [j for j in job_ids if not self._running_here(j.decode())]
        await super().start_jobs(job_ids)

    def _running_here(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def _idle_wait(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for can lose a cancellation
        # that arrives just as the wake-up does.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._idle):
                await self._woken.wait()
        self._woken.clear()

    async def _listen(self) -> None:
        pubsub = self.pool.pubsub()
        try:
            await pubsub.subscribe(wake_channel(self.queue_name))
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self._woken.set()
        except (RedisError, OSError):
            pass  # polls go on meanwhile; the next idle wait listens again
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await super().close()


def _stop_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise the cancellation of this task that something below caught and turned into
    an error (or dropped): the worker is being stopped."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
