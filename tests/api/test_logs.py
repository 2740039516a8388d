"""Structured logs: a JSON line per request (with its request id) and per attempt (with ids)."""

from __future__ import annotations

import json

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, wait_until


def _records(gw: Gateway) -> list[dict[str, object]]:
    out = []
    for log in gw.workdir.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def test_request_and_attempt_lines_carry_their_ids(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    response = gw.api.post(
        "/v1/events", json={"type": "log.test", "data": {}}, headers={"X-Request-Id": "req-abc-123"}
    )
    assert response.headers["x-request-id"] == "req-abc-123"
    event = response.json()
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    assert len(gw.api.get("/healthz").headers["x-request-id"]) == 32  # made up when absent

    def lines() -> tuple[dict[str, object], dict[str, object]] | None:
        records = _records(gw)
        request = next(
            (
                r
                for r in records
                if r.get("request_id") == "req-abc-123" and r.get("path") == "/v1/events"
            ),
            None,
        )
        attempt = next((r for r in records if r.get("delivery_id") == delivery["id"]), None)
        return (request, attempt) if request and attempt else None

    request, attempt = wait_until(lines, 10, "the log lines")
    assert request["method"] == "POST" and request["status"] == 202
    assert isinstance(request["duration_ms"], float)
    assert attempt["event_id"] == event["id"] and attempt["endpoint_id"] == endpoint["id"]
    assert attempt["status_code"] == 200 and attempt["level"] == "INFO"
    # No line of this test's traffic carries the endpoint's secret or the API key.
    text = "\n".join(json.dumps(r) for r in _records(gw))
    assert str(endpoint["secret"]) not in text
    assert publish(gw)["id"]
