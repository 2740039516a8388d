"""`gateway events publish --previous-data` and `gateway events publish-batch FILE`."""

from __future__ import annotations

import json
from pathlib import Path

from standardwebhooks import Webhook

from tests.cli.test_cli_commands import as_json, ok, refused
from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver


def test_publish_with_previous_data(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    event = as_json(
        gw,
        "events",
        "publish",
        "order.updated",
        "--data",
        '{"status": "paid"}',
        "--previous-data",
        '{"status": "open"}',
    )
    assert event["previous_data"] == {"status": "open"} and event["deliveries"] == 1
    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["data"] == {"status": "paid"} and payload["previous_data"] == {"status": "open"}
    refused(
        gw.run_cli("events", "publish", "a.b", "--data", "{}", "--previous-data", "[1]"),
        2,
        "--previous-data",
    )


def test_publish_batch_from_a_file(
    gw: Gateway, receiver: Receiver, path: str, tmp_path: Path
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    events = [
        {"type": "order.created", "data": {"n": n}, "idempotency_key": f"o-{n}"} for n in range(3)
    ]
    file = tmp_path / "batch.json"
    file.write_text(json.dumps({"events": events}))
    answered = as_json(gw, "events", "publish-batch", str(file))["events"]
    assert [e["data"] for e in answered] == [e["data"] for e in events]
    assert all(e["created"] and e["deliveries"] == 1 for e in answered)
    requests = receiver.wait_for(path, 3)
    webhook = Webhook(endpoint["secret"])
    assert {webhook.verify(r.body, r.headers)["id"] for r in requests} == {
        e["id"] for e in answered
    }
    # The list alone, again: the same events, nothing new.
    file.write_text(json.dumps(events))
    table = ok(gw.run_cli("events", "publish-batch", str(file)))
    assert "published 0 events, 3 already published" in table.stderr
    assert all(e["id"] in table.stdout for e in answered)
    # A bad event at index 1: nothing stored.
    file.write_text(json.dumps([{"type": "x.y", "data": {}}, {"type": "x y", "data": {}}]))
    refused(gw.run_cli("events", "publish-batch", str(file)), 2, "events.1.type")
    file.write_text("{nope")
    refused(gw.run_cli("events", "publish-batch", str(file)), 2, "not valid JSON")
    assert len(gw.api.get("/v1/events").json()["data"]) == 3
