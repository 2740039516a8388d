"""Dispatchers hand a job to the delivery code: arq on Redis, or in-process (embedded).

Dispatch is only ever a hint. The database is the truth: a job that is lost
(Redis flushed, process killed) is found again by the sweeper, and every job id
is deterministic, so dispatching the same work twice queues it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway.groupcall import GroupCall
from gateway.logs import Throttled

# arq and redis are imported by ArqDispatcher itself: the domain services import this
# module for its Protocol and job names, and a management command without Redis
# (or `gateway endpoints list`) should not load a Redis client it never uses.
if TYPE_CHECKING:
    from arq.connections import ArqRedis

log = logging.getLogger("gateway.queue")
_outage = Throttled(log)

DELIVER_EVENT = "deliver_event"  # one event; still run for jobs queued by older versions
DELIVER_EVENTS = "deliver_events"
DELIVER_DELIVERIES = "deliver_deliveries"
# Deliveries leased by their publish: the job carries the lease, so it claims nothing.
DELIVER_LEASED = "deliver_leased"

JobFunction = Callable[..., Awaitable[Any]]


def wake_channel(queue_name: str) -> str:
    """The Pub/Sub channel on which idle workers hear that a job is ready now."""
    return f"{queue_name}:wake"


# Deliveries per job when many are handed out at once (publishes, sweeps, recovers).
DELIVERIES_PER_JOB = 100


class Dispatcher(Protocol):
    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        """Queue a job; False when it could not be queued now (the sweeper will catch up)."""

    async def ping(self) -> bool: ...

    async def close(self, grace: float = 0) -> None: ...


async def dispatch_deliveries(dispatcher: Dispatcher, ids: list[str], tag: str) -> None:
    """Hand many deliveries to the queue in jobs of `DELIVERIES_PER_JOB`.

    `tag` makes the job ids of one hand-out (a sweep, a recover) distinct from the
    next one's, while the same hand-out dispatched twice queues each job once.
    """
    ids = sorted(ids)
    for start in range(0, len(ids), DELIVERIES_PER_JOB):
        chunk = ids[start : start + DELIVERIES_PER_JOB]
        await dispatcher.enqueue(DELIVER_DELIVERIES, chunk, job_id=f"{tag}:{chunk[0]}")


async def dispatch_events(dispatcher: Dispatcher, events: list[tuple[str, int]]) -> None:
    """Hand newly stored events, given as (event id, deliveries), to the queue.

    Events published together go in jobs of about `DELIVERIES_PER_JOB` deliveries:
    under load, a queue job per event would cost a worker more than sending the
    event's deliveries does. An event with more deliveries gets a job of its own.
    The job id is the first event's: each event is stored, and dispatched, once.
    """
    jobs: list[list[str]] = []
    size = DELIVERIES_PER_JOB
    for event_id, deliveries in events:
        if size + deliveries > DELIVERIES_PER_JOB:
            jobs.append([])
            size = 0
        jobs[-1].append(event_id)
        size += deliveries
    await asyncio.gather(
        *(dispatcher.enqueue(DELIVER_EVENTS, ids, job_id=f"evt:{ids[0]}") for ids in jobs)
    )


async def dispatch_leased(dispatcher: Dispatcher, lease: datetime, ids: list[str]) -> None:
    """Hand deliveries that their publish leased (`locked_until` = `lease`) to the queue,
    in jobs of `DELIVERIES_PER_JOB` that carry the lease: the worker that runs one
    sends them without claiming them again. The job id is the first delivery's."""
    await asyncio.gather(
        *(
            dispatcher.enqueue(DELIVER_LEASED, lease, chunk, job_id=f"lease:{chunk[0]}")
            for start in range(0, len(ids), DELIVERIES_PER_JOB)
            for chunk in [ids[start : start + DELIVERIES_PER_JOB]]
        )
    )


# Queues an arq job, as arq's `enqueue_job` does (the same keys, the same job data, and
# nothing if a job of that id is queued or kept), and tells idle workers when it is due
# now: in one round trip, where `enqueue_job` takes three (WATCH, EXISTS, then
# MULTI/EXEC) and the wake-up a fourth. KEYS: the job's key, its result's key, the
# queue; ARGV: the job, its score, its expiry (ms), its id, the wake channel or "".
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return 0
end
redis.call('PSETEX', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], '')
end
return 1
"""
# Jobs queued at the same moment (a publish's, a record's retries) go to Redis in one
# pipeline: one connection and one round trip. As many concurrent calls took as many
# connections from the pool, each one new the first time: a worker's record of 400
# retries spent 1.8 s of CPU setting connections up while fresh jobs waited behind it.
ENQUEUE_BATCH = 500


class ArqDispatcher:
    def __init__(self, redis_url: str, queue_name: str) -> None:
        # No ping at start: the API must come up, and keep accepting events,
        # while Redis is down. Connections are made on first use.
        from redis.exceptions import RedisError

        from gateway.queue.connection import connect

        self.redis: ArqRedis = connect(redis_url, queue_name, connect_timeout=2, timeout=5)
        self._unavailable = (RedisError, OSError)
        self._queue_name = queue_name
        self._wake_channel = wake_channel(queue_name)
        self._enqueue = self.redis.register_script(_ENQUEUE)
        self._batches: GroupCall[tuple[list[str], list[Any]], bool] = GroupCall(
            self._enqueue_batch, ENQUEUE_BATCH
        )

    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
        from arq.jobs import serialize_job
        from arq.utils import timestamp_ms

        now_ms = timestamp_ms()
        defer_ms = round(defer_seconds * 1000) if defer_seconds > 0 else 0
        job = serialize_job(function, args, {}, None, now_ms, serializer=self.redis.job_serializer)
        return await self._batches(
            (
                [job_key_prefix + job_id, result_key_prefix + job_id, self._queue_name],
                [
                    job,
                    now_ms + defer_ms,
                    defer_ms + expires_extra_ms,
                    job_id,
                    # Only a job due now: idle workers then start it without waiting out
                    # their poll delay (`ResilientWorker`).
                    self._wake_channel if defer_ms == 0 else "",
                ],
            )
        )

    async def _enqueue_batch(self, jobs: list[tuple[list[str], list[Any]]]) -> list[bool]:
        """Run `_ENQUEUE` for each job (its keys, its arguments): alone, or pipelined."""
        try:
            if len(jobs) == 1:
                [(keys, args)] = jobs
                await self._enqueue(keys=keys, args=args)
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for keys, args in jobs:
                        await self._enqueue(keys=keys, args=args, client=pipe)
                    await pipe.execute()
        except self._unavailable as exc:
            _outage.warning(
                "enqueue",
                "queue unavailable (%s): jobs are left to the sweeper",
                type(exc).__name__,
            )
            return [False] * len(jobs)
        return [True] * len(jobs)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except self._unavailable:
            return False

    async def close(self, grace: float = 0) -> None:
        await self._batches.close()
        await self.redis.aclose()


class InProcessDispatcher:
    """Embedded mode: jobs run as tasks of this process, at most `max_jobs` at once."""

    def __init__(self, functions: dict[str, JobFunction], ctx: dict[str, Any], max_jobs: int):
        self._functions = functions
        self._ctx = ctx
        self._slots = asyncio.Semaphore(max_jobs)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        if job_id in self._tasks:  # the same job is already waiting or running
            return True
        task = asyncio.create_task(self._run(function, args, defer_seconds), name=job_id)
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return True

    async def _run(self, function: str, args: tuple[Any, ...], defer_seconds: float) -> None:
        if defer_seconds > 0:
            await asyncio.sleep(defer_seconds)
        async with self._slots:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await self._functions[function](self._ctx, *args)
            except Exception:
                log.exception("job %s failed", function)
            finally:
                self._running.discard(task)

    async def ping(self) -> bool:
        return True

    async def close(self, grace: float = 0) -> None:
        """Drop waiting jobs (the database still has them), let running ones finish."""
        for task in list(self._tasks.values()):
            if task not in self._running:
                task.cancel()
        if self._running and grace > 0:
            await asyncio.wait(set(self._running), timeout=grace)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
