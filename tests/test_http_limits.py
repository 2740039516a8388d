"""What the HTTP server does with clients that misbehave at the connection level:
hanging up mid-body, huge headers, requests that trickle in."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from tests.conftest import Gateway
from tests.receiver import wait_until
from tests.test_inbound_providers import CASE_BY_PROVIDER, create_source


def _records(gw: Gateway, request_id: str) -> list[dict[str, object]]:
    found = []
    for line in (gw.workdir / "server.log").read_text(errors="replace").splitlines():
        if request_id in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.parametrize("route", ["inbound", "publish"])
def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(gw: Gateway, route: str) -> None:
    path = (create_source(gw, CASE_BY_PROVIDER["github"])["ingest_path"] if route == "inbound"
            else "/v1/events")
    request_id = f"gone-{uuid.uuid4().hex}"
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            f"Authorization: {gw.api.headers['authorization']}\r\n"
            f"Content-Length: 1000\r\nX-Request-Id: {request_id}\r\n\r\n".encode()
            + b'{"partial": ')

    def access() -> dict[str, object] | None:
        return next((r for r in _records(gw, request_id) if r.get("logger") == "gateway.access"),
                    None)

    line = wait_until(access, 10, "the request's access line")
    assert line["status"] == 499
    assert [r for r in _records(gw, request_id) if r["level"] not in ("INFO", "DEBUG")] == []
    # Nor a traceback outside the request's own records (uvicorn's, say).
    assert "ClientDisconnect" not in (gw.workdir / "server.log").read_text(errors="replace")
