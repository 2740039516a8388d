"""Requests as each provider signs them, for the inbound tests: the cases, and helpers
to create sources and post to them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

from tests.support.gateway import Gateway

TAMPER_MARK = b"tamper-me"

Headers = dict[str, str]


# --------------------------------------------------------------------------- provider cases


@dataclass(frozen=True)
class Case:
    """One provider: how to create its source, build its bodies and sign them."""

    provider: str
    secret: str
    wrong_secret: str
    signature_header: str  # the header whose absence must be refused
    event_type: str  # what the gateway must call the event built by `make_body`
    timestamped: bool  # whether the scheme signs a timestamp (and so can expire)
    id_prefix: str
    make_body: Callable[[str, str], bytes]  # (delivery id, note) -> raw body
    sign: Callable[[str, bytes, str, int], Headers]  # (secret, body, delivery id, ts) -> headers
    options: dict[str, Any] | None = None

    def __str__(self) -> str:
        return self.provider

    def new_id(self) -> str:
        return f"{self.id_prefix}{uuid.uuid4().hex}"

    def signed(
        self,
        delivery_id: str,
        *,
        note: str = TAMPER_MARK.decode(),
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, Headers]:
        body = self.make_body(delivery_id, note)
        ts = int(time.time()) if timestamp is None else timestamp
        return body, self.sign(self.secret if secret is None else secret, body, delivery_id, ts)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# Stripe: signed by the stripe library; the delivery id is the event's `id` in the body.


def _stripe_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "id": delivery_id,
            "object": "event",
            "api_version": "2024-06-20",
            "type": "invoice.paid",
            "livemode": False,
            "data": {"object": {"id": "in_1", "object": "invoice", "description": note}},
        }
    )


def stripe_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=ts)
    return {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header}


# GitHub: HMAC-SHA256 hex of the body; the delivery id is X-GitHub-Delivery.


def github_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "action": "opened",
            "issue": {"number": 7, "title": note, "state": "open"},
            "repository": {"id": 1, "full_name": "octo/hello"},
            "sender": {"login": "octocat"},
        }
    )


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_sign(
    secret: str, body: bytes, delivery_id: str, ts: int, event: str = "issues"
) -> Headers:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "42",
        "X-Hub-Signature-256": github_signature(secret, body),
    }


# GitLab: the secret itself in X-Gitlab-Token; the delivery id is X-Gitlab-Event-UUID.


def _gitlab_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"username": "root"},
            "project": {"id": 1, "name": "hello"},
            "object_attributes": {"iid": 3, "title": note, "action": "open"},
        }
    )


def _gitlab_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.0.0",
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Instance": "https://gitlab.example",
        "X-Gitlab-Event-UUID": delivery_id,
        "X-Gitlab-Token": secret,
    }


# Shopify: base64 HMAC-SHA256 of the body; the delivery id is X-Shopify-Webhook-Id.


def _shopify_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "id": 820982911946154508,
            "email": "jon@example.com",
            "note": note,
            "total_price": "10.00",
            "currency": "USD",
        }
    )


def _shopify_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _shopify_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": _shopify_signature(secret, body),
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-API-Version": "2024-07",
        "X-Shopify-Webhook-Id": delivery_id,
        "X-Shopify-Triggered-At": "2026-11-23T10:30:00.000Z",
    }


# Slack: signed by slack_sdk; the delivery id is the body's `event_id`.


def _slack_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "token": "verification-token",
            "team_id": "T061EG9R6",
            "api_app_id": "A0PNCHHK2",
            "event": {
                "type": "app_mention",
                "user": "U061F7AUR",
                "text": note,
                "ts": "1515449522.000016",
                "channel": "C0LAN2Q65",
            },
            "type": "event_callback",
            "event_id": delivery_id,
            "event_time": 1515449522,
        }
    )


def slack_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    assert signature is not None
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature,
    }


# Standard Webhooks: signed by the standardwebhooks library; the delivery id is webhook-id.


def standard_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {
            "type": "user.created",
            "timestamp": "2026-11-23T10:30:00Z",
            "data": {"id": "user_1", "name": note},
        }
    )


def standard_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    signature = Webhook(secret).sign(delivery_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }


# Generic HMAC, configured: sha512, base64, a prefix, an id header, a nested type field.

HMAC_OPTIONS = {
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "sha512=",
    "id_header": "X-Delivery",
    "type_field": "event.kind",
}


def _hmac_body(delivery_id: str, note: str) -> bytes:
    return json_bytes(
        {"event": {"kind": "build.finished", "id": 12}, "status": "green", "note": note}
    )


def _hmac_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    digest = hmac.new(secret.encode(), body, hashlib.sha512).digest()
    return {
        "Content-Type": "application/json",
        "X-Delivery": delivery_id,
        "X-Signature": "sha512=" + base64.b64encode(digest).decode(),
    }


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


CASES = [
    Case(
        "stripe",
        "whsec_stripe_test_secret_0123",
        "whsec_stripe_other_secret",
        "Stripe-Signature",
        "invoice.paid",
        True,
        "evt_",
        _stripe_body,
        stripe_sign,
    ),
    Case(
        "github",
        "github-hook-secret",
        "another-github-secret",
        "X-Hub-Signature-256",
        "issues.opened",
        False,
        "",
        github_body,
        github_sign,
    ),
    Case(
        "gitlab",
        "glpat-like-token-secret",
        "not-the-gitlab-token",
        "X-Gitlab-Token",
        "merge_request",
        False,
        "",
        _gitlab_body,
        _gitlab_sign,
    ),
    Case(
        "shopify",
        "shpss_0123456789abcdef",
        "shpss_fedcba9876543210",
        "X-Shopify-Hmac-Sha256",
        "orders.create",
        False,
        "",
        _shopify_body,
        _shopify_sign,
    ),
    Case(
        "slack",
        "8f742231b10e8888abcd99yyyzzz85a5",
        "0000000000000000000000000000000a",
        "X-Slack-Signature",
        "app_mention",
        True,
        "Ev",
        _slack_body,
        slack_sign,
    ),
    Case(
        "standard",
        _whsec(b"standard-webhooks-secret-32bytes"),
        _whsec(b"some-other-secret-of-32-bytes!!!"),
        "webhook-signature",
        "user.created",
        True,
        "msg_",
        standard_body,
        standard_sign,
    ),
    Case(
        "hmac",
        "generic-hmac-secret",
        "wrong-hmac-secret",
        "X-Signature",
        "build.finished",
        False,
        "dlv-",
        _hmac_body,
        _hmac_sign,
        options=HMAC_OPTIONS,
    ),
]
TIMESTAMPED = [case for case in CASES if case.timestamped]
# GitLab's X-Gitlab-Token is the secret itself, sent as is: it authenticates the sender but
# signs no body, so a tampered body cannot be told from the original (GitLab's HMAC signing
# token, Standard Webhooks headers, is still behind a feature flag and not this provider).
BODY_SIGNED = [case for case in CASES if case.provider != "gitlab"]
CASE_BY_PROVIDER = {case.provider: case for case in CASES}

with_every_provider = pytest.mark.parametrize("case", CASES, ids=str)


# --------------------------------------------------------------------------- steps


def create_source(gw: Gateway, case: Case, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"{case.provider} source",
        "provider": case.provider,
        "secret": case.secret,
        **fields,
    }
    if case.options is not None and "options" not in fields:
        body["options"] = case.options
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    assert source["ingest_path"] == f"/in/{source['id']}"
    return source


def post_in(
    gw: Gateway, source: dict[str, Any] | str, body: bytes, headers: Headers
) -> httpx.Response:
    """What the provider does: POST to the ingest path, with no API key."""
    ingest_path = source if isinstance(source, str) else source["ingest_path"]
    return httpx.post(
        f"http://127.0.0.1:{gw.port}{ingest_path}", content=body, headers=headers, timeout=30
    )


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "accepted", answer
    assert set(answer) == {"status", "event_id"}, answer
    assert answer["event_id"].startswith("evt_"), answer
    return str(answer["event_id"])


def events(gw: Gateway, **params: str) -> list[dict[str, Any]]:
    response = gw.api.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def event_detail(gw: Gateway, event_id: str) -> dict[str, Any]:
    response = gw.api.get(f"/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def without(headers: Headers, name: str) -> Headers:
    return {k: v for k, v in headers.items() if k.lower() != name.lower()}


def tamper(body: bytes) -> bytes:
    """The same body with exactly one byte changed."""
    assert body.count(TAMPER_MARK) == 1
    tampered = body.replace(TAMPER_MARK, TAMPER_MARK[:-1] + b"E")
    assert len(tampered) == len(body)
    assert sum(a != b for a, b in zip(body, tampered, strict=True)) == 1
    return tampered


def secret_material(value: str) -> list[str]:
    """The pieces of a signature header that would give something away if echoed."""
    return [piece for piece in re.split(r"[\s,=]+", value) if len(piece) >= 16]


def assert_refused(response: httpx.Response, *secrets: str) -> None:
    """401 with a detail that gives away neither the secret nor the expected signature."""
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for secret in secrets:
        for piece in [secret, *secret_material(secret)]:
            assert piece not in response.text, f"the 401 answer gives away {piece!r}"
