"""Egress through an HTTP CONNECT proxy (GATEWAY_EGRESS_PROXY): deliveries and token
requests go through it, to the addresses the gateway checked itself; what the gateway
refuses directly it refuses through the proxy too, without asking it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.authservers import ConnectProxy, MtlsReceiver, Pki, TokenServer
from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, Gateway, own_gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver

PUBLIC = "93.184.216.34"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def proxied(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dns: ScriptedDNS,
    proxy: ConnectProxy,
) -> Iterator[Gateway]:
    workdir: Path = tmp_path_factory.mktemp(f"proxied-{request.param}")
    with own_gateway(request.param, workdir, dns, GATEWAY_EGRESS_PROXY=proxy.url()) as gateway:
        yield gateway


def _name() -> str:
    return f"hooks-{uuid.uuid4().hex[:8]}.example"


def test_deliveries_go_through_the_proxy_to_the_checked_address(
    proxied: Gateway, proxy: ConnectProxy, receiver: Receiver, path: str
) -> None:
    gw = proxied
    gw.reset()
    name = _name()
    gw.dns.resolver.script(name, ["127.0.0.1"])
    make_endpoint(gw, f"http://{name}:{receiver.port}{path}")
    publish(gw)
    [request] = receiver.wait_for(path, 1)
    assert request.headers["host"] == f"{name}:{receiver.port}"
    # The proxy was asked for the address the gateway resolved and checked, not the name.
    assert f"127.0.0.1:{receiver.port}" in proxy.targets
    assert not any(name in target for target in proxy.targets)


def test_tls_and_oauth2_tokens_go_through_the_proxy(
    proxied: Gateway, proxy: ConnectProxy, receiver: Receiver, path: str
) -> None:
    gw = proxied
    gw.reset()
    pki = Pki.make()
    tls = MtlsReceiver(pki)
    tokens = TokenServer()
    tls.start()
    tokens.start()
    try:
        tokens.clients["c"] = "s3cret"
        certificate, key = pki.issue("through-proxy")
        make_endpoint(
            gw,
            tls.url("/tls"),
            auth={
                "type": "mtls",
                "certificate": certificate,
                "private_key": key,
                "ca_bundle": pki.ca_cert,
            },
        )
        event = publish(gw)
        [delivery] = deliveries_of(gw, event["id"])
        wait_delivery(gw, delivery["id"], "succeeded")
        assert tls.clients == ["through-proxy"]
        assert f"127.0.0.1:{tls.port}" in proxy.targets
        make_endpoint(
            gw,
            receiver.url(path),
            auth={
                "type": "oauth2",
                "token_url": tokens.url(),
                "client_id": "c",
                "client_secret": "s3cret",
            },
        )
        publish(gw)
        [request] = receiver.wait_for(path, 1)
        assert request.headers["authorization"] == "Bearer tok-c-1"
        assert tokens.count("c") == 1
        assert f"127.0.0.1:{tokens.port}" in proxy.targets
    finally:
        tls.stop()
        tokens.stop()


def test_a_refused_destination_is_refused_without_asking_the_proxy(
    proxied: Gateway, proxy: ConnectProxy, receiver: Receiver, path: str
) -> None:
    gw = proxied
    gw.reset()
    name = _name()
    # Public when saved, private when delivered to (DNS rebinding).
    gw.dns.resolver.script(name, [PUBLIC], ["127.0.0.2"])
    make_endpoint(gw, f"http://{name}:{receiver.port}{path}")
    asked_before = list(proxy.targets)
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    detail = wait_delivery(gw, delivery["id"], "failed")
    for attempt in detail["attempts"]:
        assert attempt["status_code"] is None
        assert "refused" in attempt["error"] and "GATEWAY_ALLOWED_NETWORKS" in attempt["error"]
    assert not any("127.0.0.2" in target for target in proxy.targets[len(asked_before) :])
    assert not receiver.received(path)


def test_a_proxy_that_refuses_the_tunnel_is_a_connection_error_naming_its_answer() -> None:
    from gateway.outbound.client import open_tunnel

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def attempt() -> str:
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await open_tunnel(("127.0.0.1", port), "203.0.113.7", 443)
        except OSError as exc:
            return str(exc)
        finally:
            server.close()
        return "tunnel opened"

    assert asyncio.run(attempt()) == (
        "the egress proxy refused CONNECT 203.0.113.7:443: HTTP/1.1 403 Forbidden"
    )
