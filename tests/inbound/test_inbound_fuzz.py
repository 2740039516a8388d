"""Property-based tests of `POST /in/{id}`: whatever arrives, never a 5xx.

Unsigned garbage (arbitrary bytes, arbitrary headers) is refused by every provider
and leaves nothing behind; validly signed garbage is accepted, stored and readable.
Sources are created once per test function; hypothesis then runs its examples
against them (the inner `@given` functions take no fixtures).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.gateway import Gateway

SECRETS = {
    "stripe": "whsec_fuzz_stripe_secret",
    "github": "fuzz-github-secret",
    "gitlab": "fuzz-gitlab-token",
    "shopify": "fuzz-shopify-secret",
    "slack": "fuzz-slack-signing-secret",
    "standard": "whsec_" + base64.b64encode(b"fuzz-standard-secret-0123456789").decode(),
    "hmac": "fuzz-hmac-secret",
}
HMAC_OPTIONS = {
    "header": "X-Signature",
    "prefix": "sha256=",
    "id_header": "X-Delivery-Id",
    "type_field": "event.type",
}
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Header names that matter to some verifier, so that the fuzzer reaches past
# "missing header" into parsing and comparing.
KNOWN_HEADERS = [
    "Stripe-Signature",
    "X-Hub-Signature-256",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Gitlab-Token",
    "X-Gitlab-Event-UUID",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Topic",
    "X-Shopify-Webhook-Id",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "X-Signature",
    "X-Delivery-Id",
    "Content-Type",
    "Authorization",
    "Cookie",
]
# Headers that frame the request itself: fuzzing them tests httpx, not the gateway.
FRAMING = {
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "http2-settings",
}
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# What a header value can carry: printable latin-1, no CR/LF (and no tabs, which
# HTTP folds into spaces anyway).
LATIN1_PRINTABLE = "".join(chr(c) for c in [*range(0x20, 0x7F), *range(0xA0, 0x100)])
HEX = "0123456789abcdef"

header_names = st.one_of(
    st.sampled_from(KNOWN_HEADERS),
    st.text(TOKEN_CHARS, min_size=1, max_size=40),
).filter(lambda name: name.lower() not in FRAMING)

_now = st.integers(-1000, 1000).map(lambda delta: str(int(time.time()) + delta))
_hex = st.text(HEX, min_size=0, max_size=128)
_b64 = st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode())
header_values = st.one_of(
    st.text(LATIN1_PRINTABLE, max_size=200),
    # Shaped like the real thing, so the parsers are exercised beyond the first check.
    st.builds(lambda t, s: f"t={t},v1={s}", _now, _hex),
    st.builds(lambda s: f"sha256={s}", _hex),
    st.builds(lambda s: f"v0={s}", _hex),
    st.builds(lambda s, s2: f"v1,{s} v1,{s2}", _b64, _b64),
    _b64,
    _now,
).map(lambda value: value.strip(" "))  # HTTP cannot carry edge whitespace: it is trimmed

headers_strategy = st.lists(st.tuples(header_names, header_values), max_size=10)

SPECIAL_BODIES = [
    b"",
    b"\x00",
    b"\x00" * 100,
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"[" * 10000,
    b"{" * 10000,
    b'{"a":' * 3000,
    b"]" * 100,
    b'{"a": NaN}',
    b"[NaN, Infinity, -Infinity]",
    b'{"type": "x", "v": 1e999}',
    b'{"a": "\\u0000"}',
    b'{"\\u0000": 1}',
    b'{"a": "\\ud800"}',
    b'"\\ud800"',
    b'"just a string"',
    b"12345",
    b"null",
    b"true",
    b"1" * 5000,
    b'{"type": "url_verification", "challenge": "c"}',
    b'{"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1", "object_kind": "push"}',
    b"payload=%7B%22a%22%3A1%7D&x=%00",
    b"a=%ff%fe&b",
]
bodies = st.one_of(st.binary(max_size=2048), st.sampled_from(SPECIAL_BODIES))


def _create_source(gw: Gateway, provider: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"fuzz {provider}",
        "provider": provider,
        "secret": SECRETS[provider],
    }
    if provider == "hmac":
        body["options"] = HMAC_OPTIONS
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("ascii"), value.encode("latin-1")) for name, value in headers]


def _count(gw: Gateway, table: str) -> int:
    return int(gw.sql(f"SELECT count(*) FROM {table}")[0][0])  # type: ignore[call-overload]


def test_arbitrary_unsigned_requests_are_refused_by_every_provider(gw: Gateway) -> None:
    sources = {provider: _create_source(gw, provider) for provider in SECRETS}
    client = httpx.Client(base_url=gw.api.base_url, timeout=30)

    @FUZZ_SETTINGS
    @given(body=bodies, headers=headers_strategy)
    @example(body=b'{"type": "x"}', headers=[("Stripe-Signature", "garbage")])
    @example(
        body=b"{}", headers=[("X-Slack-Signature", "v0=00"), ("X-Slack-Request-Timestamp", "1_000")]
    )
    @example(
        body=b"{}",
        headers=[
            ("webhook-id", "\xe9"),
            ("webhook-timestamp", "1"),
            ("webhook-signature", "v1,\xff"),
        ],
    )
    @example(body=b"{}", headers=[("X-Shopify-Hmac-Sha256", "\xe9\xe9==")])
    @example(body=b"{}", headers=[("X-Signature", "sha256=\xff"), ("X-Gitlab-Token", "\xa0")])
    def check(body: bytes, headers: list[tuple[str, str]]) -> None:
        for provider, source in sources.items():
            response = client.post(
                source["ingest_path"], content=body, headers=_encode_headers(headers)
            )
            assert response.status_code < 500, (provider, response.status_code, response.text)
            assert response.status_code == 401, (provider, response.status_code, response.text)
            detail = response.json()["detail"]
            assert isinstance(detail, str), detail
            assert SECRETS[provider] not in response.text

    try:
        check()
    finally:
        client.close()
    assert _count(gw, "event") == 0
    assert _count(gw, "delivery") == 0


def _github_signed(body: bytes, extra: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    signature = hmac.new(SECRETS["github"].encode(), body, hashlib.sha256).hexdigest()
    return [(b"X-Hub-Signature-256", f"sha256={signature}".encode()), *_encode_headers(extra)]


def _json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=30),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.text(max_size=10), inner, max_size=5),
        ),
        max_leaves=max_leaves,
    )


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


signed_bodies = st.one_of(
    st.binary(max_size=4096),
    st.sampled_from([b for b in SPECIAL_BODIES if b.count(b"[") + b.count(b"{") < 300]),
    # Any JSON document, NaN and lone surrogates included.
    _json_values().map(lambda value: json.dumps(value).encode()),
    # Objects, as providers send them, with an `action` GitHub folds into the type.
    st.builds(
        lambda action, rest: json.dumps({"action": action, **rest}).encode(),
        st.one_of(st.text(max_size=40), st.integers(), st.none()),
        st.dictionaries(st.text(max_size=10), _json_values(10), max_size=4),
    ),
    # Nesting that the gateway's own depth check (64) must handle.
    st.builds(_nested, st.integers(1, 200), st.sampled_from(["list", "object"])),
)
signed_extra_headers = st.lists(
    st.tuples(
        st.sampled_from(["X-GitHub-Event", "X-GitHub-Delivery", "Content-Type", "X-Other"]),
        st.one_of(
            header_values,
            st.sampled_from(
                [
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "text/plain",
                    "application/json; charset=latin-1",
                ]
            ),
        ),
    ),
    max_size=4,
)


def _assert_stored_as_sent(event: dict[str, Any], body: bytes) -> None:
    if event["body_encoding"] == "utf-8":
        assert event["body"].encode("utf-8") == body
    else:
        assert event["body_encoding"] == "base64", event
        assert base64.b64decode(event["body"]) == body


def test_validly_signed_arbitrary_bodies_are_accepted_and_readable(gw: Gateway) -> None:
    source = _create_source(gw, "github")
    client = httpx.Client(base_url=gw.api.base_url, timeout=30)
    accepted: dict[str, bytes] = {}

    @FUZZ_SETTINGS
    @given(body=signed_bodies, extra=signed_extra_headers)
    @example(body=b"\x00\xff invalid utf-8 \xc3\x28", extra=[])
    @example(body=b'{"a": NaN, "b": [Infinity]}', extra=[("Content-Type", "application/json")])
    @example(body=b"not json at all", extra=[("X-GitHub-Event", "push")])
    @example(body=_nested(200, "list"), extra=[])
    @example(body=b"{" * 10000, extra=[])  # fails to parse at once: no deep recursion
    @example(
        body=b"payload=%7B%22action%22%3A%22op%5Cu0000%22%7D",
        extra=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    @example(body=b'{"action": "opened"}', extra=[("X-GitHub-Delivery", "\xe9" * 300)])
    def check(body: bytes, extra: list[tuple[str, str]]) -> None:
        response = client.post(
            source["ingest_path"], content=body, headers=_github_signed(body, extra)
        )
        assert response.status_code < 500, (response.status_code, response.text)
        assert response.status_code == 200, (response.status_code, response.text)
        result = response.json()
        assert result["status"] in ("accepted", "duplicate"), result
        event_id = result["event_id"]
        assert event_id.startswith("evt_")
        event = gw.api.get(f"/v1/events/{event_id}")
        assert event.status_code == 200, event.text
        detail = event.json()
        assert detail["source_id"] == source["id"]
        assert isinstance(detail["data"], dict)
        if result["status"] == "accepted":
            accepted[event_id] = body
            _assert_stored_as_sent(detail, body)
        else:
            assert event_id in accepted, result

    try:
        check()
    finally:
        client.close()
    assert _count(gw, "event") == len(accepted)


DEEP_BODIES = [
    pytest.param(b"[" * 10000, None, id="unclosed-brackets"),
    pytest.param(_nested(5000, "list"), None, id="deep-valid-array"),
    pytest.param(_nested(5000, "object"), None, id="deep-valid-object"),
    pytest.param(
        b"payload=" + b"%5B" * 5000, "application/x-www-form-urlencoded", id="form-payload-field"
    ),
]


@pytest.mark.parametrize(("body", "content_type"), DEEP_BODIES)
def test_validly_signed_deeply_nested_body_is_accepted(
    gw: Gateway, body: bytes, content_type: str | None
) -> None:
    source = _create_source(gw, "github")
    extra = [("Content-Type", content_type)] if content_type else []
    with httpx.Client(base_url=gw.api.base_url, timeout=30) as client:
        response = client.post(
            source["ingest_path"], content=body, headers=_github_signed(body, extra)
        )
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    event = gw.api.get(f"/v1/events/{response.json()['event_id']}")
    assert event.status_code == 200, event.text
    _assert_stored_as_sent(event.json(), body)


@pytest.mark.parametrize("depth", [500, 10000])
def test_deep_nesting_that_fails_verification_is_a_plain_401(gw: Gateway, depth: int) -> None:
    """Verification comes before parsing: an unsigned deep body never reaches the parser."""
    source = _create_source(gw, "github")
    body = b"[" * depth
    with httpx.Client(base_url=gw.api.base_url, timeout=30) as client:
        response = client.post(
            source["ingest_path"],
            content=body,
            headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
        )
    assert response.status_code == 401, response.text
    assert _count(gw, "event") == 0
