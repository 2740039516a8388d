"""Each signature scheme, checked by code nobody here wrote: `standardwebhooks`, `stripe`,
GitHub's documented test vector, and a receiver written the way tutorials write it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
import stripe
from pydantic import TypeAdapter, ValidationError
from standardwebhooks import Webhook

from gateway.outbound.signatures import (
    Signature,
    check_secret,
    github_signature,
    key_of,
    signed_headers,
    stored,
)
from gateway.outbound.signer import generate_secret

BODY = b'{"id":"evt_1","type":"invoice.paid","timestamp":"2026-12-06T09:00:00.000Z","data":{}}'
SIGNATURE: TypeAdapter[Any] = TypeAdapter(Signature)


def _options(**signature: object) -> dict[str, Any] | None:
    return stored(SIGNATURE.validate_python(signature))


def _headers(options: dict[str, Any] | None, secrets: list[str], **kw: Any) -> dict[str, str]:
    scheme = options["scheme"] if options else "standard"
    keys = [key_of(scheme, s) for s in secrets]
    args: dict[str, Any] = {
        "event_id": "evt_1",
        "event_type": "invoice.paid",
        "timestamp": int(time.time()),
        "body": BODY,
        "attempt": 1,
    }
    args.update(kw)
    return signed_headers(options, keys, **args)


def test_github_signer_meets_githubs_documented_test_vector() -> None:
    # docs.github.com, "Validating webhook deliveries": testing the webhook payload validation.
    key = key_of("github", "It's a Secret to Everybody")
    assert github_signature(key, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_github_headers_as_github_sends_them() -> None:
    headers = _headers(_options(scheme="github"), ["It's a Secret to Everybody"], attempt=3)
    assert headers["X-GitHub-Event"] == "invoice.paid"
    assert headers["X-GitHub-Delivery"] == "evt_1"
    assert headers["X-Webhook-Attempt"] == "3"
    expected = "sha256=" + hmac.new(b"It's a Secret to Everybody", BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["X-Hub-Signature-256"])


def test_stripe_library_accepts_the_signature() -> None:
    secret = generate_secret()  # whsec_..., the shape of Stripe's own secrets
    headers = _headers(_options(scheme="stripe"), [secret])
    event = stripe.Webhook.construct_event(BODY.decode(), headers["Stripe-Signature"], secret)
    assert event["id"] == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            BODY.decode(), headers["Stripe-Signature"], generate_secret()
        )


def test_stripe_rotation_sends_two_v1_entries_each_accepted() -> None:
    new, old = "a-new-secret-of-mine", generate_secret()
    header = _headers(_options(scheme="stripe"), [new, old])["Stripe-Signature"]
    assert header.count("v1=") == 2
    for secret in (new, old):
        stripe.Webhook.construct_event(BODY.decode(), header, secret)


def test_hmac_defaults_pass_the_tutorial_receiver() -> None:
    secret = "my tutorial secret 123"
    headers = _headers(_options(scheme="hmac"), [secret], attempt=2)
    header = headers["X-Webhook-Signature"]
    # The way tutorials verify a webhook.
    expected = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, header)
    assert headers["X-Webhook-Attempt"] == "2"
    assert set(headers) == {"X-Webhook-Signature", "X-Webhook-Attempt"}


def test_hmac_options_change_what_is_signed_and_how_it_is_written() -> None:
    secret = "0123456789abcdef"
    options = _options(
        scheme="hmac",
        header="X-Sig",
        algorithm="sha512",
        encoding="base64",
        signed="{timestamp}.{body}",
        id_header="X-Webhook-Id",
    )
    assert options is not None
    assert options["prefix"] == "sha512="
    assert options["timestamp_header"] == "X-Webhook-Timestamp"
    headers = _headers(options, [secret], timestamp=1_700_000_000)
    assert headers["X-Webhook-Timestamp"] == "1700000000"
    assert headers["X-Webhook-Id"] == "evt_1"
    digest = hmac.new(secret.encode(), b"1700000000." + BODY, hashlib.sha512).digest()
    assert headers["X-Sig"] == "sha512=" + base64.b64encode(digest).decode()


def test_hmac_sha1_without_prefix() -> None:
    secret = "0123456789abcdef"
    headers = _headers(_options(scheme="hmac", algorithm="sha1", prefix=""), [secret])
    assert headers["X-Webhook-Signature"] == hmac.new(secret.encode(), BODY, "sha1").hexdigest()


def test_hmac_rotation_signs_with_the_new_secret_only() -> None:
    new, old = "the-new-secret-0001", "the-old-secret-0001"
    header = _headers(_options(scheme="hmac"), [new, old])["X-Webhook-Signature"]
    assert header == "sha256=" + hmac.new(new.encode(), BODY, hashlib.sha256).hexdigest()


def test_standard_unchanged_and_says_its_attempt() -> None:
    secret = generate_secret()
    assert _options(scheme="standard") is None
    headers = _headers(None, [secret], attempt=4)
    assert headers["webhook-attempt"] == "4"
    assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"


@pytest.mark.parametrize(
    "signature, where",
    [
        ({"scheme": "md5"}, ()),
        ({"scheme": "hmac", "colour": "red"}, ("hmac", "colour")),
        ({"scheme": "hmac", "algorithm": "md5"}, ("hmac", "algorithm")),
        ({"scheme": "hmac", "encoding": "base32"}, ("hmac", "encoding")),
        ({"scheme": "hmac", "signed": "{id}.{body}"}, ("hmac", "signed")),
        ({"scheme": "hmac", "header": "bad header"}, ("hmac", "header")),
        ({"scheme": "hmac", "header": "Content-Type"}, ("hmac", "header")),
        ({"scheme": "hmac", "timestamp_header": "Authorization"}, ("hmac", "timestamp_header")),
        ({"scheme": "hmac", "prefix": "sha 256="}, ("hmac", "prefix")),
        ({"scheme": "github", "header": "X-Sig"}, ("github", "header")),
        ({"scheme": "hmac", "id_header": "X-Webhook-Signature"}, ("hmac",)),
    ],
)
def test_bad_signatures_name_the_field(signature: dict[str, Any], where: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        SIGNATURE.validate_python(signature)
    assert info.value.errors()[0]["loc"][: len(where)] == where


@pytest.mark.parametrize(
    "scheme, secret, ok",
    [
        ("hmac", "x" * 15, False),
        ("hmac", "x" * 16, True),
        ("stripe", "x" * 256, True),
        ("github", "x" * 257, False),
        ("hmac", "sixteen\nchars...", False),
        ("standard", "x" * 32, False),
        ("standard", "whsec_" + base64.b64encode(bytes(32)).decode(), True),
    ],
)
def test_secrets_per_scheme(scheme: str, secret: str, ok: bool) -> None:
    if ok:
        check_secret(scheme, secret)
    else:
        with pytest.raises(ValueError):
            check_secret(scheme, secret)
