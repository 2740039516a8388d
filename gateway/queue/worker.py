"""arq's worker, made to ride out Redis outages and to start ready jobs at once;
`gateway/worker.py` gives it its jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.queue.dispatch import wake_channel

log = logging.getLogger("gateway.worker")

# Takes up to ARGV[3] of the polled jobs at once, as arq's `start_jobs` takes each in
# four round trips (WATCH its in-progress key, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC):
# a job is taken if it is still queued, due (score <= ARGV[1], now in ms) and not in
# progress anywhere, by setting its in-progress key for ARGV[2] ms. KEYS: the queue,
# then each job's in-progress key; ARGV[4...]: the job ids, in the same order. Returns
# the taken jobs' ids and scores, in turn.
_TAKE = """
local taken = {}
local limit = tonumber(ARGV[3])
for i = 2, #KEYS do
  if #taken >= 2 * limit then
    break
  end
  local job_id = ARGV[i + 2]
  local score = redis.call('ZSCORE', KEYS[1], job_id)
  if score and tonumber(score) <= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('PSETEX', KEYS[i], ARGV[2], '1')
    taken[#taken + 1] = job_id
    taken[#taken + 1] = score
  end
end
return taken
"""


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
    _take: AsyncScript | None = None

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
        """Start as many of the polled jobs as there are free slots, taken in one round
        trip (`_TAKE`); arq takes them one at a time, in four round trips each, which
        cost a worker more CPU than the job's reads from the database."""
        # A running job stays in arq's queue until it ends: those running here are
        # known without asking.
        ids = [j.decode() for j in job_ids]
        ids = [job_id for job_id in ids if not self._running_here(job_id)]
        room = self.max_jobs - self.job_counter
        if not ids or room <= 0:
            return
        if self._take is None:
            self._take = self.pool.register_script(_TAKE)
        taken = await self._take(
            keys=[self.queue_name, *(in_progress_key_prefix + job_id for job_id in ids)],
            args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), room, *ids],
        )
        for job_id, score in zip(taken[::2], taken[1::2], strict=True):
            await self.sem.acquire()  # free: `room` counted the slots
            self.job_counter += 1
            job_id = job_id.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

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
