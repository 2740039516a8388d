"""The queue's own Redis scripts keep arq's contract: a job queued once per id, readable
by arq's worker, idle workers woken only for work due now, and each queued job started
once by however many workers poll it (`gateway/queue/dispatch.py`, `worker.py`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from arq.jobs import Job, JobStatus
from arq.worker import func
from redis.asyncio import Redis

from gateway.queue.dispatch import ArqDispatcher, wake_channel
from gateway.queue.worker import ResilientWorker
from tests.support.gateway import PG_MISSING, REDIS_URL, free_port

pytestmark = pytest.mark.skipif(PG_MISSING is not None, reason=str(PG_MISSING))


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of the test's own; its jobs' ids start with its name, so that only its
    keys are deleted afterwards (other tests share the Redis database)."""
    name = f"gwtest-queue-{uuid.uuid4().hex[:8]}"
    yield name

    async def clean() -> None:
        client: Redis = Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(f"arq:*:{name}*")]
        await client.delete(name, *keys)
        await client.aclose()

    asyncio.run(clean())


def run(test: Callable[[str], Coroutine[Any, Any, None]]) -> Callable[[str], None]:
    def sync(queue: str) -> None:
        asyncio.run(test(queue))

    sync.__name__ = test.__name__
    return sync


@run
async def test_a_job_is_queued_once_per_id_and_reads_as_arqs_own(queue: str) -> None:
    dispatcher = ArqDispatcher(REDIS_URL, queue)
    job_id = f"{queue}:job"
    try:
        assert await dispatcher.enqueue("deliver_events", ["evt_1", "evt_2"], job_id=job_id)
        assert await dispatcher.enqueue("deliver_events", ["evt_other"], job_id=job_id)
        assert await dispatcher.redis.zcard(queue) == 1
        job = Job(job_id, dispatcher.redis, _queue_name=queue)
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None
        assert (info.function, info.args) == ("deliver_events", (["evt_1", "evt_2"],))
    finally:
        await dispatcher.close()


@run
async def test_only_a_job_due_now_wakes_the_workers(queue: str) -> None:
    dispatcher = ArqDispatcher(REDIS_URL, queue)
    listener = dispatcher.redis.pubsub()
    await listener.subscribe(wake_channel(queue))
    try:
        await dispatcher.enqueue(
            "deliver_events", ["evt_later"], job_id=f"{queue}:later", defer_seconds=30
        )
        assert await listener.get_message(ignore_subscribe_messages=True, timeout=0.5) is None
        score = await dispatcher.redis.zscore(queue, f"{queue}:later")
        assert score is not None and score > (await _now_ms(dispatcher.redis)) + 25_000
        await dispatcher.enqueue("deliver_events", ["evt_now"], job_id=f"{queue}:now")
        message = await listener.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["type"] == "message"
    finally:
        await listener.aclose()
        await dispatcher.close()


@run
async def test_jobs_queued_at_once_share_one_connection(queue: str) -> None:
    """A record's retries, or a publish's jobs, are queued together: one pipeline on one
    connection, where one connection each cost a worker 1.8 s of CPU for 400 retries."""
    dispatcher = ArqDispatcher(REDIS_URL, queue)
    try:
        done = await asyncio.gather(
            *(
                dispatcher.enqueue("work", n, job_id=f"{queue}:{n}", defer_seconds=n % 2 * 60)
                for n in range(300)
            ),
            # The same id again, in the same pipeline: queued once.
            dispatcher.enqueue("work", -1, job_id=f"{queue}:7"),
        )
        assert all(done)
        assert await dispatcher.redis.zcard(queue) == 300
        now = await _now_ms(dispatcher.redis)
        later = await dispatcher.redis.zscore(queue, f"{queue}:1")
        assert later is not None and later > now + 50_000
        info = await Job(f"{queue}:7", dispatcher.redis, _queue_name=queue).info()
        assert info is not None and info.args == (7,)
        # The first call went alone, the other 300 in one pipeline: at most two made.
        pool = dispatcher.redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
    finally:
        await dispatcher.close()


@run
async def test_jobs_queued_together_while_redis_is_away_are_each_refused(queue: str) -> None:
    dispatcher = ArqDispatcher(f"redis://127.0.0.1:{free_port()}/0", queue)
    try:
        done = await asyncio.gather(
            *(dispatcher.enqueue("work", n, job_id=f"{queue}:{n}") for n in range(50))
        )
        assert done == [False] * 50
    finally:
        await dispatcher.close()


@run
async def test_two_workers_polling_one_queue_start_each_job_once(queue: str) -> None:
    dispatcher = ArqDispatcher(REDIS_URL, queue)
    try:
        # One job is already running on some other worker: it is left to that worker.
        runs = await _run_jobs(dispatcher, queue, jobs=60, held=1, workers=2, max_jobs=7)
        assert sorted(runs) == list(range(1, 60))
        assert await dispatcher.redis.zscore(queue, f"{queue}:0") is not None
    finally:
        await dispatcher.close()


@run
async def test_jobs_held_elsewhere_at_the_head_of_the_queue_do_not_stall_a_worker(
    queue: str,
) -> None:
    """More jobs at the head of the queue run on other workers than this one has slots:
    it starts the ready jobs behind them."""
    dispatcher = ArqDispatcher(REDIS_URL, queue)
    try:
        runs = await _run_jobs(dispatcher, queue, jobs=10, held=5, workers=1, max_jobs=2)
        assert sorted(runs) == [5, 6, 7, 8, 9]
    finally:
        await dispatcher.close()


async def _run_jobs(
    dispatcher: ArqDispatcher, queue: str, *, jobs: int, held: int, workers: int, max_jobs: int
) -> list[int]:
    """Queue `jobs` jobs, the first `held` of them marked in progress on "another worker",
    run `workers` workers until every other job has run, and return what ran (job n runs
    with n)."""
    runs: list[int] = []
    all_ran = asyncio.Event()

    async def work(_ctx: dict[str, Any], n: int) -> None:
        runs.append(n)
        if len(runs) == jobs - held:
            all_ran.set()
        await asyncio.sleep(0.01)  # jobs overlap, so that every worker takes some

    for n in range(jobs):
        await dispatcher.enqueue("work", n, job_id=f"{queue}:{n}")
    for n in range(held):
        await dispatcher.redis.psetex(f"arq:in-progress:{queue}:{n}", 60_000, b"1")
    running = [
        ResilientWorker(
            [func(work, name="work")],  # type: ignore[arg-type]
            redis_pool=dispatcher.redis,
            queue_name=queue,
            poll_delay=0.05,
            max_jobs=max_jobs,
            handle_signals=False,
            keep_result=0,
        )
        for _ in range(workers)
    ]
    polling = [asyncio.create_task(w.main()) for w in running]
    try:
        await asyncio.wait_for(all_ran.wait(), 30)
        for w in running:  # the last jobs end (recorded in Redis) before the workers stop
            await asyncio.gather(*list(w.tasks.values()), return_exceptions=True)
    finally:
        for task in polling:
            task.cancel()
        await asyncio.gather(*polling, return_exceptions=True)
        for w in running:
            await w.close()
    return runs


async def _now_ms(client: Redis) -> float:
    seconds, micros = await client.time()
    return seconds * 1000 + micros / 1000
