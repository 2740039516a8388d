"""An endpoint's `rate_limit` spaces its deliveries out without spending attempts."""

from __future__ import annotations

import asyncio
import itertools

from gateway.outbound.ratelimit import MemoryRateLimiter
from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver


def test_rate_limited_endpoint_gets_at_most_its_rate(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path), rate_limit=2)
    events = [publish(gw, "tick", {"i": i}) for i in range(6)]
    received = receiver.wait_for(path, 6, timeout=30)
    # Two a second means one every 0.5 s: six take at least 2.5 s from first to last ...
    assert received[-1].at - received[0].at >= 2.4
    # ... and they are spaced out, not sent in bursts at window edges.
    for first in received:
        assert sum(1 for r in received if 0 <= r.at - first.at < 0.8) <= 2
    for event in events:
        [delivery] = deliveries_of(gw, event["id"])
        detail = wait_delivery(gw, delivery["id"], "succeeded")
        assert detail["attempt_count"] == 1  # being put off is not an attempt
        assert len(detail["attempts"]) == 1


def test_memory_limiter_hands_out_evenly_spaced_slots() -> None:
    limiter = MemoryRateLimiter()

    async def burst() -> list[float]:
        return [await limiter.reserve("ep", 4) for _ in range(8)]

    waits = asyncio.run(burst())
    assert waits[0] == 0
    for earlier, later in itertools.pairwise(waits):
        assert 0.24 <= later - earlier <= 0.26
