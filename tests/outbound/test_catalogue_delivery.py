"""Events of a catalogued type over real HTTP: valid data arrives signed at the receiver,
invalid data is refused with nothing stored and nothing sent; a test send sends the
type's first example."""

from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import (
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.usefixtures("forget_event_types")


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice": {"type": "string", "pattern": "^in_"},
        "amount": {"type": "integer", "minimum": 1},
        "currency": {"enum": ["EUR", "USD"]},
    },
    "required": ["invoice", "amount", "currency"],
}
EXAMPLE = {"invoice": "in_example", "amount": 100, "currency": "USD"}


def _catalogue(gw: Gateway, **fields: Any) -> None:
    body = {"name": "invoice.paid", "schema": SCHEMA, "examples": [EXAMPLE], **fields}
    answer = gw.api.post("/v1/event-types", json=body)
    assert answer.status_code == 201, answer.text


def test_a_valid_event_arrives_and_an_invalid_one_is_refused_with_nothing_stored(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    _catalogue(gw)
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["invoice.*"])
    refused = gw.api.post(
        "/v1/events",
        json={"type": "invoice.paid", "data": {**EXAMPLE, "currency": "GBP"}},
    )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "data", "currency"]
    assert "rule: enum" in problem["msg"]
    assert gw.sql("SELECT count(*) FROM event")[0][0] == 0
    assert gw.sql("SELECT count(*) FROM delivery")[0][0] == 0

    data = {"invoice": "in_42", "amount": 1200, "currency": "EUR"}
    event = publish(gw, "invoice.paid", data)
    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["id"] == event["id"] and payload["data"] == data
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    # Only the valid event was ever sent.
    assert len(receiver.received(path)) == 1


def test_a_test_send_sends_the_types_first_example(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    _catalogue(gw)
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["other.*"])
    test_url = f"/v1/endpoints/{endpoint['id']}/test"
    sent = gw.api.post(test_url, json={"event_type": "invoice.paid"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["type"] == "invoice.paid" and sent.json()["data"] == EXAMPLE
    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "invoice.paid" and payload["data"] == EXAMPLE

    # Data of its own, checked against the schema.
    own = {"invoice": "in_own", "amount": 5, "currency": "EUR"}
    with_data = gw.api.post(test_url, json={"event_type": "invoice.paid", "data": own})
    assert with_data.status_code == 202 and with_data.json()["data"] == own
    bad = gw.api.post(test_url, json={"event_type": "invoice.paid", "data": {"amount": 0}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "data"]
    # No body at all: webhook.test, as before.
    plain = gw.api.post(test_url)
    assert plain.status_code == 202 and plain.json()["type"] == "webhook.test"
    receiver.wait_for(path, 3)


def test_a_test_send_without_data_needs_an_example(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    _catalogue(gw, examples=[])
    endpoint = make_endpoint(gw, receiver.url(path))
    test_url = f"/v1/endpoints/{endpoint['id']}/test"
    for event_type in ("invoice.paid", "not.catalogued"):
        answer = gw.api.post(test_url, json={"event_type": event_type})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "data"]
    assert gw.sql("SELECT count(*) FROM event")[0][0] == 0
