"""A stuck endpoint (it takes connections and never answers) is put off once it holds its
share of connections, instead of taking every attempt slot that answering endpoints need."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import _PG_MISSING, BACKENDS, Gateway
from tests.dns import ScriptedDNS
from tests.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.receiver import Receiver, wait_until

PER_HOST = 2


@pytest.fixture(params=BACKENDS)
def tight(request: pytest.FixtureRequest, tmp_path: Path, dns: ScriptedDNS) -> Iterator[Gateway]:
    """A gateway of its own: 2 connections per host, and attempts that wait 10 s."""
    if request.param == "postgres" and _PG_MISSING:
        pytest.skip(_PG_MISSING)
    gateway = Gateway(request.param, tmp_path, dns)
    gateway.env["GATEWAY_CONNECTIONS_PER_HOST"] = str(PER_HOST)
    gateway.env["GATEWAY_DELIVERY_TIMEOUT"] = "10"
    with gateway.running():
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
        wait_delivery(gw, str(_to(gw, event["id"], healthy["id"])["id"]), "succeeded",
                      timeout=8)
    assert {r.headers["webhook-id"] for r in receiver.received(path)} == {
        e["id"] for e in events}
