"""Y4, the durable ingest yardstick: the rate a bare Starlette route holds (p99 < 50 ms,
no errors) while writing what a publish writes, by asyncpg group commit, and queueing
its job (`durable_app.py`); on the uvicorn settings of `gateway serve`, searched with the
same generator and requests as W2.

Y2 stores nothing, so W2 against Y2 mixes what durability costs with what the gateway
adds; against Y4 it reads as the gateway's own cost. Its database and queue are a
Stack's (migrated as the gateway's, dropped afterwards), whose idle API stays up.
"""

from __future__ import annotations

import sys

from bench import loadgen, ratesearch
from bench.context import Run
from bench.harness import REDIS_URL, Stack, asyncpg_dsn
from bench.procs import Proc
from bench.ratesearch import Search
from bench.receivers import free_port, wait_http
from bench.report import Row


def measure(run: Run) -> Search:
    with Stack(run.dir, "y4") as stack:
        [endpoint] = stack.endpoints([run.receiver.url("y4", "durable", "e0")], "y4.durable")
        port = free_port()
        proc = Proc(
            "y4-durable",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.durable_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            log_dir=run.dir,
            env={
                **stack.env,
                "Y4_DATABASE": asyncpg_dsn(stack.db_url),
                "Y4_REDIS": REDIS_URL,
                "Y4_QUEUE": stack.queue,
                "Y4_ENDPOINT": endpoint,
            },
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/ready", proc=proc)
            print("  Y4 bare Starlette + asyncpg group commit + enqueue:")

            def make(n: int) -> list[loadgen.Request]:
                return loadgen.publish_requests(base, {}, "y4.durable", n)

            return ratesearch.search(make, run.sizes.step_seconds, run.sizes.refine_steps)
        finally:
            proc.stop(10)


def ceiling(run: Run) -> Search:
    return run.once("y4", lambda: measure(run))


def rows(run: Run) -> list[Row]:
    search = ceiling(run)
    best = search.best
    note = f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held"
    if search.generator_limited:
        note += "; the generator fell behind first"
    return [
        Row(
            "Y4 durable ingest: bare Starlette + asyncpg group commit + enqueue, held",
            None,
            search.held,
            note=note,
            details=search.summary(),
        )
    ]
