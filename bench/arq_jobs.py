"""Y3, the queue yardstick: arq no-op jobs per second with the project's worker settings."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func

from bench.harness import REDIS_URL
from gateway.settings import Settings


async def _noop(ctx: dict[str, Any]) -> None:
    return None


async def _run(jobs: int) -> float:
    settings = Settings()
    queue = f"bench:y3:{uuid.uuid4().hex[:8]}"
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    pool = await create_pool(redis_settings, default_queue_name=queue)
    try:
        for start in range(0, jobs, 500):
            batch = range(start, min(jobs, start + 500))
            await asyncio.gather(*(pool.enqueue_job("noop") for _ in batch))
        worker = Worker(functions=[func(_noop, name="noop")], redis_settings=redis_settings,
                        queue_name=queue, burst=True, max_jobs=settings.worker_max_jobs,
                        poll_delay=settings.worker_poll_delay, keep_result=0,
                        handle_signals=False)
        started = time.perf_counter()
        await worker.main()
        elapsed = time.perf_counter() - started
        await worker.close()
        return jobs / elapsed
    finally:
        await pool.delete(queue)
        await pool.aclose()


def run(jobs: int = 10_000) -> dict[str, float]:
    rate = asyncio.run(_run(jobs))
    print(f"Y3 arq no-op jobs:    {rate:,.0f}/s ({jobs} jobs, worker_max_jobs and "
          "worker_poll_delay as configured, keep_result 0)")
    return {"y3_arq_jobs_per_s": rate}
