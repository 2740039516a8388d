"""A 202 is a promise: events arrive although the process delivering them is killed.

The receiver's ledger of (webhook-id, path) pairs is the proof: every pair that
publish fanned out to arrives at least once, after a SIGKILL mid-flight and a
restart, or after the queue lost its jobs.
"""

from __future__ import annotations

import signal

import pytest
import redis

from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint, publish
from tests.support.receiver import Receiver, Reply, wait_until

# With the test settings (2 s delivery timeout) a claim lapses after 14 s, and the
# sweeper runs every second with 2 s grace: recovery takes about 20 s.
RECOVERY_TIMEOUT = 60


def _ledger(receiver: Receiver, paths: list[str]) -> set[tuple[str, str]]:
    return {(r.headers["webhook-id"], p) for p in paths for r in receiver.received(p)}


def _expect_all(gw: Gateway, receiver: Receiver, events: list[str], paths: list[str]) -> None:
    expected = {(e, p) for e in events for p in paths}
    wait_until(
        lambda: expected <= _ledger(receiver, paths),
        RECOVERY_TIMEOUT,
        f"all {len(expected)} (event, endpoint) pairs at the receiver",
    )

    def all_succeeded() -> bool:
        rows = gw.sql("SELECT status, count(*) FROM delivery GROUP BY status")
        return dict(rows) == {"succeeded": len(expected)}  # type: ignore[arg-type]

    wait_until(all_succeeded, RECOVERY_TIMEOUT, "every delivery recorded as succeeded")


def _slow_endpoints(gw: Gateway, receiver: Receiver, path: str, n: int) -> list[str]:
    paths = [f"{path}/{i}" for i in range(n)]
    for p in paths:
        receiver.set(p, Reply(200, delay=0.5))
        make_endpoint(gw, receiver.url(p))
    return paths


@pytest.mark.slow
def test_killed_delivery_process_loses_nothing(gw: Gateway, receiver: Receiver, path: str) -> None:
    paths = _slow_endpoints(gw, receiver, path, 3)
    events = [publish(gw, "order.created", {"i": i})["id"] for i in range(20)]
    # Deliveries are in flight (the receiver holds each for 0.5 s): kill now.
    wait_until(lambda: _ledger(receiver, paths), 15, "the first deliveries to arrive")
    if gw.backend == "postgres":
        [worker] = gw.workers
        gw.kill(worker, signal.SIGKILL)
        # Published while no worker runs: the jobs wait in Redis.
        events += [publish(gw, "order.created", {"i": i})["id"] for i in range(20, 30)]
        gw.start_worker()
    else:
        gw.kill_server(signal.SIGKILL)
        gw.start_server()
        events += [publish(gw, "order.created", {"i": i})["id"] for i in range(20, 30)]
    _expect_all(gw, receiver, events, paths)


@pytest.mark.slow
def test_kill_several_times_still_delivers_everything(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("several workers need Redis")
    paths = _slow_endpoints(gw, receiver, path, 2)
    gw.start_worker()
    events: list[str] = []
    for round_ in range(3):
        events += [publish(gw, "order.created", {"r": round_, "i": i})["id"] for i in range(15)]
        seen = len(_ledger(receiver, paths))
        wait_until(lambda s=seen: len(_ledger(receiver, paths)) > s, 15, "progress")  # type: ignore[misc]
        gw.kill(gw.workers[0], signal.SIGKILL)
        gw.start_worker()
    _expect_all(gw, receiver, events, paths)


# It empties the tests' Redis database, which tests running beside it use too.
@pytest.mark.serial
def test_jobs_lost_from_redis_are_rebuilt_from_the_database(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    if gw.backend != "postgres":
        pytest.skip("only the Redis backend has a queue to lose")
    paths = [f"{path}/a", f"{path}/b"]
    for p in paths:
        make_endpoint(gw, receiver.url(p))
    for worker in list(gw.workers):
        gw.kill(worker, signal.SIGKILL)
    events = [publish(gw, "order.created", {"i": i})["id"] for i in range(10)]
    assert gw.redis_url is not None
    redis.Redis.from_url(gw.redis_url).flushdb()  # the queued jobs are gone
    gw.start_worker()
    _expect_all(gw, receiver, events, paths)
