"""Endpoints that take connections and never answer, trickle, or flood are put off once
they hold their share, instead of taking the attempt slots that answering endpoints need."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bench.receivers import BadEndpoints, start_bad_endpoints
from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, Gateway, own_gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, wait_until

PER_HOST = 2


@pytest.fixture(params=BACKENDS)
def tight(request: pytest.FixtureRequest, tmp_path: Path, dns: ScriptedDNS) -> Iterator[Gateway]:
    """A gateway of its own: 2 connections per host, and attempts that wait 10 s."""
    with own_gateway(
        request.param,
        tmp_path,
        dns,
        GATEWAY_DELIVERY_TIMEOUT="10",
        GATEWAY_CONNECTIONS_PER_HOST=str(PER_HOST),
    ) as gateway:
        yield gateway


@pytest.fixture
def stuck_url() -> Iterator[str]:
    """A listener that never accepts: connections are made, no answer ever comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def _to(gw: Gateway, event_id: str, endpoint_id: str) -> dict[str, object]:
    [delivery] = [d for d in deliveries_of(gw, event_id) if d["endpoint_id"] == endpoint_id]
    return delivery


def test_a_stuck_endpoint_is_put_off_and_the_others_go_on(
    tight: Gateway, stuck_url: str, receiver: Receiver, path: str
) -> None:
    gw = tight
    stuck = make_endpoint(gw, stuck_url)
    healthy = make_endpoint(gw, receiver.url(path))
    events = [publish(gw, data={"n": n}) for n in range(PER_HOST)]
    receiver.wait_for(path, PER_HOST)  # the stuck endpoint now holds its connections

    def put_off() -> dict[str, object] | None:
        # One more event each round (at most 60), until a delivery to the stuck endpoint
        # is put off without an attempt: pending, no attempt, due again later. Every
        # delivery to it is looked at: the newest may not be recorded yet.
        if len(events) < PER_HOST + 60:
            events.append(publish(gw, data={"n": len(events)}))
        response = gw.api.get(f"/v1/endpoints/{stuck['id']}/deliveries", params={"limit": 100})
        assert response.status_code == 200, response.text
        for delivery in response.json()["data"]:
            due = datetime.fromisoformat(str(delivery["next_attempt_at"]).replace("Z", "+00:00"))
            created = datetime.fromisoformat(str(delivery["created_at"]).replace("Z", "+00:00"))
            if delivery["attempt_count"] == 0 and (due - created).total_seconds() > 0.5:
                return gw.api.get(f"/v1/deliveries/{delivery['id']}").json()  # type: ignore[no-any-return]
        return None

    detail = wait_until(put_off, 30, "a delivery to the stuck endpoint to be put off")
    assert detail["status"] == "pending"
    assert detail["attempts"] == []

    # Whatever the stuck endpoint holds, every event reached the endpoint that answers,
    # well before the stuck attempts time out.
    for event in events:
        wait_delivery(gw, str(_to(gw, event["id"], healthy["id"])["id"]), "succeeded", timeout=8)
    assert {r.headers["webhook-id"] for r in receiver.received(path)} == {e["id"] for e in events}


# Of each kind of bad endpoint, this many, each on its own host (port).
BAD_MIX = {"never": 2, "trickle": 2, "slow-headers": 2, "huge": 2}
SLOTS = 4  # the process's attempt slots: fewer than the bad endpoints


@pytest.fixture(params=BACKENDS)
def few_slots(
    request: pytest.FixtureRequest, tmp_path: Path, dns: ScriptedDNS
) -> Iterator[Gateway]:
    """A gateway of its own with 4 attempt slots, and attempts that may take 20 s."""
    with own_gateway(
        request.param,
        tmp_path,
        dns,
        GATEWAY_DELIVERY_TIMEOUT="20",
        GATEWAY_DELIVERY_CONCURRENCY=str(SLOTS),
    ) as gateway:
        yield gateway


@pytest.fixture
def bad_mix(tmp_path: Path) -> Iterator[BadEndpoints]:
    bad = start_bad_endpoints(tmp_path, BAD_MIX)
    try:
        yield bad
    finally:
        bad.stop()


def test_endpoints_that_hang_trickle_or_flood_leave_the_healthy_one_its_latency(
    few_slots: Gateway, bad_mix: BadEndpoints, receiver: Receiver, path: str
) -> None:
    """Every event goes to 8 bad endpoints (hanging, answering a byte a second, sending
    headers a byte a second, answering 1 GB) and one healthy one. Before, the bad
    attempts took all 4 slots for the 20 s of their timeout, and the healthy delivery
    waited that long; now each waits at most about a second (the slow lane's
    threshold), and once the bad endpoints are known, not at all."""
    gw = few_slots
    for url in bad_mix.all():
        make_endpoint(gw, url + path)
    healthy = make_endpoint(gw, receiver.url(path))
    waits = []
    for n in range(6):
        sent = time.monotonic()
        event = publish(gw, data={"n": n})
        [arrived] = [
            r
            for r in receiver.wait_for(path, n + 1, timeout=30)
            if r.headers["webhook-id"] == event["id"]
        ]
        waits.append(arrived.at - sent)
    # Far below the bad attempts' 20 s, which is what the healthy one waited before.
    assert max(waits) < 8, waits

    # Each healthy delivery went out once, at its first attempt: nothing was put off.
    def recorded() -> list[dict[str, object]] | None:
        data = gw.api.get(f"/v1/endpoints/{healthy['id']}/deliveries").json()["data"]
        done = [d for d in data if d["status"] == "succeeded"]
        return done if len(done) == len(waits) else None

    done = wait_until(recorded, 15, "the healthy deliveries recorded")
    assert [d["attempt_count"] for d in done] == [1] * len(waits)
