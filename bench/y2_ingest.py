"""Y2, the ingest ceiling: the rate a no-op FastAPI POST route holds (p99 < 50 ms, no
errors), on the uvicorn settings of `gateway serve` (one process, uvloop,
httptools, no access log), searched with the same generator and requests as W2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import loadgen, ratesearch
from bench.context import Run
from bench.procs import Proc
from bench.ratesearch import Search
from bench.receivers import free_port, wait_http
from bench.report import Row


def search_app(
    run: Run,
    name: str,
    app: str,
    ready_path: str,
    make: Callable[[str, int], list[loadgen.Request]],
    env: dict[str, str] | None = None,
) -> Search:
    """Serve `app` on `gateway serve`'s uvicorn settings and search the rate it holds;
    `make(base, n)` builds the requests. Y2 and Y4 differ only in the app."""
    port = free_port()
    proc = Proc(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
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
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}{ready_path}", proc=proc)
        return ratesearch.search(
            lambda n: make(base, n), run.sizes.step_seconds, run.sizes.refine_steps
        )
    finally:
        proc.stop(10)


def held_row(figure: str, search: Search) -> Row:
    """A yardstick's row: the rate it held, and its p99 there."""
    best = search.best
    note = f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held"
    if search.generator_limited:
        note += "; the generator fell behind first"
    return Row(figure, None, search.held, note=note, details=search.summary())


def measure(run: Run) -> Search:
    def make(base: str, n: int) -> list[loadgen.Request]:
        requests = loadgen.publish_requests(base, {}, "y2.noop", n)
        for r in requests:
            r.url = f"{base}/noop"
        return requests

    print("  Y2 no-op FastAPI route:")
    return search_app(run, "y2-noop", "bench.noop_app:app", "/docs", make)


def ceiling(run: Run) -> Search:
    return run.once("y2", lambda: measure(run))


def rows(run: Run) -> list[Row]:
    return [held_row("Y2 ingest ceiling: no-op FastAPI POST, held", ceiling(run))]
