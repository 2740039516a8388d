"""Stream endpoints: `kind: "stream"`, `GET /v1/endpoints/{id}/stream` (server-sent events)
and its acknowledgements, on both backends. The listener's end to end test is in
tests/cli/test_listen.py."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import (
    assert_422_naming,
    client_with,
    create_key,
    deliveries_of,
    publish,
    wait_delivery,
)
from tests.support.receiver import wait_until


class EventStream:
    """A client of a stream route, reading its server-sent events in a thread."""

    def __init__(self, gw: Gateway, endpoint_id: str, key: str | None = None) -> None:
        self.client = httpx.Client(
            base_url=str(gw.api.base_url),
            headers=dict(gw.api.headers) if key is None else {"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(30, read=60),
        )
        self.url = f"/v1/endpoints/{endpoint_id}/stream"
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.status: int | None = None
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self.client.stream("GET", self.url) as response:
                self.status = response.status_code
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                name, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        name = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        data = line.removeprefix("data:").strip()
                    elif line == "" and data:
                        self.events.put((name, json.loads(data)))
                        name, data = "message", ""
        except (httpx.HTTPError, OSError):
            pass  # closed by the test

    def next(self, name: str, timeout: float = 15) -> dict[str, Any]:
        got, data = self.events.get(timeout=timeout)
        assert got == name, (got, data)
        return data

    def close(self) -> None:
        if self._socket is not None:  # ends the read the thread is blocked in
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.client.close()


def make_stream_endpoint(gw: Gateway, **fields: object) -> dict[str, Any]:
    response = gw.api.post("/v1/endpoints", json={"kind": "stream", **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def ack(gw: Gateway, endpoint_id: str, offer: dict[str, Any], status: int | None) -> None:
    response = gw.api.post(
        f"/v1/endpoints/{endpoint_id}/stream/ack",
        json={
            "delivery_id": offer["delivery_id"],
            "attempt": offer["attempt"],
            "status_code": status,
            "body": "local answer",
        },
    )
    assert response.status_code == 204, response.text


def test_a_stream_endpoint_has_a_kind_and_no_url(gw: Gateway) -> None:
    endpoint = make_stream_endpoint(gw, description="gateway listen laptop")
    assert (endpoint["kind"], endpoint["url"]) == ("stream", None)
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["kind"] == "stream"
    listed = gw.api.get("/v1/endpoints").json()["data"]
    assert [(e["id"], e["kind"]) for e in listed] == [(endpoint["id"], "stream")]
    # A url goes with http only; http needs one; a stream endpoint takes no auth.
    for body, field in (
        ({"kind": "stream", "url": "https://example.com/hooks"}, "url"),
        ({"kind": "http"}, "url"),
        ({}, "url"),
        ({"kind": "stream", "auth": {"type": "bearer", "token": "t" * 20}}, "auth"),
        ({"kind": "ftp"}, "kind"),
    ):
        assert_422_naming(gw.api.post("/v1/endpoints", json=body), field)
    patched = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"url": "https://a.example"})
    assert_422_naming(patched, "url")


def test_stream_route_and_ack_refuse_what_they_cannot_serve(gw: Gateway) -> None:
    http = gw.api.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/x"}).json()
    assert gw.api.get(f"/v1/endpoints/{http['id']}/stream").status_code == 404
    assert gw.api.get("/v1/endpoints/ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ/stream").status_code == 404
    endpoint = make_stream_endpoint(gw, tenant_id="acme")
    other = create_key(gw, tenant_id="globex")["key"]
    with client_with(gw, other) as stranger:
        assert stranger.get(f"/v1/endpoints/{endpoint['id']}/stream").status_code == 404
    ack_url = f"/v1/endpoints/{endpoint['id']}/stream/ack"
    unknown = {"delivery_id": "dlv_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "attempt": 1, "status_code": 200}
    assert gw.api.post(ack_url, json=unknown).status_code == 404
    assert_422_naming(gw.api.post(ack_url, json={**unknown, "status_code": 99}), "status_code")
    assert_422_naming(gw.api.post(ack_url, json={**unknown, "attempt": 0}), "attempt")
    # A delivery of this endpoint that no attempt waits for: nothing to acknowledge.
    event = publish(gw, "user.created", tenant_id="acme")
    [delivery] = deliveries_of(gw, event["id"])
    wait_until(lambda: gw.api.get(f"/v1/deliveries/{delivery['id']}").json()["attempts"])
    late = {"delivery_id": delivery["id"], "attempt": 1, "status_code": 200}
    assert gw.api.post(ack_url, json=late).status_code == 409


def test_connecting_brings_the_waiting_deliveries_forward(gw: Gateway) -> None:
    endpoint = make_stream_endpoint(gw, retry_policy={"schedule": [600]})
    # Published with nobody listening: the attempt fails at once, then waits its retry.
    event = publish(gw, "invoice.paid", {"invoice": "in_1"})
    [waiting] = deliveries_of(gw, event["id"])

    def first_attempt() -> dict[str, Any] | None:
        attempts = gw.api.get(f"/v1/deliveries/{waiting['id']}").json()["attempts"]
        return attempts[0] if attempts else None

    assert wait_until(first_attempt)["error"] == "no listener connected"
    stream = EventStream(gw, endpoint["id"])
    try:
        assert stream.next("ready") == {"endpoint_id": endpoint["id"], "resumed": 1}
        offer = stream.next("delivery")
        assert (offer["delivery_id"], offer["attempt"]) == (waiting["id"], 2)
        ack(gw, endpoint["id"], offer, 200)
        wait_delivery(gw, waiting["id"], "succeeded")
    finally:
        stream.close()


def test_offers_are_signed_acked_and_retried_like_any_attempt(gw: Gateway) -> None:
    endpoint = make_stream_endpoint(gw, event_types=["invoice.*"])
    stream = EventStream(gw, endpoint["id"])
    opened = time.monotonic()
    try:
        stream.next("ready")
        event = publish(gw, "invoice.paid", {"invoice": "in_2"})
        first = stream.next("delivery")  # not acknowledged: it times out
        assert first["attempt"] == 1 and first["event_id"] == event["id"]
        payload = Webhook(endpoint["secret"]).verify(first["body"], first["headers"])
        assert payload["data"] == {"invoice": "in_2"}
        assert stream.next("delivery")["attempt"] == 2  # nor this one
        third = stream.next("delivery")
        assert third["attempt"] == 3 and third["headers"]["webhook-attempt"] == "3"
        # The stream outlives GATEWAY_REQUEST_TIMEOUT (4 s in the tests), which bounds
        # how long a request takes to arrive, not how long its answer lasts.
        assert time.monotonic() - opened > 4
        ack(gw, endpoint["id"], third, 503)
        fourth = stream.next("delivery")
        ack(gw, endpoint["id"], fourth, 200)
        detail = wait_delivery(gw, first["delivery_id"], "succeeded")
        # The listener's own failure: no answer, its reason recorded.
        publish(gw, "invoice.sent")
        offer = stream.next("delivery")
        refused = {"status_code": None, "error": "connection refused by localhost:3000"}
        response = gw.api.post(
            f"/v1/endpoints/{endpoint['id']}/stream/ack",
            json={"delivery_id": offer["delivery_id"], "attempt": 1, **refused},
        )
        assert response.status_code == 204, response.text
        [failed, *_] = wait_until(
            lambda: gw.api.get(f"/v1/deliveries/{offer['delivery_id']}").json()["attempts"]
        )
    finally:
        stream.close()
    assert stream.status == 200
    log = [(a["status_code"], a["error"], a["response_body"]) for a in detail["attempts"]]
    assert log == [
        (None, "not acknowledged within 2s", None),
        (None, "not acknowledged within 2s", None),
        (503, None, "local answer"),
        (200, None, "local answer"),
    ]
    assert failed["status_code"] is None
    assert "connection refused by localhost:3000" in failed["error"]
