"""The arq worker (`gateway worker`): delivery jobs and the sweeper cron, tuned for throughput.

arq's defaults (poll every 0.5 s, 10 jobs at once) cap a worker near 200 jobs/s
and add up to half a second of latency; one job here fans an event out to all of
its endpoints, so the limits that matter are HTTP concurrency and the poll delay.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import cron
from arq.worker import Worker, func

from gateway import gctune
from gateway.crypto import load_box
from gateway.db import create_engine, create_sessionmaker
from gateway.outbound.context import DeliveryContext
from gateway.outbound.tasks import (
    CTX_KEY,
    FUNCTIONS,
    build_delivery_context,
    purge_expired,
    sweep,
)
from gateway.queue.connection import arq_settings
from gateway.queue.dispatch import ArqDispatcher
from gateway.queue.worker import ResilientWorker
from gateway.settings import Settings
from gateway.tracing import setup_tracing

log = logging.getLogger("gateway.worker")


def purge_minutes(interval: int) -> set[int]:
    """The minutes of the hour the purge runs at: minute 17, and every `interval` from it."""
    return {(17 + i) % 60 for i in range(0, 60, interval)}


def create_worker(settings: Settings) -> Worker:
    if settings.redis_url is None:
        raise ValueError("GATEWAY_REDIS_URL must be set to run a worker")
    redis_url = settings.redis_url
    job_timeout = settings.job_timeout or 60.0

    box = load_box(settings)  # before anything starts: a bad key stops the worker here
    setup_tracing("hookgate-worker")

    async def on_startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings, pre_ping=False)
        ctx["engine"] = engine
        dispatcher = ArqDispatcher(redis_url, settings.queue_name)
        ctx[CTX_KEY] = build_delivery_context(
            settings, create_sessionmaker(engine), dispatcher, box
        )
        gctune.settle()
        log.info(
            "worker ready: queue %s, %d jobs at once, %d attempts in flight",
            settings.queue_name,
            settings.worker_max_jobs,
            settings.delivery_concurrency,
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        gw: DeliveryContext | None = ctx.get(CTX_KEY)
        if gw is not None:
            await gw.drain(grace=settings.delivery_timeout + 5)
            await gw.client.close()
            await gw.dispatcher.close()
        if "engine" in ctx:
            await ctx["engine"].dispose()

    step = max(1, min(30, int(settings.sweep_interval)))
    return ResilientWorker(
        functions=[
            func(f, name=name, timeout=job_timeout)  # type: ignore[arg-type]
            for name, f in FUNCTIONS.items()
        ],
        cron_jobs=[
            cron(
                sweep,
                name="sweep",
                second=set(range(0, 60, step)),
                run_at_startup=True,
                unique=True,
                timeout=job_timeout,
                keep_result=0,
            ),
            # Every `purge_interval_minutes` from minute 17 (hourly by default), in
            # batches; `unique` makes one worker of many do it.
            cron(
                purge_expired,
                name="purge_expired",
                minute=purge_minutes(settings.purge_interval_minutes),
                second=0,
                unique=True,
                timeout=3600,
                keep_result=0,
            ),
        ],
        redis_settings=arq_settings(redis_url),
        queue_name=settings.queue_name,
        max_jobs=settings.worker_max_jobs,
        poll_delay=settings.worker_poll_delay,
        job_timeout=job_timeout,
        keep_result=0,
        keep_result_forever=False,
        max_tries=3,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        handle_signals=True,
        # On SIGTERM, attempts in flight get to finish before the worker exits.
        job_completion_wait=int(settings.delivery_timeout) + 5,
    )
