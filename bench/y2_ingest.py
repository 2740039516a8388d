"""Y2, the ingest ceiling: the rate a no-op FastAPI POST route holds (p99 < 50 ms, no
errors), on the uvicorn settings of `gateway serve` (one process, uvloop,
httptools, no access log), searched with the same generator and requests as W2."""

from __future__ import annotations

import sys

from bench import loadgen, ratesearch
from bench.context import Run
from bench.procs import Proc
from bench.ratesearch import Search
from bench.receivers import free_port, wait_http
from bench.report import Row


def measure(run: Run) -> Search:
    port = free_port()
    proc = Proc(
        "y2-noop",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.noop_app:app",
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
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/docs", proc=proc)
        print("  Y2 no-op FastAPI route:")

        def make(n: int) -> list[loadgen.Request]:
            requests = loadgen.publish_requests(base, {}, "y2.noop", n)
            for r in requests:
                r.url = f"{base}/noop"
            return requests

        return ratesearch.search(make, run.sizes.step_seconds, run.sizes.refine_steps)
    finally:
        proc.stop(10)


def ceiling(run: Run) -> Search:
    return run.once("y2", lambda: measure(run))


def rows(run: Run) -> list[Row]:
    search = ceiling(run)
    best = search.best
    note = f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held"
    if search.generator_limited:
        note += "; the generator fell behind first"
    return [
        Row(
            "Y2 ingest ceiling: no-op FastAPI POST, held",
            None,
            search.held,
            note=note,
            details=search.summary(),
        )
    ]
