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

# Marks in progress the jobs of a poll that no worker has started and that are still
# due, at most ARGV[3] of them, as arq's `start_jobs` does for each job in four round
# trips (WATCH, EXISTS, ZSCORE, MULTI/EXEC), one job after another: here one round trip
# for them all. KEYS: the queue, then each job's in-progress key; ARGV: now (ms), the
# in-progress timeout (ms), the most to start, then each job's id. Returns the started
# ids, each followed by its score.
# Jobs started by one poll at most; a poll that starts this many polls again at once.
# Started all at once, a backlog went to the first worker to poll, and the attempts of
# hundreds of jobs queued in one process for their endpoints' turns (`load.py`) while
# another worker idled.
START_AT_ONCE = 10

_START = """
local started = {}
local now = tonumber(ARGV[1])
local most = tonumber(ARGV[3])
for i = 2, #KEYS do
  if #started >= 2 * most then
    break
  end
  local id = ARGV[i + 2]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= now then
      redis.call('PSETEX', KEYS[i], ARGV[2], '1')
      started[#started + 1] = id
      started[#started + 1] = score
    end
  end
end
return started
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

    The jobs that a poll finds are started together, in one script call (`_START`).
    """

    _down_since: float | None = None
    _listener: asyncio.Task[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle = self.poll_delay_s
        self._more_ready = False  # the last poll left ready jobs: `START_AT_ONCE`
        self.poll_delay_s = 0  # arq's own sleep between polls: the idle wait replaces it
        self._woken = asyncio.Event()
        self._start: AsyncScript | None = None  # the pool is made in `main`

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
        if self._more_ready:
            self._more_ready = False
            await asyncio.sleep(0)  # let the jobs just started begin, then poll again
        else:
            await self._idle_wait()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # A running job stays in arq's queue until it ends, and arq checks each one it
        # reads again before reaching the jobs behind it. Those running here are known
        # without asking.
        wanted = [j for j in (raw.decode() for raw in job_ids) if not self._running_here(j)]
        if not wanted:
            return
        # A slot for each job to start: the first waited for, as in arq, then those free
        # now. Every job read goes to the script, which skips those started elsewhere:
        # the first few may all be running on another worker while later ones wait.
        await self.sem.acquire()
        slots = 1
        while slots < min(len(wanted), START_AT_ONCE) and not self.sem.locked():
            await self.sem.acquire()
            slots += 1
        if self._start is None:
            self._start = self.pool.register_script(_START)
        try:
            started = await self._start(
                keys=[self.queue_name, *(in_progress_key_prefix + j for j in wanted)],
                args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), slots, *wanted],
            )
        except BaseException:
            for _ in range(slots):
                self.sem.release()
            raise
        for i in range(0, len(started), 2):
            job_id, score = started[i].decode(), int(float(started[i + 1]))
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
        for _ in range(slots - len(started) // 2):  # slots left unused
            self.sem.release()
        self._more_ready = len(started) // 2 == START_AT_ONCE

    def _running_here(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def _idle_wait(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), self._idle)
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
