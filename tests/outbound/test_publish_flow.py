"""The happy path end to end: subscribe, publish, and what the endpoint receives."""

from __future__ import annotations

import json

from standardwebhooks import Webhook

from gateway.outbound.fanout import NewEvent
from gateway.store.models import Event
from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply


def test_published_event_arrives_signed_per_standard_webhooks(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), headers={"X-Team": "billing"})
    event = publish(gw, "invoice.paid", {"amount": 1200, "currency": "EUR", "nested": {"a": [1]}})
    assert event["deliveries"] == 1

    [request] = receiver.wait_for(path, 1)
    # A verifier nobody here wrote accepts it.
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["id"] == event["id"]
    assert payload["type"] == "invoice.paid"
    assert payload["data"] == {"amount": 1200, "currency": "EUR", "nested": {"a": [1]}}
    assert payload["timestamp"].endswith("Z")
    assert request.headers["webhook-id"] == event["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-team"] == "billing"

    [delivery] = deliveries_of(gw, event["id"])
    detail = wait_delivery(gw, delivery["id"], "succeeded")
    assert detail["attempt_count"] == 1
    assert detail["next_attempt_at"] is None
    [attempt] = detail["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert json.loads(attempt["response_body"]) == {"ok": True}


def test_cookies_set_by_one_endpoint_never_reach_another(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    # Both endpoints share the one delivery client and the same host.
    setter, other = f"{path}/setter", f"{path}/other"
    receiver.set(setter, Reply(200, headers={"Set-Cookie": "session=stolen; Path=/"}))
    make_endpoint(gw, receiver.url(setter))
    make_endpoint(gw, receiver.url(other))
    publish(gw, "a.b")
    receiver.wait_for(setter, 1)
    receiver.wait_for(other, 1)
    publish(gw, "a.c")
    for request in receiver.wait_for(setter, 2) + receiver.wait_for(other, 2):
        assert "cookie" not in request.headers


def test_a_new_events_fields_are_the_event_tables_columns() -> None:
    # A publish inserts `NewEvent.row()` as the event's row: a column missing from it
    # would be stored as its default, silently.
    assert list(NewEvent.__slots__) == [c.name for c in Event.__table__.columns]  # type: ignore[attr-defined]
