"""Signature schemes per endpoint, end to end: real deliveries to the receiver, each
verified by code nobody here wrote (`standardwebhooks`, `stripe`, and the checks GitHub's
docs and the common tutorials show), rotations, the attempt header, and the API's rules."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
import stripe
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import assert_422_naming, make_endpoint, publish
from tests.support.receiver import Received, Receiver, Reply


def _one_delivery(
    gw: Gateway, receiver: Receiver, path: str, **endpoint: object
) -> tuple[dict[str, Any], dict[str, Any], Received]:
    created = make_endpoint(gw, receiver.url(path), **endpoint)
    event = publish(gw, "invoice.paid", {"amount": 12})
    [request] = receiver.wait_for(path, 1)
    return created, event, request


def _tutorial_check(secret: str, raw_body: bytes, header: str) -> bool:
    """How most webhook tutorials verify a delivery."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_hmac_with_defaults_passes_a_tutorial_receiver(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secret = "a-secret-of-our-own-choosing"
    created, event, request = _one_delivery(
        gw, receiver, path, signature={"scheme": "hmac"}, secret=secret
    )
    assert created["secret"] == secret
    assert created["signature"] == {
        "scheme": "hmac",
        "header": "X-Webhook-Signature",
        "algorithm": "sha256",
        "encoding": "hex",
        "prefix": "sha256=",
        "signed": "{body}",
        "timestamp_header": None,
        "id_header": None,
    }
    assert _tutorial_check(secret, request.body, request.headers["x-webhook-signature"])
    assert request.headers["x-webhook-attempt"] == "1"
    assert "webhook-signature" not in request.headers
    assert event["id"].encode() in request.body


def test_github_preset_verifies_as_githubs_docs_show(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created, event, request = _one_delivery(gw, receiver, path, signature={"scheme": "github"})
    secret = created["secret"]  # generated
    # docs.github.com "Validating webhook deliveries", Python example.
    digest = hmac.new(secret.encode("utf-8"), msg=request.body, digestmod=hashlib.sha256)
    expected = "sha256=" + digest.hexdigest()
    assert hmac.compare_digest(expected, request.headers["x-hub-signature-256"])
    assert request.headers["x-github-event"] == "invoice.paid"
    assert request.headers["x-github-delivery"] == event["id"]


def test_stripe_preset_is_accepted_by_construct_event(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created, event, request = _one_delivery(gw, receiver, path, signature={"scheme": "stripe"})
    verified = stripe.Webhook.construct_event(
        request.body.decode(), request.headers["stripe-signature"], created["secret"]
    )
    assert verified["id"] == event["id"]


def test_standard_is_the_default_and_says_its_attempt(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(500), Reply(200))
    created = make_endpoint(gw, receiver.url(path))
    assert created["signature"] == {"scheme": "standard"}
    publish(gw)
    requests = receiver.wait_for(path, 2)
    assert [r.headers["webhook-attempt"] for r in requests[:2]] == ["1", "2"]
    for request in requests[:2]:
        Webhook(created["secret"]).verify(request.body, request.headers)


def test_hmac_attempt_header_counts_retries(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(500), Reply(500), Reply(200))
    make_endpoint(gw, receiver.url(path), signature={"scheme": "stripe"})
    publish(gw)
    requests = receiver.wait_for(path, 3)
    assert [r.headers["x-webhook-attempt"] for r in requests[:3]] == ["1", "2", "3"]


@pytest.mark.parametrize("scheme, both", [("stripe", True), ("hmac", False), ("github", False)])
def test_rotation_overlap_per_scheme(
    gw: Gateway, receiver: Receiver, path: str, scheme: str, both: bool
) -> None:
    old = "the-first-secret-0001"
    created = make_endpoint(gw, receiver.url(path), signature={"scheme": scheme}, secret=old)
    new = "the-second-secret-002"
    rotated = gw.api.post(f"/v1/endpoints/{created['id']}/secret/rotate", json={"secret": new})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_secret_expires_at"] is not None
    publish(gw)
    [request] = receiver.wait_for(path, 1)
    body = request.body
    if scheme == "stripe":
        header = request.headers["stripe-signature"]
        assert header.count("v1=") == 2
        for secret in (old, new):
            stripe.Webhook.construct_event(body.decode(), header, secret)
    else:
        header = request.headers[
            "x-webhook-signature" if scheme == "hmac" else "x-hub-signature-256"
        ]
        assert _tutorial_check(new, body, header)
        assert not _tutorial_check(old, body, header)
    assert both == (scheme == "stripe")


def test_standard_rotation_still_sends_both(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path))
    rotated = gw.api.post(f"/v1/endpoints/{created['id']}/secret/rotate").json()
    publish(gw)
    [request] = receiver.wait_for(path, 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (created["secret"], rotated["secret"]):
        Webhook(secret).verify(request.body, request.headers)


def test_patch_changes_the_scheme_and_null_resets_it(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(gw, receiver.url(path))  # a generated whsec_ secret
    url = f"/v1/endpoints/{created['id']}"
    changed = gw.api.patch(url, json={"signature": {"scheme": "hmac", "algorithm": "sha512"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["signature"]["prefix"] == "sha512="
    assert gw.api.get(url).json()["signature"]["algorithm"] == "sha512"
    publish(gw)
    [request] = receiver.wait_for(path, 1)
    digest = hmac.new(created["secret"].encode(), request.body, hashlib.sha512).hexdigest()
    assert request.headers["x-webhook-signature"] == "sha512=" + digest

    reset = gw.api.patch(url, json={"signature": None})
    assert reset.status_code == 200, reset.text
    assert reset.json()["signature"] == {"scheme": "standard"}


def test_back_to_standard_needs_a_standard_secret(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(
        gw, receiver.url(path), signature={"scheme": "hmac"}, secret="not-a-whsec-secret"
    )
    url = f"/v1/endpoints/{created['id']}"
    assert_422_naming(gw.api.patch(url, json={"signature": {"scheme": "standard"}}), "signature")
    assert gw.api.get(url).json()["signature"]["scheme"] == "hmac"
    # A generated secret suits every scheme: rotate to one, then change.
    assert gw.api.post(f"{url}/secret/rotate").status_code == 200
    assert gw.api.patch(url, json={"signature": None}).status_code == 200


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"signature": {"scheme": "md5"}}, "signature"),
        ({"signature": {"scheme": "hmac", "algorithm": "md5"}}, "algorithm"),
        ({"signature": {"scheme": "hmac", "colour": "red"}}, "colour"),
        ({"signature": {"scheme": "hmac", "header": "Content-Type"}}, "header"),
        ({"signature": {"scheme": "hmac"}, "secret": "short"}, "secret"),
        ({"signature": {"scheme": "stripe"}, "secret": "x" * 257}, "secret"),
        ({"signature": {"scheme": "standard"}, "secret": "sixteen-chars-ok"}, "secret"),
        ({"secret": "sixteen-chars-ok"}, "secret"),
    ],
)
def test_bad_signature_fields_are_422_naming_them(
    gw: Gateway, receiver: Receiver, path: str, fields: dict[str, Any], named: str
) -> None:
    response = gw.api.post("/v1/endpoints", json={"url": receiver.url(path), **fields})
    assert_422_naming(response, named)
    assert "sixteen-chars-ok" not in response.text


def test_rotation_secret_is_checked_against_the_scheme(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    standard = make_endpoint(gw, receiver.url(path))
    response = gw.api.post(
        f"/v1/endpoints/{standard['id']}/secret/rotate", json={"secret": "sixteen-chars-ok"}
    )
    assert_422_naming(response, "secret")
    hmac_endpoint = make_endpoint(gw, receiver.url(path), signature={"scheme": "hmac"})
    response = gw.api.post(
        f"/v1/endpoints/{hmac_endpoint['id']}/secret/rotate", json={"secret": "sixteen-chars-ok"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["secret"] == "sixteen-chars-ok"


def test_hmac_signs_the_body_a_transformation_made(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secret = "a-secret-of-our-own-choosing"
    code = "function handler(webhook) { webhook.payload.data.seen = true; return webhook; }"
    _created, _event, request = _one_delivery(
        gw, receiver, path, signature={"scheme": "hmac"}, secret=secret, transformation=code
    )
    assert b'"seen":true' in request.body
    assert _tutorial_check(secret, request.body, request.headers["x-webhook-signature"])
