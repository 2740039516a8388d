"""Our signatures, checked by the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.outbound.signer import generate_secret, secret_key, sign, signature_header


def _headers(msg_id: str, ts: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_signature_verifies_with_reference_library() -> None:
    secret = generate_secret()
    body = b'{"id":"evt_1","type":"a.b","timestamp":"2026-11-23T10:00:00.000Z","data":{"x":1}}'
    ts = int(time.time())
    header = signature_header([secret_key(secret)], "evt_1", ts, body)
    assert header.startswith("v1,")
    assert Webhook(secret).verify(body, _headers("evt_1", ts, header))["data"] == {"x": 1}


def test_rotation_header_verifies_under_both_secrets_and_not_a_third() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"a":1}'
    ts = int(time.time())
    header = signature_header([secret_key(new), secret_key(old)], "m1", ts, body)
    assert len(header.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, _headers("m1", ts, header))
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, _headers("m1", ts, header))


def test_tampered_body_fails() -> None:
    secret = generate_secret()
    ts = int(time.time())
    header = sign(secret_key(secret), "m1", ts, b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', _headers("m1", ts, header))


@pytest.mark.parametrize(
    "secret, problem",
    [
        ("abc", "whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64"),
    ],
)
def test_malformed_secrets_are_named(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        secret_key(secret)


def test_generated_secret_shape() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
