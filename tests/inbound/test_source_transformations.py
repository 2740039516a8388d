"""A source's transformation maps a provider's shape into yours before routing: the
event stored and delivered is the mapped one; a cancel stores nothing; a failure
stores nothing and asks the provider to send again."""

from __future__ import annotations

import json
from typing import Any

import stripe
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import assert_422_naming, make_endpoint
from tests.support.receiver import Receiver

SECRET = "whsec_test_stripe_secret"
# Stripe's invoice events, as the billing service wants them.
MAP_STRIPE = """
function handler(webhook) {
  const invoice = webhook.payload.data.object;
  if (invoice.livemode === false) return { cancel: true };
  webhook.event_type = "billing." + webhook.event_type.split(".").pop();
  webhook.payload = { invoice: invoice.id, cents: invoice.amount_paid };
  return webhook;
}
"""


def _source(gw: Gateway, **fields: Any) -> dict[str, Any]:
    response = gw.api.post(
        "/v1/sources", json={"name": "stripe", "provider": "stripe", "secret": SECRET, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _send(gw: Gateway, source: dict[str, Any], event: dict[str, Any]) -> Any:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    return gw.api.post(
        source["ingest_path"],
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def _invoice(n: int, livemode: bool = True) -> dict[str, Any]:
    return {
        "id": f"evt_stripe_{n}",
        "type": "invoice.paid",
        "data": {"object": {"id": f"in_{n}", "amount_paid": 1200, "livemode": livemode}},
    }


def test_a_source_transformation_maps_a_provider_shape(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    source = _source(gw, transformation=MAP_STRIPE)
    assert source["transformation"] == MAP_STRIPE
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["billing.*"])
    post = _send(gw, source, _invoice(1))
    assert post.status_code == 200, post.text
    assert post.json()["status"] == "accepted"
    [request] = receiver.wait_for(path, 1)
    delivered = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert delivered["type"] == "billing.paid"
    assert delivered["data"] == {"invoice": "in_1", "cents": 1200}
    stored = gw.api.get(f"/v1/events/{post.json()['event_id']}").json()
    assert stored["type"] == "billing.paid" and stored["source_id"] == source["id"]


def test_a_cancel_stores_nothing_and_is_shown_among_refusals(gw: Gateway) -> None:
    source = _source(gw, transformation=MAP_STRIPE)
    post = _send(gw, source, _invoice(2, livemode=False))
    assert post.status_code == 200, post.text
    assert post.json() == {"status": "cancelled", "event_id": None}
    assert gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"] == []
    refusals = gw.api.get(f"/v1/sources/{source['id']}/refusals").json()["data"]
    assert [r["reason"] for r in refusals] == ["cancelled"]


def test_a_failing_source_transformation_stores_nothing_and_answers_503(gw: Gateway) -> None:
    source = _source(gw, transformation="function handler(w) { return w.payload.nope.nope; }")
    post = _send(gw, source, _invoice(3))
    assert post.status_code == 503, post.text
    assert "TypeError" in post.text
    assert gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"] == []
    [refusal] = gw.api.get(f"/v1/sources/{source['id']}/refusals").json()["data"]
    assert refusal["reason"] == "transformation_failed" and "TypeError" in refusal["message"]


def test_source_transformations_are_checked_on_save_and_tested(gw: Gateway) -> None:
    response = gw.api.post(
        "/v1/sources",
        json={"name": "s", "provider": "stripe", "secret": SECRET, "transformation": "x = ("},
    )
    assert_422_naming(response, "transformation")
    source = _source(gw)
    assert source["transformation"] is None
    bad = gw.api.patch(f"/v1/sources/{source['id']}", json={"transformation": "function h() {}"})
    assert_422_naming(bad, "transformation")
    changed = gw.api.patch(f"/v1/sources/{source['id']}", json={"transformation": MAP_STRIPE})
    assert changed.status_code == 200 and changed.json()["transformation"] == MAP_STRIPE
    tested = gw.api.post(
        f"/v1/sources/{source['id']}/transformation/test",
        json={"event_type": "invoice.paid", "payload": _invoice(4)},
    )
    assert tested.status_code == 200, tested.text
    assert tested.json() == {
        "result": {"event_type": "billing.paid", "payload": {"invoice": "in_4", "cents": 1200}},
        "error": None,
    }
    cleared = gw.api.patch(f"/v1/sources/{source['id']}", json={"transformation": None})
    assert cleared.status_code == 200 and cleared.json()["transformation"] is None
