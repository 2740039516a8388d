"""What the HTTP server does with clients that misbehave at the connection level:
hanging up mid-body, huge headers, requests that trickle in."""

from __future__ import annotations

import json
import socket
import time
import uuid

import httpx
import pytest

from tests.support.gateway import Gateway
from tests.support.providers import CASE_BY_PROVIDER, create_source
from tests.support.receiver import wait_until


def _records(gw: Gateway, request_id: str) -> list[dict[str, object]]:
    found = []
    for line in (gw.workdir / "server.log").read_text(errors="replace").splitlines():
        if request_id in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.parametrize("route", ["inbound", "publish"])
def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(gw: Gateway, route: str) -> None:
    path = (
        create_source(gw, CASE_BY_PROVIDER["github"])["ingest_path"]
        if route == "inbound"
        else "/v1/events"
    )
    request_id = f"gone-{uuid.uuid4().hex}"
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            f"Authorization: {gw.api.headers['authorization']}\r\n"
            f"Content-Length: 1000\r\nX-Request-Id: {request_id}\r\n\r\n".encode()
            + b'{"partial": '
        )

    def access() -> dict[str, object] | None:
        return next(
            (r for r in _records(gw, request_id) if r.get("logger") == "gateway.access"), None
        )

    line = wait_until(access, 10, "the request's access line")
    assert line["status"] == 499
    assert [r for r in _records(gw, request_id) if r["level"] not in ("INFO", "DEBUG")] == []
    # Nor a traceback outside the request's own records (uvicorn's, say).
    assert "ClientDisconnect" not in (gw.workdir / "server.log").read_text(errors="replace")


def _connect(gw: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _healthy(gw: Gateway) -> bool:
    return httpx.get(f"http://127.0.0.1:{gw.port}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("size", [40 * 1024, 5 * 1024 * 1024])
def test_headers_over_the_limit_are_refused_with_431(gw: Gateway, size: int) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: ")
        try:
            for _ in range(size // 65536 + 1):  # streamed: refused before the end arrives
                sock.sendall(b"a" * min(size, 65536))
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # closed on us mid-header, as it should be
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"larger than the limit" in answer
    assert _healthy(gw)


def test_headers_under_the_limit_in_one_read_pass(gw: Gateway) -> None:
    response = httpx.get(
        f"http://127.0.0.1:{gw.port}/healthz", headers={f"x-h{i}": "v" * 200 for i in range(100)}
    )  # 20 KB
    assert response.status_code == 200


def test_many_huge_headers_at_once_do_not_stall_the_server(gw: Gateway) -> None:
    socks = [_connect(gw) for _ in range(10)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * 30000)
        for sock in socks:  # each pushes on towards 50 MB, and is cut off early
            try:
                for _ in range(50):
                    sock.sendall(b"a" * 1_000_000)
            except OSError:
                pass
        assert _healthy(gw)
        for sock in socks:
            assert _answer(sock).startswith(b"HTTP/1.1 431 ")
    finally:
        for sock in socks:
            sock.close()


def test_requests_that_trickle_in_are_cut_off(gw: Gateway) -> None:
    """A head sent a byte at a time, a body that stops coming, a connection that never
    says anything: each is closed once the request timeout (4 s here) has passed."""
    source = create_source(gw, CASE_BY_PROVIDER["github"])
    trickle, stalled_body, silent = _connect(gw), _connect(gw), _connect(gw)
    request_id = f"stalled-{uuid.uuid4().hex}"
    stalled_body.sendall(
        f"POST {source['ingest_path']} HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\n"
        f"X-Request-Id: {request_id}\r\n\r\n{{".encode()
    )
    start = time.monotonic()
    closed_at: dict[str, float] = {}
    try:
        for sock in (trickle, stalled_body, silent):
            sock.setblocking(False)
        head = iter(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: " + b"a" * 100)
        received = {"trickle": b"", "stalled_body": b"", "silent": b""}
        socks = {"trickle": trickle, "stalled_body": stalled_body, "silent": silent}
        while len(closed_at) < 3 and time.monotonic() - start < 20:
            if "trickle" not in closed_at:
                try:
                    trickle.send(bytes([next(head)]))
                except (OSError, StopIteration):
                    pass
            for name, sock in socks.items():
                if name in closed_at:
                    continue
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    received[name] += chunk
                else:
                    closed_at[name] = time.monotonic() - start
            time.sleep(0.25)
    finally:
        for sock in (trickle, stalled_body, silent):
            sock.close()
    assert set(closed_at) == {"trickle", "stalled_body", "silent"}, closed_at
    assert all(3.5 < seconds < 10 for seconds in closed_at.values()), closed_at
    assert received["trickle"].startswith(b"HTTP/1.1 408 "), received["trickle"][:100]
    assert received["silent"].startswith(b"HTTP/1.1 408 ")
    # The app had the stalled request: it saw the client go, which is no server error.
    line = wait_until(
        lambda: next(
            (r for r in _records(gw, request_id) if r.get("logger") == "gateway.access"), None
        ),
        10,
        "the stalled request's access line",
    )
    assert line["status"] == 499
    assert _healthy(gw)
