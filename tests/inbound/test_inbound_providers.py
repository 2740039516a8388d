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
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe
from standardwebhooks import Webhook

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish
from tests.support.providers import (
    BODY_SIGNED,
    CASE_BY_PROVIDER,
    TIMESTAMPED,
    Case,
    Headers,
    accepted,
    assert_refused,
    create_source,
    event_detail,
    events,
    github_body,
    github_sign,
    github_signature,
    json_bytes,
    post_in,
    slack_sign,
    standard_body,
    standard_sign,
    stripe_sign,
    tamper,
    with_every_provider,
    without,
)
from tests.support.receiver import Receiver

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
    assert_refused(
        post_in(gw, source, body, without(headers, case.signature_header)), case.secret, expected
    )
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
    endpoint = make_endpoint(
        gw, receiver.url(path), source_ids=[source["id"]], event_types=[case.event_type]
    )
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
    right = stripe.WebhookSignature.generate_signature_header(
        body.decode(), case.secret, timestamp=now
    )
    wrong = stripe.WebhookSignature.generate_signature_header(
        body.decode(), case.wrong_secret, timestamp=now
    )
    right_v1 = right.split(",v1=")[1]
    wrong_v1 = wrong.split(",v1=")[1]
    # As during a secret roll: one v1 per live secret, and a v0 Stripe still sends in test mode.
    header = f"t={now},v1={wrong_v1},v1={right_v1},v0={'0' * 64}"
    event_id = accepted(
        post_in(gw, source, body, {"Stripe-Signature": header, "Content-Type": "application/json"})
    )
    assert event_detail(gw, event_id)["type"] == "invoice.paid"

    # Only wrong ones: refused.
    only_wrong = f"t={now},v1={wrong_v1},v0={'0' * 64}"
    assert_refused(
        post_in(gw, source, case.make_body(case.new_id(), "x"), {"Stripe-Signature": only_wrong}),
        case.secret,
    )


def test_stripe_deduplicates_on_the_event_id_in_the_body(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["stripe"]
    source = create_source(gw, case)
    now = int(time.time())
    body = case.make_body("evt_same_id", "first")
    first = accepted(post_in(gw, source, body, stripe_sign(case.secret, body, "", now)))
    # A retry comes with a fresh signature; the event id in the body is what repeats.
    retry = post_in(gw, source, body, stripe_sign(case.secret, body, "", now - 60))
    assert retry.json() == {"status": "duplicate", "event_id": first}
    assert len(events(gw)) == 1


# --------------------------------------------------------------------------- GitHub


def test_github_documentation_test_vector_is_accepted(gw: Gateway) -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    secret = "It's a Secret to Everybody"
    body = b"Hello, World!"
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, body) == documented

    source = gw.api.post("/v1/sources", json={"name": "gh", "provider": "github", "secret": secret})
    assert source.status_code == 201, source.text
    event_id = accepted(
        post_in(
            gw,
            source.json(),
            body,
            {
                "X-Hub-Signature-256": documented,
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
            },
        )
    )
    detail = event_detail(gw, event_id)
    assert detail["body"] == "Hello, World!"
    assert detail["type"] == "push"


def test_github_ping_event_is_accepted(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    body = json_bytes(
        {
            "zen": "Keep it logically awesome.",
            "hook_id": 42,
            "hook": {
                "type": "Repository",
                "id": 42,
                "active": True,
                "events": ["issues"],
                "config": {
                    "content_type": "json",
                    "insecure_ssl": "0",
                    "url": "https://gateway.example/in/src",
                },
            },
            "repository": {"id": 1, "full_name": "octo/hello"},
        }
    )
    headers = github_sign(case.secret, body, str(uuid.uuid4()), 0, event="ping")
    event_id = accepted(post_in(gw, source, body, headers))
    assert event_detail(gw, event_id)["type"] == "ping"


def test_github_deduplicates_on_x_github_delivery(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    delivery = str(uuid.uuid4())
    body = github_body(delivery, "same")
    first = accepted(post_in(gw, source, body, github_sign(case.secret, body, delivery, 0)))
    redelivered = post_in(gw, source, body, github_sign(case.secret, body, delivery, 0))
    assert redelivered.json() == {"status": "duplicate", "event_id": first}
    # The same bytes under another delivery id: a captured request replayed (the id is
    # not signed), which the body's digest finds.
    replayed = post_in(gw, source, body, github_sign(case.secret, body, str(uuid.uuid4()), 0))
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
    assert (
        patched.status_code == 200 and patched.json()["deduplicate_body"] is UNSIGNED_ID[provider]
    )


def test_github_form_encoded_body_is_accepted_and_typed_from_its_payload(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    payload = {
        "action": "closed",
        "issue": {"number": 7, "title": "a & b = c?"},
        "repository": {"full_name": "octo/hello"},
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(case.secret, body),
    }
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
    body = json_bytes(
        {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}
    )
    headers = slack_sign(case.secret, body, "", int(time.time()))

    response = post_in(gw, source, body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"challenge": challenge}
    assert events(gw) == []

    # The handshake is signed too: unsigned or wrongly signed, it is refused.
    forged = slack_sign(case.wrong_secret, body, "", int(time.time()))
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
    response = gw.api.post(
        "/v1/sources", json={"name": "std", "provider": "standard", "secret": secret}
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert gw.api.get("/v1/sources").json()["data"] == []


def test_standard_source_accepts_an_unpadded_secret_the_reference_library_accepts(
    gw: Gateway,
) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")
    assert not secret.endswith("=")
    Webhook(secret)  # the reference library takes it (it restores the padding itself)
    response = gw.api.post(
        "/v1/sources", json={"name": "std", "provider": "standard", "secret": secret}
    )
    assert response.status_code == 201, response.text
    msg_id = "msg_unpadded"
    body = standard_body(msg_id, "unpadded")
    accepted(
        post_in(gw, response.json(), body, standard_sign(secret, body, msg_id, int(time.time())))
    )


def test_standard_webhooks_dedup_on_webhook_id_and_several_signatures(gw: Gateway) -> None:
    case = CASE_BY_PROVIDER["standard"]
    source = create_source(gw, case)
    msg_id = case.new_id()
    now = int(time.time())
    body, headers = case.signed(msg_id, timestamp=now)
    wrong = Webhook(case.wrong_secret).sign(
        msg_id, datetime.fromtimestamp(now, tz=UTC), body.decode()
    )
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
    assert_refused(
        post_in(gw, source, body, {**headers, "X-Signature": "sha512=" + sha256.decode()}),
        case.secret,
    )

    again = post_in(gw, source, body, headers)
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    assert len(events(gw)) == 1


def test_hmac_sha1_hex_without_prefix_deduplicates_on_the_body_sha256(gw: Gateway) -> None:
    secret = "sha1-hex-secret"
    response = gw.api.post(
        "/v1/sources",
        json={
            "name": "legacy",
            "provider": "hmac",
            "secret": secret,
            "options": {
                "header": "X-Hook-Signature",
                "algorithm": "sha1",
                "encoding": "hex",
                "type_field": "kind",
            },
        },
    )
    assert response.status_code == 201, response.text
    source = response.json()

    def signed(payload: dict[str, Any]) -> tuple[bytes, Headers]:
        body = json_bytes(payload)
        return body, {
            "Content-Type": "application/json",
            "X-Hook-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        }

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


@pytest.mark.parametrize(
    "options",
    [
        None,
        {},
        {"algorithm": "sha256"},
        {"header": "X-Sig", "algorithm": "md5"},
        {"header": "X-Sig", "encoding": "base32"},
    ],
)
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


@pytest.mark.parametrize("case", [CASE_BY_PROVIDER["github"], CASE_BY_PROVIDER["stripe"]], ids=str)
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
    body = json_bytes({"action": "opened", "blob": "x" * (1024 * 1024)})
    headers = github_sign(case.secret, body, str(uuid.uuid4()), 0)
    response = post_in(gw, source, body, headers)
    assert response.status_code == 413, response.text
    assert events(gw) == []


def test_unknown_provider_is_refused(gw: Gateway) -> None:
    response = gw.api.post(
        "/v1/sources", json={"name": "x", "provider": "bitbucket", "secret": "s"}
    )
    assert response.status_code == 422, response.text
