"""Inbound end to end with one provider: verified, stored, deduplicated, routed on."""

from __future__ import annotations

import json

import stripe
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish
from tests.support.receiver import Receiver


def test_stripe_event_is_verified_stored_deduplicated_and_routed(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secret = "whsec_test_stripe_secret"
    source = gw.api.post(
        "/v1/sources", json={"name": "stripe", "provider": "stripe", "secret": secret}
    )
    assert source.status_code == 201, source.text
    src = source.json()
    assert src["ingest_path"] == f"/in/{src['id']}"
    endpoint = make_endpoint(
        gw, receiver.url(path), source_ids=[src["id"]], event_types=["invoice.*"]
    )

    body = json.dumps(
        {"id": "evt_stripe_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}
    )
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    post = gw.api.post(
        src["ingest_path"],
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert post.status_code == 200, post.text
    assert post.json()["status"] == "accepted"
    event_id = post.json()["event_id"]

    again = gw.api.post(
        src["ingest_path"],
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert again.json() == {"status": "duplicate", "event_id": event_id}

    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "invoice.paid"
    assert payload["data"]["data"]["object"] == {"id": "in_1"}  # data is the Stripe event

    event = gw.api.get(f"/v1/events/{event_id}").json()
    assert event["source_id"] == src["id"]
    assert event["body"] == body
    assert event["headers"]["stripe-signature"] == header
    listed = gw.api.get("/v1/events", params={"source_id": src["id"]}).json()["data"]
    assert [e["id"] for e in listed] == [event_id]

    bad = gw.api.post(
        src["ingest_path"],
        content=body.replace("in_1", "in_2"),
        headers={"Stripe-Signature": header},
    )
    assert bad.status_code == 401
    assert len(gw.api.get("/v1/events").json()["data"]) == 1


def test_origin_rule_published_only_any_origin_or_named_sources(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    """`source_ids` absent takes everything, `[]` only published events, `[id]` that source."""
    secret = "whsec_test_stripe_secret"
    src = gw.api.post(
        "/v1/sources", json={"name": "stripe", "provider": "stripe", "secret": secret}
    ).json()
    anything = make_endpoint(gw, receiver.url(path + "/any"))
    published_only = make_endpoint(gw, receiver.url(path + "/published"), source_ids=[])
    stripe_only = make_endpoint(gw, receiver.url(path + "/stripe"), source_ids=[src["id"]])
    assert published_only["source_ids"] == []

    published = publish(gw, "invoice.paid", {"invoice": "in_1"})
    body = json.dumps({"id": "evt_stripe_origin", "type": "invoice.paid", "data": {}})
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    received = gw.api.post(
        src["ingest_path"], content=body, headers={"Stripe-Signature": header}
    ).json()["event_id"]

    def targets(event_id: str) -> set[str]:
        return {d["endpoint_id"] for d in deliveries_of(gw, event_id)}

    assert targets(published["id"]) == {anything["id"], published_only["id"]}
    assert targets(received) == {anything["id"], stripe_only["id"]}
    receiver.wait_for(path + "/any", 2)
    receiver.wait_for(path + "/published", 1)
    receiver.wait_for(path + "/stripe", 1)

    # A PATCH can turn the rule either way.
    patched = gw.api.patch(f"/v1/endpoints/{published_only['id']}", json={"source_ids": None})
    assert patched.json()["source_ids"] is None
