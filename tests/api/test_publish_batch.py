"""`POST /v1/events/batch` (all stored or none, idempotency per item, tenant scope) and
`previous_data` (stored, delivered beside `data`, shown, read by filters), over real
HTTP to a local receiver, signatures checked with `standardwebhooks`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import (
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, wait_until

pytestmark = pytest.mark.usefixtures("forget_event_types")


def _batch(gw: Gateway, events: list[dict[str, Any]], status: int = 202) -> list[dict[str, Any]]:
    response = gw.api.post("/v1/events/batch", json={"events": events})
    assert response.status_code == status, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


def _event_count(gw: Gateway) -> int:
    """Events as the API lists them (at most 250 here)."""
    response = gw.api.get("/v1/events", params={"limit": 250})
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


def _all_succeeded(gw: Gateway, event_ids: list[str]) -> None:
    def done() -> bool:
        return all(
            all(d["status"] == "succeeded" for d in deliveries_of(gw, event_id))
            for event_id in event_ids
        )

    wait_until(done, 30, "every delivery of the batch to succeed")


def test_a_batch_is_stored_and_delivered_signed(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["order.*"])
    events = [{"type": "order.created", "data": {"n": n}} for n in range(20)]
    events.append({"type": "user.created", "data": {"n": 20}})  # no endpoint matches
    answered = _batch(gw, events)
    assert [a["data"] for a in answered] == [e["data"] for e in events]
    assert [a["deliveries"] for a in answered] == [1] * 20 + [0]
    assert all(a["created"] and a["id"].startswith("evt_") for a in answered)
    assert len({a["id"] for a in answered}) == 21
    requests = receiver.wait_for(path, 20)
    webhook = Webhook(endpoint["secret"])
    delivered = {webhook.verify(r.body, r.headers)["id"]: r for r in requests}
    assert set(delivered) == {a["id"] for a in answered[:20]}
    for a in answered[:20]:
        body = json.loads(delivered[a["id"]].body)
        assert body["data"] == a["data"] and "previous_data" not in body
    _all_succeeded(gw, [a["id"] for a in answered])
    assert _event_count(gw) == 21


def test_a_bad_event_refuses_the_whole_batch(gw: Gateway, receiver: Receiver, path: str) -> None:
    make_endpoint(gw, receiver.url(path))
    good = [{"type": "order.created", "data": {"n": n}} for n in range(6)]
    # Malformed (the body's shape): the index and the field.
    bad = [*good[:3], {"type": "order created", "data": {}}, *good[3:]]
    response = gw.api.post("/v1/events/batch", json={"events": bad})
    assert response.status_code == 422, response.text
    assert [p["loc"][:4] for p in response.json()["detail"]] == [["body", "events", 3, "type"]]
    # An unknown endpoint id (found only by looking): the index too.
    unknown = [*good[:3], {**good[0], "endpoint_ids": ["ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]}]
    response = gw.api.post("/v1/events/batch", json={"events": unknown})
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "events", 3, "endpoint_ids"], problem
    # Data that fails its type's schema in the catalogue.
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 9}}}
    created = gw.api.post("/v1/event-types", json={"name": "order.created", "schema": schema})
    assert created.status_code == 201, created.text
    failing = [*good[:3], {"type": "order.created", "data": {"n": 10}}, *good[3:]]
    response = gw.api.post("/v1/events/batch", json={"events": failing})
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "events", 3, "data", "n"], problem
    # More than 500: refused as a whole.
    response = gw.api.post("/v1/events/batch", json={"events": [{"type": "a.b", "data": {}}] * 501})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "events"]
    empty = gw.api.post("/v1/events/batch", json={"events": []})
    assert empty.status_code == 422, empty.text
    # Nothing of any of them was stored, and nothing sent.
    assert _event_count(gw) == 0
    assert gw.sql("SELECT count(*) FROM delivery") == [(0,)]
    assert receiver.received(path) == []


def test_idempotency_per_event(gw: Gateway, receiver: Receiver, path: str) -> None:
    make_endpoint(gw, receiver.url(path))
    events = [
        {"type": "order.created", "data": {"n": n}, "idempotency_key": f"order-{n}"}
        for n in range(5)
    ]
    first = _batch(gw, events)
    receiver.wait_for(path, 5)
    _all_succeeded(gw, [a["id"] for a in first])
    # The same batch again: the same events, 200, nothing new stored or sent.
    again = _batch(gw, events, status=200)
    assert [a["id"] for a in again] == [a["id"] for a in first]
    assert [a["deliveries"] for a in again] == [1] * 5
    assert not any(a["created"] for a in again)
    # A batch mixing a repeat and a new event: 202, only the new one is sent.
    mixed = _batch(gw, [events[0], {"type": "order.created", "data": {"n": 9}}])
    assert mixed[0]["id"] == first[0]["id"] and not mixed[0]["created"]
    assert mixed[1]["created"]
    # A single publish with that key answers the batch's event (the same namespace).
    single = gw.api.post(
        "/v1/events",
        json={"type": "order.created", "data": {"n": 1}},
        headers={"Idempotency-Key": "order-1"},
    )
    assert single.status_code == 200 and single.json()["id"] == first[1]["id"], single.text
    # A key repeated with other content: 409 naming the event, nothing stored.
    changed = gw.api.post(
        "/v1/events/batch",
        json={"events": [{"type": "order.created", "data": {"n": 5}}, {**events[2], "data": {}}]},
    )
    assert changed.status_code == 409 and "events[1]" in changed.text, changed.text
    # Within one batch: the same key and content is one event; other content, a 422.
    twice = _batch(gw, [{**events[0], "idempotency_key": "new"}] * 2)
    assert twice[0]["id"] == twice[1]["id"] and [a["created"] for a in twice] == [True, False]
    clash = gw.api.post(
        "/v1/events/batch",
        json={
            "events": [
                {"type": "order.created", "data": {"n": 7}, "idempotency_key": "k"},
                {"type": "order.created", "data": {"n": 8}, "idempotency_key": "k"},
            ]
        },
    )
    assert clash.status_code == 422, clash.text
    assert clash.json()["detail"][0]["loc"] == ["body", "events", 1, "idempotency_key"]
    # The first bad event is the one answered, whatever is wrong with a later one.
    unknown = {
        "type": "order.created",
        "data": {},
        "endpoint_ids": ["ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"],
    }
    first_bad = gw.api.post(
        "/v1/events/batch",
        json={
            "events": [
                {"type": "order.created", "data": {"n": 7}, "idempotency_key": "k2"},
                unknown,
                {"type": "order.created", "data": {"n": 8}, "idempotency_key": "k2"},
            ]
        },
    )
    assert first_bad.status_code == 422, first_bad.text
    assert first_bad.json()["detail"][0]["loc"] == ["body", "events", 1, "endpoint_ids"]
    assert _event_count(gw) == 7
    assert len(receiver.wait_for(path, 7)) == 7


def test_a_tenant_key_publishes_only_its_tenants_events(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    mine = make_endpoint(gw, receiver.url(f"{path}/a"), tenant_id="acme")
    make_endpoint(gw, receiver.url(f"{path}/b"), tenant_id="globex")
    make_endpoint(gw, receiver.url(f"{path}/none"))
    key = create_key(gw, tenant_id="acme")["key"]
    with client_with(gw, key) as client:
        # Another tenant's event at index 1: all refused.
        refused = client.post(
            "/v1/events/batch",
            json={
                "events": [
                    {"type": "order.created", "data": {}},
                    {"type": "order.created", "data": {}, "tenant_id": "globex"},
                ]
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "events", 1, "tenant_id"]
        # An endpoint of another tenant named: refused as an unknown one.
        other = make_endpoint(gw, receiver.url(f"{path}/c"), tenant_id="globex")
        named = client.post(
            "/v1/events/batch",
            json={"events": [{"type": "order.created", "data": {}, "endpoint_ids": [other["id"]]}]},
        )
        assert named.status_code == 422, named.text
        assert _event_count(gw) == 0
        # Without a tenant, or with its own: the key's tenant, its endpoints only.
        answer = client.post(
            "/v1/events/batch",
            json={
                "events": [
                    {"type": "order.created", "data": {"n": 1}},
                    {"type": "order.created", "data": {"n": 2}, "tenant_id": "acme"},
                ]
            },
        )
        assert answer.status_code == 202, answer.text
        events = answer.json()["events"]
    assert [e["tenant_id"] for e in events] == ["acme", "acme"]
    assert [e["deliveries"] for e in events] == [1, 1]
    requests = receiver.wait_for(f"{path}/a", 2)
    assert {Webhook(mine["secret"]).verify(r.body, r.headers)["id"] for r in requests} == {
        e["id"] for e in events
    }
    _all_succeeded(gw, [e["id"] for e in events])
    for other_path in ("b", "c", "none"):
        assert receiver.received(f"{path}/{other_path}") == []


def test_previous_data_is_delivered_beside_data_and_shown(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    changed = make_endpoint(
        gw, receiver.url(f"{path}/changed"), filter="previous_data.status != data.status"
    )
    before = {"order": "o_1", "status": "open", "note": "ünïcode"}
    after = {"order": "o_1", "status": "paid", "note": "ünïcode"}
    single = publish(gw, "order.updated", after, previous_data=before)
    assert single["previous_data"] == before and single["deliveries"] == 2
    [batched] = _batch(
        gw, [{"type": "order.updated", "data": after, "previous_data": after}]
    )  # nothing changed: the filtered endpoint does not match
    assert batched["deliveries"] == 1
    plain = publish(gw, "order.updated", after)  # none: the filter sees {}, and fails
    assert plain["previous_data"] is None and plain["deliveries"] == 1

    requests = receiver.wait_for(path, 3)
    bodies = {}
    for request in requests:
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        bodies[payload["id"]] = json.loads(request.body)
    assert list(bodies[single["id"]]) == ["id", "type", "timestamp", "data", "previous_data"]
    assert bodies[single["id"]]["previous_data"] == before
    assert bodies[single["id"]]["data"] == after
    assert bodies[batched["id"]]["previous_data"] == after
    assert "previous_data" not in bodies[plain["id"]]
    [filtered] = receiver.wait_for(f"{path}/changed", 1)
    assert Webhook(changed["secret"]).verify(filtered.body, filtered.headers)["id"] == single["id"]

    shown = gw.api.get(f"/v1/events/{single['id']}").json()
    assert shown["previous_data"] == before and shown["data"] == after
    assert gw.api.get(f"/v1/events/{plain['id']}").json()["previous_data"] is None
    listed = {e["id"]: e for e in gw.api.get("/v1/events").json()["data"]}
    assert listed[single["id"]]["previous_data"] == before
    for event in (single, batched, plain):
        for delivery in deliveries_of(gw, event["id"]):
            wait_delivery(gw, delivery["id"], "succeeded")
    assert len(receiver.received(f"{path}/changed")) == 1
    # The filter test route takes a sample's previous_data too.
    url = f"/v1/endpoints/{changed['id']}/filter/test"
    sample = {"type": "order.updated", "data": after}
    tried = gw.api.post(url, json={**sample, "previous_data": before})
    assert tried.json() == {"matches": True, "error": None}, tried.text
    assert gw.api.post(url, json={**sample, "previous_data": after}).json()["matches"] is False
    assert "no such key" in gw.api.post(url, json=sample).json()["error"]


def test_previous_data_is_checked_as_data_is(gw: Gateway) -> None:
    for bad in ([1, 2], "text", {"deep": json.loads("[" * 70 + "]" * 70)}):
        response = gw.api.post("/v1/events", json={"type": "a.b", "data": {}, "previous_data": bad})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][:2] == ["body", "previous_data"]
    response = gw.api.post(
        "/v1/events/batch",
        json={
            "events": [{"type": "a.b", "data": {}}, {"type": "a.b", "data": {}, "previous_data": 3}]
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:4] == ["body", "events", 1, "previous_data"]
    assert _event_count(gw) == 0


def test_a_transformation_reads_previous_data_from_the_payload(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    code = """
function handler(webhook) {
  const p = webhook.payload;
  webhook.payload = {changed: Object.keys(p.data).filter(
    (k) => JSON.stringify(p.data[k]) !== JSON.stringify(p.previous_data[k]))};
  return webhook;
}
"""
    make_endpoint(gw, receiver.url(path), transformation=code)
    event = publish(
        gw, "order.updated", {"status": "paid", "n": 1}, previous_data={"status": "open", "n": 1}
    )
    [request] = receiver.wait_for(path, 1)
    assert json.loads(request.body) == {"changed": ["status"]}
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
