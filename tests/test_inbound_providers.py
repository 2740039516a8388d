"""Inbound receiver, provider by provider, signed with the providers' own libraries.

Stripe requests are signed with `stripe`, Slack requests with `slack_sdk`,
Standard Webhooks requests with `standardwebhooks`; GitHub is checked against
the test vector of GitHub's documentation. GitHub, GitLab, Shopify and generic
HMAC signatures are computed here with `hmac` directly. So the tests prove that
the gateway accepts what the providers send, not that it agrees with itself.

Every provider runs the same table of checks (accepted, tampered, wrong secret,
missing signature, expired timestamp, duplicate, routed on to subscribed
endpoints only); its own particularities follow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

from tests.conftest import Gateway
from tests.helpers import deliveries_of, make_endpoint, publish
from tests.receiver import Receiver

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

    def signed(self, delivery_id: str, *, note: str = TAMPER_MARK.decode(),
               timestamp: int | None = None, secret: str | None = None
               ) -> tuple[bytes, Headers]:
        body = self.make_body(delivery_id, note)
        ts = int(time.time()) if timestamp is None else timestamp
        return body, self.sign(self.secret if secret is None else secret, body, delivery_id, ts)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# Stripe: signed by the stripe library; the delivery id is the event's `id` in the body.

def _stripe_body(delivery_id: str, note: str) -> bytes:
    return _json({"id": delivery_id, "object": "event", "api_version": "2024-06-20",
                  "type": "invoice.paid", "livemode": False,
                  "data": {"object": {"id": "in_1", "object": "invoice", "description": note}}})


def _stripe_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret,
                                                               timestamp=ts)
    return {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header}


# GitHub: HMAC-SHA256 hex of the body; the delivery id is X-GitHub-Delivery.

def _github_body(delivery_id: str, note: str) -> bytes:
    return _json({"action": "opened",
                  "issue": {"number": 7, "title": note, "state": "open"},
                  "repository": {"id": 1, "full_name": "octo/hello"},
                  "sender": {"login": "octocat"}})


def _github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _github_sign(secret: str, body: bytes, delivery_id: str, ts: int,
                 event: str = "issues") -> Headers:
    return {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc123",
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": "42", "X-Hub-Signature-256": _github_signature(secret, body)}


# GitLab: the secret itself in X-Gitlab-Token; the delivery id is X-Gitlab-Event-UUID.

def _gitlab_body(delivery_id: str, note: str) -> bytes:
    return _json({"object_kind": "merge_request", "event_type": "merge_request",
                  "user": {"username": "root"}, "project": {"id": 1, "name": "hello"},
                  "object_attributes": {"iid": 3, "title": note, "action": "open"}})


def _gitlab_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    return {"Content-Type": "application/json", "User-Agent": "GitLab/17.0.0",
            "X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Instance": "https://gitlab.example",
            "X-Gitlab-Event-UUID": delivery_id, "X-Gitlab-Token": secret}


# Shopify: base64 HMAC-SHA256 of the body; the delivery id is X-Shopify-Webhook-Id.

def _shopify_body(delivery_id: str, note: str) -> bytes:
    return _json({"id": 820982911946154508, "email": "jon@example.com", "note": note,
                  "total_price": "10.00", "currency": "USD"})


def _shopify_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _shopify_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": _shopify_signature(secret, body),
            "X-Shopify-Shop-Domain": "example.myshopify.com", "X-Shopify-API-Version": "2024-07",
            "X-Shopify-Webhook-Id": delivery_id,
            "X-Shopify-Triggered-At": "2026-11-23T10:30:00.000Z"}


# Slack: signed by slack_sdk; the delivery id is the body's `event_id`.

def _slack_body(delivery_id: str, note: str) -> bytes:
    return _json({"token": "verification-token", "team_id": "T061EG9R6", "api_app_id": "A0PNCHHK2",
                  "event": {"type": "app_mention", "user": "U061F7AUR", "text": note,
                            "ts": "1515449522.000016", "channel": "C0LAN2Q65"},
                  "type": "event_callback", "event_id": delivery_id, "event_time": 1515449522})


def _slack_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    assert signature is not None
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature}


# Standard Webhooks: signed by the standardwebhooks library; the delivery id is webhook-id.

def _standard_body(delivery_id: str, note: str) -> bytes:
    return _json({"type": "user.created", "timestamp": "2026-11-23T10:30:00Z",
                  "data": {"id": "user_1", "name": note}})


def _standard_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    signature = Webhook(secret).sign(delivery_id, datetime.fromtimestamp(ts, tz=UTC),
                                     body.decode())
    return {"Content-Type": "application/json", "webhook-id": delivery_id,
            "webhook-timestamp": str(ts), "webhook-signature": signature}


# Generic HMAC, configured: sha512, base64, a prefix, an id header, a nested type field.

HMAC_OPTIONS = {"header": "X-Signature", "algorithm": "sha512", "encoding": "base64",
                "prefix": "sha512=", "id_header": "X-Delivery", "type_field": "event.kind"}


def _hmac_body(delivery_id: str, note: str) -> bytes:
    return _json({"event": {"kind": "build.finished", "id": 12}, "status": "green",
                  "note": note})


def _hmac_sign(secret: str, body: bytes, delivery_id: str, ts: int) -> Headers:
    digest = hmac.new(secret.encode(), body, hashlib.sha512).digest()
    return {"Content-Type": "application/json", "X-Delivery": delivery_id,
            "X-Signature": "sha512=" + base64.b64encode(digest).decode()}


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


CASES = [
    Case("stripe", "whsec_stripe_test_secret_0123", "whsec_stripe_other_secret",
         "Stripe-Signature", "invoice.paid", True, "evt_", _stripe_body, _stripe_sign),
    Case("github", "github-hook-secret", "another-github-secret",
         "X-Hub-Signature-256", "issues.opened", False, "", _github_body, _github_sign),
    Case("gitlab", "glpat-like-token-secret", "not-the-gitlab-token",
         "X-Gitlab-Token", "merge_request", False, "", _gitlab_body, _gitlab_sign),
    Case("shopify", "shpss_0123456789abcdef", "shpss_fedcba9876543210",
         "X-Shopify-Hmac-Sha256", "orders.create", False, "", _shopify_body, _shopify_sign),
    Case("slack", "8f742231b10e8888abcd99yyyzzz85a5", "0000000000000000000000000000000a",
         "X-Slack-Signature", "app_mention", True, "Ev", _slack_body, _slack_sign),
    Case("standard", _whsec(b"standard-webhooks-secret-32bytes"),
         _whsec(b"some-other-secret-of-32-bytes!!!"),
         "webhook-signature", "user.created", True, "msg_", _standard_body, _standard_sign),
    Case("hmac", "generic-hmac-secret", "wrong-hmac-secret",
         "X-Signature", "build.finished", False, "dlv-", _hmac_body, _hmac_sign,
         options=HMAC_OPTIONS),
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
    body: dict[str, Any] = {"name": f"{case.provider} source", "provider": case.provider,
                            "secret": case.secret, **fields}
    if case.options is not None and "options" not in fields:
        body["options"] = case.options
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    assert source["ingest_path"] == f"/in/{source['id']}"
    return source


def post_in(gw: Gateway, source: dict[str, Any] | str, body: bytes, headers: Headers
            ) -> httpx.Response:
    """What the provider does: POST to the ingest path, with no API key."""
    ingest_path = source if isinstance(source, str) else source["ingest_path"]
    return httpx.post(f"http://127.0.0.1:{gw.port}{ingest_path}", content=body, headers=headers,
                      timeout=30)


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


# --------------------------------------------------------------------------- every provider


@with_every_provider
def test_valid_request_is_accepted_and_stored_as_received(gw: Gateway, case: Case) -> None:
    source = create_source(gw, case)
    delivery_id = case.new_id()
    body, headers = case.signed(delivery_id)

    event_id = accepted(post_in(gw, source, body, headers))

    detail = event_detail(gw, event_id)
    assert detail["id"] == event_id
    assert detail["source_id"] == source["id"]
    assert detail["type"] == case.event_type
    assert detail["data"] == json.loads(body)
    assert detail["body"] == body.decode()
    assert detail["body_encoding"] == "utf-8"
    assert isinstance(detail["verification"], str) and detail["verification"]
    stored = detail["headers"]
    assert stored["content-type"].startswith("application/json")
    if case.provider == "gitlab":
        assert "x-gitlab-token" not in stored  # the token is the secret
        assert stored["x-gitlab-event-uuid"] == delivery_id
    else:
        assert stored[case.signature_header.lower()] == headers[case.signature_header]
    assert case.secret not in json.dumps(detail)
    assert [e["id"] for e in events(gw)] == [event_id]


@pytest.mark.parametrize("case", BODY_SIGNED, ids=str)
def test_body_tampered_by_one_byte_is_refused_and_not_stored(gw: Gateway, case: Case) -> None:
    source = create_source(gw, case)
    delivery_id = case.new_id()
    now = int(time.time())
    body, headers = case.signed(delivery_id, timestamp=now)
    tampered = tamper(body)
    # What the gateway computes for the tampered body: it must not say so.
    expected = case.sign(case.secret, tampered, delivery_id, now)
    response = post_in(gw, source, tampered, headers)
    assert_refused(response, case.secret, expected[case.signature_header])
    assert events(gw) == []


@with_every_provider
def test_wrong_secret_is_refused(gw: Gateway, case: Case) -> None:
    source = create_source(gw, case)
    delivery_id = case.new_id()
    now = int(time.time())
    body, headers = case.signed(delivery_id, timestamp=now, secret=case.wrong_secret)
    expected = case.sign(case.secret, body, delivery_id, now)[case.signature_header]
    assert_refused(post_in(gw, source, body, headers), case.secret, expected)
    assert events(gw) == []


@with_every_provider
def test_missing_signature_header_is_refused(gw: Gateway, case: Case) -> None:
    source = create_source(gw, case)
    body, headers = case.signed(case.new_id())
    expected = headers[case.signature_header]
    assert_refused(post_in(gw, source, body, without(headers, case.signature_header)),
                   case.secret, expected)
    assert events(gw) == []


@pytest.mark.parametrize("case", TIMESTAMPED, ids=str)
def test_expired_timestamp_is_refused_although_the_signature_is_valid(
    gw: Gateway, case: Case
) -> None:
    source = create_source(gw, case)  # default tolerance: 300 s
    assert source["tolerance_seconds"] == 300
    ten_minutes_ago = int(time.time()) - 600
    body, headers = case.signed(case.new_id(), timestamp=ten_minutes_ago)
    assert_refused(post_in(gw, source, body, headers), case.secret)
    assert events(gw) == []

    # The same request is fine where the source's tolerance covers it: only age refused it.
    lenient = create_source(gw, case, tolerance_seconds=900)
    accepted(post_in(gw, lenient, body, headers))


@with_every_provider
def test_duplicate_delivery_answers_the_first_event_and_stores_nothing(
    gw: Gateway, case: Case
) -> None:
    source = create_source(gw, case)
    delivery_id = case.new_id()
    now = int(time.time())
    body, headers = case.signed(delivery_id, timestamp=now)
    first = accepted(post_in(gw, source, body, headers))

    # The provider retries: the same delivery, re-signed (a later timestamp where signed).
    body2, headers2 = case.signed(delivery_id, timestamp=now + 1 if case.timestamped else now)
    assert body2 == body
    again = post_in(gw, source, body2, headers2)
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate", "event_id": first}

    # The delivery id decides, not the bytes: a changed body under the same id is a repeat.
    body3, headers3 = case.signed(delivery_id, note="changed-note")
    assert body3 != body
    third = post_in(gw, source, body3, headers3)
    assert third.status_code == 200, third.text
    assert third.json() == {"status": "duplicate", "event_id": first}
    assert [e["id"] for e in events(gw)] == [first]

    # Another delivery id (of another event, so another body) is another event.
    other = accepted(post_in(gw, source, *case.signed(case.new_id(), note="another event")))
    assert other != first
    assert {e["id"] for e in events(gw)} == {first, other}


@with_every_provider
def test_accepted_event_is_delivered_to_endpoints_of_its_source_only(
    gw: Gateway, receiver: Receiver, path: str, case: Case
) -> None:
    source = create_source(gw, case)
    other_source = create_source(gw, case)
    # Subscribed by source and by the type the gateway gives the provider's event.
    endpoint = make_endpoint(gw, receiver.url(path), source_ids=[source["id"]],
                             event_types=[case.event_type])
    other_path = f"{path}-other"
    other_endpoint = make_endpoint(gw, receiver.url(other_path), source_ids=[other_source["id"]])

    body, headers = case.signed(case.new_id())
    event_id = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, event_id)["type"] == case.event_type

    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == event_id
    assert payload["id"] == event_id
    assert payload["type"] == case.event_type
    assert payload["data"] == json.loads(body)

    # Deliveries are created with the event: the other endpoint has none, now or later.
    [delivery] = deliveries_of(gw, event_id)
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["endpoint_id"] != other_endpoint["id"]
    assert receiver.received(other_path) == []


@with_every_provider
def test_secret_is_shown_only_on_create_and_by_the_secret_route(gw: Gateway, case: Case) -> None:
    created = create_source(gw, case)
    assert created["secret"] == case.secret
    source_id = created["id"]

    secret = gw.api.get(f"/v1/sources/{source_id}/secret")
    assert secret.status_code == 200, secret.text
    assert secret.json() == {"secret": case.secret}

    listed = gw.api.get("/v1/sources")
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["data"]
    assert item["id"] == source_id
    assert "secret" not in item
    assert case.secret not in listed.text

    one = gw.api.get(f"/v1/sources/{source_id}")
    assert one.status_code == 200, one.text
    assert "secret" not in one.json()
    assert case.secret not in one.text
    assert one.json()["provider"] == case.provider
    assert one.json()["ingest_path"] == f"/in/{source_id}"

    patched = gw.api.patch(f"/v1/sources/{source_id}", json={"name": "renamed"})
    assert patched.status_code == 200, patched.text
    assert "secret" not in patched.json()
    assert case.secret not in patched.text


# --------------------------------------------------------------------------- Stripe


def test_stripe_header_with_several_v1_signatures_is_accepted(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["stripe"]
    source = create_source(gw, case)
    now = int(time.time())
    body = case.make_body(case.new_id(), "several")
    right = stripe.WebhookSignature.generate_signature_header(body.decode(), case.secret,
                                                              timestamp=now)
    wrong = stripe.WebhookSignature.generate_signature_header(body.decode(), case.wrong_secret,
                                                              timestamp=now)
    right_v1 = right.split(",v1=")[1]
    wrong_v1 = wrong.split(",v1=")[1]
    # As during a secret roll: one v1 per live secret, and a v0 Stripe still sends in test mode.
    header = f"t={now},v1={wrong_v1},v1={right_v1},v0={'0' * 64}"
    event_id = accepted(post_in(gw, source, body, {"Stripe-Signature": header,
                                                   "Content-Type": "application/json"}))
    assert event_detail(gw, event_id)["type"] == "invoice.paid"

    # Only wrong ones: refused.
    only_wrong = f"t={now},v1={wrong_v1},v0={'0' * 64}"
    assert_refused(post_in(gw, source, case.make_body(case.new_id(), "x"),
                           {"Stripe-Signature": only_wrong}), case.secret)


def test_stripe_deduplicates_on_the_event_id_in_the_body(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["stripe"]
    source = create_source(gw, case)
    now = int(time.time())
    body = case.make_body("evt_same_id", "first")
    first = accepted(post_in(gw, source, body, _stripe_sign(case.secret, body, "", now)))
    # A retry comes with a fresh signature; the event id in the body is what repeats.
    retry = post_in(gw, source, body, _stripe_sign(case.secret, body, "", now - 60))
    assert retry.json() == {"status": "duplicate", "event_id": first}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- GitHub


def test_github_documentation_test_vector_is_accepted(gw: Gateway) -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    secret = "It's a Secret to Everybody"
    body = b"Hello, World!"
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert _github_signature(secret, body) == documented

    source = gw.api.post("/v1/sources", json={"name": "gh", "provider": "github",
                                              "secret": secret})
    assert source.status_code == 201, source.text
    event_id = accepted(post_in(gw, source.json(), body, {
        "X-Hub-Signature-256": documented, "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }))
    detail = event_detail(gw, event_id)
    assert detail["body"] == "Hello, World!"
    assert detail["type"] == "push"


def test_github_ping_event_is_accepted(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    body = _json({"zen": "Keep it logically awesome.", "hook_id": 42,
                  "hook": {"type": "Repository", "id": 42, "active": True, "events": ["issues"],
                           "config": {"content_type": "json", "insecure_ssl": "0",
                                      "url": "https://gateway.example/in/src"}},
                  "repository": {"id": 1, "full_name": "octo/hello"}})
    headers = _github_sign(case.secret, body, str(uuid.uuid4()), 0, event="ping")
    event_id = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, event_id)["type"] == "ping"


def test_github_deduplicates_on_x_github_delivery(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    delivery = str(uuid.uuid4())
    body = _github_body(delivery, "same")
    first = accepted(post_in(gw, source, body, _github_sign(case.secret, body, delivery, 0)))
    redelivered = post_in(gw, source, body, _github_sign(case.secret, body, delivery, 0))
    assert redelivered.json() == {"status": "duplicate", "event_id": first}
    # The same bytes under another delivery id: a captured request replayed (the id is
    # not signed), which the body's digest finds.
    replayed = post_in(gw, source, body, _github_sign(case.secret, body, str(uuid.uuid4()), 0))
    assert replayed.json() == {"status": "duplicate", "event_id": first}
    assert len(events(gw)) == 1


# Deduplication on the body's digest, for schemes whose delivery id is not signed.
UNSIGNED_ID = {"github": True, "gitlab": True, "shopify": False, "hmac": False}


@pytest.mark.parametrize("provider", list(UNSIGNED_ID))
def test_a_replay_under_a_new_delivery_id_is_a_duplicate_where_the_body_decides(
    gw: Gateway, provider: str
) -> None:
    """A captured request, replayed with a fresh id: a duplicate while the source
    deduplicates on the body (by default where the provider never sends one body as two
    events), a new event where it does not."""
    case = CASE_BY_PROVIDER[provider]
    default = create_source(gw, case)
    assert default["deduplicate_body"] is UNSIGNED_ID[provider]
    chosen = create_source(gw, case, deduplicate_body=not UNSIGNED_ID[provider])
    assert chosen["deduplicate_body"] is not UNSIGNED_ID[provider]
    for source, on in ((default, UNSIGNED_ID[provider]), (chosen, not UNSIGNED_ID[provider])):
        body, headers = case.signed(case.new_id())
        first = accepted(post_in(gw, source, body, headers))
        for _ in range(3):
            replay = post_in(gw, source, body, case.sign(case.secret, body, case.new_id(), 0))
            assert replay.status_code == 200, replay.text
            assert (replay.json()["status"] == "duplicate") is on, replay.json()
            assert (replay.json()["event_id"] == first) is on
        # The provider's own retry is a duplicate either way.
        retry = post_in(gw, source, body, headers)
        assert retry.json() == {"status": "duplicate", "event_id": first}
    # Back to the provider's default with null.
    patched = gw.api.patch(f"/v1/sources/{chosen['id']}", json={"deduplicate_body": None})
    assert patched.status_code == 200 and patched.json()["deduplicate_body"] is UNSIGNED_ID[
        provider]


def test_github_form_encoded_body_is_accepted_and_typed_from_its_payload(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    payload = {"action": "closed", "issue": {"number": 7, "title": "a & b = c?"},
               "repository": {"full_name": "octo/hello"}}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": _github_signature(case.secret, body)}
    event_id = accepted(post_in(gw, source, body, headers))
    detail = event_detail(gw, event_id)
    assert detail["type"] == "issues.closed"
    assert detail["data"] == payload
    assert detail["body"] == body.decode()


# --------------------------------------------------------------------------- GitLab


def test_gitlab_token_is_not_kept_and_dedup_is_on_the_event_uuid(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["gitlab"]
    source = create_source(gw, case)
    event_uuid = str(uuid.uuid4())
    body, headers = case.signed(event_uuid)
    event_id = accepted(post_in(gw, source, body, headers))

    detail = event_detail(gw, event_id)
    assert "x-gitlab-token" not in detail["headers"]
    assert detail["headers"]["x-gitlab-event-uuid"] == event_uuid
    assert detail["headers"]["x-gitlab-event"] == "Merge Request Hook"
    assert case.secret not in json.dumps(detail)
    assert detail["type"] == "merge_request"

    again = post_in(gw, source, body, headers)
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- Shopify


def test_shopify_base64_hmac_and_dedup_on_webhook_id(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["shopify"]
    source = create_source(gw, case)
    webhook_id = str(uuid.uuid4())
    body, headers = case.signed(webhook_id)
    digest = hmac.new(case.secret.encode(), body, hashlib.sha256).digest()
    assert headers["X-Shopify-Hmac-Sha256"] == base64.b64encode(digest).decode()

    # The same HMAC hex-encoded is not Shopify's scheme.
    hex_headers = {**headers, "X-Shopify-Hmac-Sha256": digest.hex()}
    assert_refused(post_in(gw, source, body, hex_headers), case.secret)

    event_id = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, event_id)["type"] == "orders.create"
    again = post_in(gw, source, body, headers)
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- Slack


def test_slack_url_verification_is_answered_with_its_challenge(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["slack"]
    source = create_source(gw, case)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = _json({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                  "type": "url_verification"})
    headers = _slack_sign(case.secret, body, "", int(time.time()))

    response = post_in(gw, source, body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"challenge": challenge}
    assert events(gw) == []

    # The handshake is signed too: unsigned or wrongly signed, it is refused.
    forged = _slack_sign(case.wrong_secret, body, "", int(time.time()))
    assert_refused(post_in(gw, source, body, forged), case.secret)
    assert events(gw) == []


def test_slack_retry_is_a_duplicate_on_event_id(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["slack"]
    source = create_source(gw, case)
    event_id_slack = case.new_id()
    now = int(time.time())
    body, headers = case.signed(event_id_slack, timestamp=now)
    first = accepted(post_in(gw, source, body, headers))
    # Slack retries with a new timestamp and signature and X-Slack-Retry-Num.
    _, retry_headers = case.signed(event_id_slack, timestamp=now + 2)
    retry_headers.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    retry = post_in(gw, source, body, retry_headers)
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"status": "duplicate", "event_id": first}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- Standard Webhooks


@pytest.mark.parametrize("secret", ["not a whsec secret!", "whsec_!!!not-base64!!!", "whsec_"])
def test_standard_source_with_a_secret_that_is_not_whsec_base64_is_refused(
    gw: Gateway, secret: str
) -> None:
    response = gw.api.post("/v1/sources", json={"name": "std", "provider": "standard",
                                                "secret": secret})
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert gw.api.get("/v1/sources").json()["data"] == []


def test_standard_source_accepts_an_unpadded_secret_the_reference_library_accepts(
    gw: Gateway,
) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")
    assert not secret.endswith("=")
    Webhook(secret)  # the reference library takes it (it restores the padding itself)
    response = gw.api.post("/v1/sources", json={"name": "std", "provider": "standard",
                                                "secret": secret})
    assert response.status_code == 201, response.text
    msg_id = "msg_unpadded"
    body = _standard_body(msg_id, "unpadded")
    accepted(post_in(gw, response.json(), body,
                     _standard_sign(secret, body, msg_id, int(time.time()))))


def test_standard_webhooks_dedup_on_webhook_id_and_several_signatures(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["standard"]
    source = create_source(gw, case)
    msg_id = case.new_id()
    now = int(time.time())
    body, headers = case.signed(msg_id, timestamp=now)
    wrong = Webhook(case.wrong_secret).sign(msg_id, datetime.fromtimestamp(now, tz=UTC),
                                            body.decode())
    # During a rotation the sender signs with both secrets, space-separated.
    headers["webhook-signature"] = f"{wrong} {headers['webhook-signature']}"
    first = accepted(post_in(gw, source, body, headers))

    _, retry = case.signed(msg_id, timestamp=now + 3)
    again = post_in(gw, source, body, retry)
    assert again.json() == {"status": "duplicate", "event_id": first}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- generic HMAC


def test_hmac_sha512_base64_prefix_with_id_header_and_nested_type(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["hmac"]
    source = create_source(gw, case)
    assert source["options"]["header"] == "X-Signature"
    assert source["options"]["algorithm"] == "sha512"
    assert source["options"]["encoding"] == "base64"
    assert source["options"]["prefix"] == "sha512="
    assert source["options"]["id_header"] == "X-Delivery"
    assert source["options"]["type_field"] == "event.kind"

    delivery = case.new_id()
    body, headers = case.signed(delivery)
    event_id = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, event_id)["type"] == "build.finished"

    # Without the configured prefix, the same signature is refused.
    unprefixed = {**headers, "X-Signature": headers["X-Signature"].removeprefix("sha512=")}
    assert_refused(post_in(gw, source, body, unprefixed), case.secret)
    # A sha256 signature where sha512 is configured is refused.
    sha256 = base64.b64encode(hmac.new(case.secret.encode(), body, hashlib.sha256).digest())
    assert_refused(post_in(gw, source, body, {**headers, "X-Signature":
                                              "sha512=" + sha256.decode()}), case.secret)

    again = post_in(gw, source, body, headers)
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    assert len(events(gw)) == 1


def test_hmac_sha1_hex_without_prefix_deduplicates_on_the_body_sha256(gw: Gateway) -> None:
    secret = "sha1-hex-secret"
    response = gw.api.post("/v1/sources", json={
        "name": "legacy", "provider": "hmac", "secret": secret,
        "options": {"header": "X-Hook-Signature", "algorithm": "sha1", "encoding": "hex",
                    "type_field": "kind"},
    })
    assert response.status_code == 201, response.text
    source = response.json()

    def signed(payload: dict[str, Any]) -> tuple[bytes, Headers]:
        body = _json(payload)
        return body, {"Content-Type": "application/json",
                      "X-Hook-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}

    body, headers = signed({"kind": "job.done", "n": 1})
    first = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, first)["type"] == "job.done"

    # No id header configured: the same bytes again are the same delivery.
    again = post_in(gw, source, body, headers)
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate", "event_id": first}
    # Any other bytes are another delivery.
    second = accepted(post_in(gw, source, *signed({"kind": "job.done", "n": 2})))
    assert second != first
    assert len(events(gw)) == 2

    sha256_hex = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert_refused(post_in(gw, source, body, {"X-Hook-Signature": sha256_hex}), secret)


@pytest.mark.parametrize("options", [None, {}, {"algorithm": "sha256"},
                                     {"header": "X-Sig", "algorithm": "md5"},
                                     {"header": "X-Sig", "encoding": "base32"}])
def test_hmac_source_without_valid_options_is_refused(
    gw: Gateway, options: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"name": "h", "provider": "hmac", "secret": "s3cret"}
    if options is not None:
        body["options"] = options
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 422, response.text
    assert gw.api.get("/v1/sources").json()["data"] == []


# --------------------------------------------------------------------------- events of sources


def test_events_list_filters_by_source_id(gw: Gateway) -> None:
    stripe_case, github_case = CASE_BY_PROVIDER["stripe"], CASE_BY_PROVIDER["github"]
    stripe_source = create_source(gw, stripe_case)
    github_source = create_source(gw, github_case)
    from_stripe = accepted(post_in(gw, stripe_source, *stripe_case.signed(stripe_case.new_id())))
    from_github = accepted(post_in(gw, github_source, *github_case.signed(github_case.new_id())))
    published = publish(gw, "user.created")["id"]

    assert [e["id"] for e in events(gw, source_id=stripe_source["id"])] == [from_stripe]
    assert [e["id"] for e in events(gw, source_id=github_source["id"])] == [from_github]
    assert {e["id"] for e in events(gw)} == {from_stripe, from_github, published}
    listed = {e["id"]: e for e in events(gw)}
    assert listed[from_stripe]["source_id"] == stripe_source["id"]
    assert listed[published]["source_id"] is None

    # A published event shows no received request.
    detail = event_detail(gw, published)
    assert detail.get("body") is None and detail.get("verification") is None


def test_unknown_source_is_404_and_stores_nothing(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    body, headers = case.signed(case.new_id())
    response = post_in(gw, "/in/src_doesnotexist", body, headers)
    assert response.status_code == 404, response.text
    assert events(gw) == []


@pytest.mark.parametrize("case", [CASE_BY_PROVIDER["github"], CASE_BY_PROVIDER["stripe"]],
                         ids=str)
def test_concurrent_retries_of_one_delivery_store_one_event(gw: Gateway, case: Case) -> None:
    """A provider that timed out retries while the first request is still in flight."""
    source = create_source(gw, case)
    body, headers = case.signed(case.new_id())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_in(gw, source, body, headers), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 7
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert len(events(gw)) == 1


def test_body_over_the_limit_is_413_and_stores_nothing(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    body = _json({"action": "opened", "blob": "x" * (1024 * 1024)})
    headers = _github_sign(case.secret, body, str(uuid.uuid4()), 0)
    response = post_in(gw, source, body, headers)
    assert response.status_code == 413, response.text
    assert events(gw) == []


def test_unknown_provider_is_refused(gw: Gateway) -> None:
    response = gw.api.post("/v1/sources", json={"name": "x", "provider": "bitbucket",
                                                "secret": "s"})
    assert response.status_code == 422, response.text
