"""Inbound end to end with one provider: verified, stored, deduplicated, routed on."""

from __future__ import annotations

import json

import stripe
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
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
