"""`hookgate.verify` on every signature scheme the gateway sends: real deliveries from the
gateway on both backends, checked alongside the libraries receivers already use
(`standardwebhooks`, `stripe`), and refused when anything was changed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import hookgate
import pytest
import stripe
from hookgate import Client, verify
from standardwebhooks import Webhook

from gateway.outbound.signer import generate_secret
from tests.support.gateway import API_KEY, Gateway
from tests.support.receiver import Receiver

OWN_HMAC = {
    "scheme": "hmac",
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "",
    "signed": "{timestamp}.{body}",
    "timestamp_header": "X-Timestamp",
    "id_header": "X-Event-Id",
}


def test_every_scheme_the_gateway_sends_verifies(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    schemes = [{"scheme": "standard"}, {"scheme": "hmac"}, OWN_HMAC]
    schemes += [{"scheme": "github"}, {"scheme": "stripe"}]
    with Client(str(gw.api.base_url), API_KEY) as client:
        endpoints = [
            client.endpoints.create(receiver.url(f"{path}/{n}"), signature=signature)
            for n, signature in enumerate(schemes)
        ]
        event = client.events.publish("invoice.paid", {"amount": 12})
    for n, endpoint in enumerate(endpoints):
        [request] = receiver.wait_for(f"{path}/{n}", 1)
        body, headers, secret = request.body, request.headers, endpoint.secret
        payload = verify(body, headers, secret, signature=endpoint.signature)
        assert payload["id"] == event.id and payload["data"] == {"amount": 12}
        if endpoint.signature != hookgate.models.HmacSignature(**OWN_HMAC):
            assert verify(body.decode(), headers, secret)["id"] == event.id  # scheme from headers
        for tampered, changed in (
            (body.replace(b"12", b"13"), headers),
            (body, {**headers, **{k: "0" for k in headers if "signature" in k}}),
        ):
            with pytest.raises(hookgate.SignatureError):
                verify(tampered, changed, secret, signature=endpoint.signature)
    standard, *_, stripe_signed = endpoints
    [request] = receiver.wait_for(f"{path}/0", 1)
    assert Webhook(standard.secret).verify(request.body, request.headers)["id"] == event.id
    [request] = receiver.wait_for(f"{path}/4", 1)
    construct = stripe.Webhook.construct_event
    assert construct(request.body, request.headers["stripe-signature"], stripe_signed.secret)


def test_standard_webhooks_signatures_old_or_wrong_are_refused() -> None:
    secret, other = generate_secret(), generate_secret()
    body = b'{"id": "evt_1", "type": "invoice.paid", "data": {}}'
    now = datetime.now(UTC)

    def headers(*secrets: str, at: datetime = now) -> dict[str, str]:
        signatures = [Webhook(s).sign("evt_1", at, body.decode()) for s in secrets]
        return {
            "webhook-id": "evt_1",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(signatures),
        }

    assert verify(body, headers(secret), secret)["id"] == "evt_1"
    assert verify(body, headers(other, secret), secret)["id"] == "evt_1"  # during a rotation
    for wrong, message in (
        (headers(other), "no signature matches"),
        (headers(secret, at=datetime.fromtimestamp(time.time() - 600, UTC)), "tolerance"),
        ({"webhook-id": "evt_1", "webhook-signature": "v1,x"}, "webhook-timestamp"),
        ({}, "no signature header"),
    ):
        with pytest.raises(hookgate.SignatureError, match=message):
            verify(body, wrong, secret)
