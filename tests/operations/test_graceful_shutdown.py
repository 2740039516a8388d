"""SIGTERM stops a delivering process gracefully: attempts in flight finish and are recorded."""

from __future__ import annotations

import signal

import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint, publish
from tests.support.receiver import Receiver, Reply


@pytest.mark.slow
def test_sigterm_lets_attempts_in_flight_finish_and_be_recorded(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    paths = [f"{path}/a", f"{path}/b"]
    for p in paths:
        receiver.set(p, Reply(200, delay=1.5))  # each attempt is in flight for 1.5 s
        make_endpoint(gw, receiver.url(p))
    for i in range(5):
        publish(gw, "order.created", {"i": i})
    for p in paths:
        receiver.wait_for(p, 5)  # all ten attempts are now in flight
    if gw.backend == "postgres":
        for worker in list(gw.workers):
            worker.send_signal(signal.SIGTERM)
        for worker in list(gw.workers):
            gw.kill(worker, signal.SIGTERM)
    else:
        gw.kill_server(signal.SIGTERM)
    # The process has exited: everything it had in flight is recorded, nothing half-done.
    rows = gw.sql("SELECT status, attempt_count, locked_until FROM delivery")
    assert len(rows) == 10
    assert all(
        status == "succeeded" and count == 1 and lease is None for status, count, lease in rows
    ), rows
    assert gw.sql("SELECT count(*) FROM attempt")[0][0] == 10
    # And nothing was sent twice.
    assert all(len(receiver.received(p)) == 5 for p in paths)
