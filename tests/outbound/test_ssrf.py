"""SSRF: refused addresses, at save time and at connect time, DNS rebinding included.

The gateway in the tests may reach only 127.0.0.1 (the receiver); the rest of
127/8 stands in for the private networks, since tests may send traffic nowhere
but loopback. Names are answered by the tests' own DNS server.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, publish, wait_delivery
from tests.support.receiver import Receiver, Reply

PUBLIC = "93.184.216.34"


class Listener:
    """A TCP listener on a refused loopback address that counts the connections it gets."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener("127.0.0.2")
    yield server
    server.close()


def _name() -> str:
    return f"h{uuid.uuid4().hex[:10]}.test"


def _endpoint(gw: Gateway, url: str) -> dict[str, object]:
    response = gw.api.post("/v1/endpoints", json={"url": url})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("rebound_to", ["127.0.0.2", "127.9.9.9", "0.0.0.0", "::ffff:127.0.0.2"])
def test_dns_rebinding_is_refused_at_connect_time(
    gw: Gateway, listener: Listener, rebound_to: str
) -> None:
    name = _name()
    # Public when the endpoint is saved, a refused address when it is delivered to.
    gw.dns.resolver.script(name, [PUBLIC], [rebound_to])
    endpoint = _endpoint(gw, f"http://{name}:{listener.port}/hook")
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    assert delivery["endpoint_id"] == endpoint["id"]
    detail = wait_delivery(gw, delivery["id"], "failed")
    for attempt in detail["attempts"]:
        assert attempt["status_code"] is None
        assert "refused" in attempt["error"] and "GATEWAY_ALLOWED_NETWORKS" in attempt["error"]
    assert listener.connections == 0


def test_only_the_allowed_addresses_of_a_name_are_connected_to(
    gw: Gateway, receiver: Receiver, listener: Listener, path: str
) -> None:
    name = _name()
    gw.dns.resolver.script(name, ["127.0.0.2", "127.0.0.1"])
    receiver.set(path, Reply(200))
    _endpoint(gw, f"http://{name}:{receiver.port}{path}")
    publish(gw)
    [request] = receiver.wait_for(path, 1)
    assert request.headers["host"] == f"{name}:{receiver.port}"  # the name, not the address
    assert listener.connections == 0


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.2",
        "2130706434",
        "0177.0.0.2",
        "0x7f.0.0.2",
        "127.2",
        "0.0.0.0",
        "[::ffff:127.0.0.2]",
        "[::ffff:7f00:2]",
        "[64:ff9b::7f00:2]",
        "[2002:7f00:2::]",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "[fd00::1]",
        "[fe80::1]",
        "[::]",
        "[64:ff9b::a9fe:a9fe]",
        # IPv4-compatible (::/96) and IPv4-translated (SIIT, ::ffff:0:0:0/96) forms.
        "[::127.0.0.2]",
        "[::7f00:2]",
        "[::ffff:0:127.0.0.2]",
        "[::ffff:0:7f00:2]",
        "[::169.254.169.254]",
        "[::8.8.8.8]",
        "[::ffff:0:8.8.8.8]",
        "[64:ff9b:1::7f00:1]",
    ],
)
def test_refused_literal_addresses_at_save_time(gw: Gateway, host: str) -> None:
    response = gw.api.post("/v1/endpoints", json={"url": f"http://{host}:8080/hook"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "url"]


@pytest.mark.parametrize(
    "addresses", [["127.0.0.2"], ["10.0.0.1", "169.254.169.254"], ["fd00::1"], ["::ffff:10.0.0.1"]]
)
def test_names_resolving_only_to_refused_addresses_at_save_time(
    gw: Gateway, addresses: list[str]
) -> None:
    name = _name()
    gw.dns.resolver.script(name, addresses)
    response = gw.api.post("/v1/endpoints", json={"url": f"https://{name}/hook"})
    assert response.status_code == 422, response.text
    assert "refused" in response.json()["detail"][0]["msg"]


def test_redirect_to_metadata_address_is_not_followed(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(
        path,
        Reply(
            302,
            headers={
                "Location": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
            },
        ),
    )
    _endpoint(gw, receiver.url(path))
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    detail = wait_delivery(gw, delivery["id"], "failed")
    assert [a["status_code"] for a in detail["attempts"]] == [302] * len(detail["attempts"])
    assert all("not followed" in a["error"] for a in detail["attempts"])
