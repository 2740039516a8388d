"""Y3, the queue ceiling: arq no-op jobs per second with the project's worker settings
(GATEWAY_WORKER_MAX_JOBS, GATEWAY_WORKER_POLL_DELAY, keep_result 0), one worker on
uvloop as `gateway worker` runs, jobs enqueued first and then drained in burst mode.

(Not named `queue.py`: the receiver scripts run from bench/, where that would
shadow the standard library's queue.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.worker import Worker, func

from bench import loadgen
from bench.context import Run
from bench.harness import REDIS_URL
from bench.report import Row
from gateway.settings import Settings


async def _noop(ctx: dict[str, Any]) -> None:
    return None


async def _measure(jobs: int) -> float:
    settings = Settings()
    queue = f"bench:y3:{uuid.uuid4().hex[:8]}"
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    pool = await create_pool(redis_settings, default_queue_name=queue)
    ids = [f"y3:{queue}:{i}" for i in range(jobs)]
    try:
        for start in range(0, jobs, 500):
            await asyncio.gather(
                *(pool.enqueue_job("noop", _job_id=job_id) for job_id in ids[start : start + 500])
            )
        worker = Worker(
            functions=[func(_noop, name="noop")],
            redis_settings=redis_settings,
            queue_name=queue,
            burst=True,
            max_jobs=settings.worker_max_jobs,
            poll_delay=settings.worker_poll_delay,
            keep_result=0,
            handle_signals=False,
        )
        started = time.perf_counter()
        await worker.main()
        elapsed = time.perf_counter() - started
        await worker.close()
        return jobs / elapsed
    finally:
        await pool.delete(queue, f"{queue}:health-check")
        for start in range(0, jobs, 1000):  # nothing should be left; after a crash, maybe
            chunk = ids[start : start + 1000]
            await pool.delete(
                *(
                    p + i
                    for i in chunk
                    for p in (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
                )
            )
        await pool.aclose()


def measure(run: Run) -> float:
    jobs = run.sizes.y3_jobs
    rate = loadgen.run(_measure(jobs))
    print(f"  Y3 arq no-op jobs: {rate:,.0f}/s ({jobs} jobs)")
    return rate


def ceiling(run: Run) -> float:
    return run.once("y3", lambda: measure(run))


def rows(run: Run) -> list[Row]:
    settings = Settings()
    return [
        Row(
            "Y3 queue ceiling: arq no-op jobs, 1 worker",
            None,
            ceiling(run),
            note=f"max_jobs {settings.worker_max_jobs}, poll "
            f"{settings.worker_poll_delay:g} s, keep_result 0",
        )
    ]
