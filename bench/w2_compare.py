"""What the W2 comparisons (`w2_schema.py`, `w2_filters.py`) share: publishing one
kind of event against another on the same stack, by the rate held and by the API's
CPU per publish at a fixed rate."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bench import ledger, loadgen, procs, ratesearch
from bench.context import Run
from bench.harness import Stack
from bench.loadgen import Request

# The publishes of `n` events of a type.
Requests = Callable[[str, int], list[Request]]


def warm_up(requests_of: Requests, event_types: Iterable[str]) -> None:
    """The API's first requests (connections, caches) are slow: part of neither figure."""
    for event_type in event_types:
        requests = requests_of(event_type, 600)

        async def go(requests: list[Request] = requests) -> loadgen.LoadRun:
            async with loadgen.session(64) as client:
                return await loadgen.open_loop(client, requests, 200)

        loadgen.run(go())


def search(
    run: Run,
    stack: Stack,
    name: str,
    event_type: str,
    requests_of: Requests,
    arrivals: str | None = None,
) -> tuple[ratesearch.Search, ledger.Ledger]:
    """The rate publishes of `event_type` hold, and the ledger of what they stored; on an
    embedded stack (which delivers as it goes) once what arrives under `arrivals` has."""
    print(f"  POST /v1/events of {event_type}:")
    found = ratesearch.search(
        lambda n: requests_of(event_type, n), run.sizes.step_seconds, run.sizes.refine_steps
    )
    results = found.results()
    if stack.embedded and arrivals is not None:
        run.receiver.arrivals.wait_for(
            arrivals, sum(r.ok for r in results), 120, stack.check_alive, stall=15
        )
    book = ledger.check(
        f"{name} {event_type}",
        stack.db_url,
        [event_type],
        sum(r.ok for r in results),
        1,
        run.receiver.arrivals,
        run.receiver.base,
        sum(r.status == 0 for r in results),
    )
    return found, book


def api_cpu(stack: Stack, requests: list[Request], rate: float) -> tuple[float, loadgen.LoadRun]:
    """The API process's CPU seconds spent publishing `requests` at `rate`, and the run."""
    assert stack.server is not None

    async def go() -> loadgen.LoadRun:
        async with loadgen.session(64) as client:
            return await loadgen.open_loop(client, requests, rate)

    before = procs.cpu_seconds(stack.server.pid)
    done = loadgen.run(go())
    return procs.cpu_seconds(stack.server.pid) - before, done
