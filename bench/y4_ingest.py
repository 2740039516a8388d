"""Y4, the durable ingest yardstick: the rate a bare Starlette route holds (p99 < 50 ms,
no errors) while writing what a publish writes, by asyncpg group commit, and queueing
its job (`durable_app.py`); on the uvicorn settings of `gateway serve`, searched with the
same generator and requests as W2.

Y2 stores nothing, so W2 against Y2 mixes what durability costs with what the gateway
adds; against Y4 it reads as the gateway's own cost. Its database and queue are a
Stack's (migrated as the gateway's, dropped afterwards), whose idle API stays up.
"""

from __future__ import annotations

from bench import loadgen
from bench.context import Run
from bench.harness import REDIS_URL, Stack, asyncpg_dsn
from bench.ratesearch import Search
from bench.report import Row
from bench.y2_ingest import held_row, search_app


def measure(run: Run) -> Search:
    with Stack(run.dir, "y4") as stack:
        [endpoint] = stack.endpoints([run.receiver.url("y4", "durable", "e0")], "y4.durable")

        def make(base: str, n: int) -> list[loadgen.Request]:
            return loadgen.publish_requests(base, {}, "y4.durable", n)

        print("  Y4 bare Starlette + asyncpg group commit + enqueue:")
        return search_app(
            run,
            "y4-durable",
            "bench.durable_app:app",
            "/ready",
            make,
            env={
                **stack.env,
                "Y4_DATABASE": asyncpg_dsn(stack.db_url),
                "Y4_REDIS": REDIS_URL,
                "Y4_QUEUE": stack.queue,
                "Y4_ENDPOINT": endpoint,
            },
        )


def ceiling(run: Run) -> Search:
    return run.once("y4", lambda: measure(run))


def rows(run: Run) -> list[Row]:
    return [
        held_row(
            "Y4 durable ingest: bare Starlette + asyncpg group commit + enqueue, held",
            ceiling(run),
        )
    ]
