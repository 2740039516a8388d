"""One verifier per provider, behind one interface, each following that provider's scheme.

A verifier sees the raw body bytes and the headers, checks the signature in
constant time before anything is parsed, checks the signed timestamp where the
scheme has one, and only then reads the provider's delivery id and event type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs


class VerificationFailed(Exception):
    """The request is not provably from the provider; the message says why, never a secret.

    `reason` is a short code for metrics: missing_header, malformed, bad_signature, expired.
    """

    def __init__(self, message: str, reason: str = "bad_signature") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SourceConfig:
    secret: str
    options: Mapping[str, Any] = field(default_factory=dict)
    tolerance_seconds: int = 300


@dataclass(frozen=True)
class Verified:
    delivery_id: str | None  # the provider's id of this delivery, for deduplication
    event_type: str | None
    payload: Any  # the parsed body (JSON, or form fields), None when neither
    verification: str  # how it was verified, kept with the event
    challenge: str | None = None  # a handshake to answer instead of storing (Slack)


class Verifier(Protocol):
    provider: ClassVar[str]
    # Whether a source of this provider deduplicates on the body's SHA-256 rather than
    # on the delivery id, unless it says otherwise: on where the delivery id is not
    # signed (so a captured request replays under a new id for ever) and the
    # provider never sends one body twice as two events.
    deduplicate_body: ClassVar[bool]

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified: ...


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise VerificationFailed(f"missing {name} header", "missing_header")
    return value


def _check_timestamp(raw: str, config: SourceConfig, now: float) -> int:
    try:
        timestamp = int(raw.strip())
    except ValueError:
        raise VerificationFailed("malformed signature timestamp", "malformed") from None
    if abs(now - timestamp) > config.tolerance_seconds:
        raise VerificationFailed(
            f"signature timestamp is outside the tolerance of {config.tolerance_seconds}s",
            "expired",
        )
    return timestamp


def _hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def _matches(expected: str | bytes, candidates: list[str] | list[bytes]) -> bool:
    # compare_digest against every candidate: no early exit that timing could reveal.
    found = False
    for candidate in candidates:
        if isinstance(expected, str) and isinstance(candidate, str):
            found |= hmac.compare_digest(expected.encode(), candidate.encode())
        elif isinstance(expected, bytes) and isinstance(candidate, bytes):
            found |= hmac.compare_digest(expected, candidate)
    return found


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_payload(headers: Mapping[str, str], body: bytes) -> Any:
    """The body as JSON, or as form fields (a JSON `payload` field unwrapped); else None."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            return None
        if "payload" in fields:
            try:
                return json.loads(fields["payload"])
            except (ValueError, RecursionError):
                pass
        return fields
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # deep nesting exhausts the parser's recursion
        return None


def get_path(payload: Any, path: str) -> Any:
    """`a.b.c` looked up in nested objects; None when any step is missing."""
    for part in path.split("."):
        if not isinstance(payload, dict):
            return None
        payload = payload.get(part)
    return payload


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class StripeVerifier:
    """`Stripe-Signature: t=...,v1=...`: HMAC-SHA256 hex of `{t}.{body}`, secret used as written."""

    provider: ClassVar[str] = "stripe"
    # The event id is in the signed body, and the signed timestamp expires.
    deduplicate_body: ClassVar[bool] = False

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        header = _header(headers, "stripe-signature")
        timestamp, signatures = None, []
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t":
                timestamp = value
            elif key == "v1":
                signatures.append(value)
        if timestamp is None or not signatures:
            raise VerificationFailed("malformed Stripe-Signature header", "malformed")
        expected = _hmac(config.secret.encode(), f"{timestamp}.".encode() + body).hex()
        if not _matches(expected, signatures):
            raise VerificationFailed("no v1 signature matches")
        _check_timestamp(timestamp, config, now)
        payload = parse_payload(headers, body)
        return Verified(
            _text(get_path(payload, "id")),
            _text(get_path(payload, "type")),
            payload,
            f"stripe v1 signature, t={timestamp}",
        )


class GitHubVerifier:
    """`X-Hub-Signature-256: sha256=<hex>` over the body; `X-GitHub-Delivery` is the id."""

    provider: ClassVar[str] = "github"
    # X-GitHub-Delivery is not signed; every event's body differs (its own content,
    # the hook and the sender), and a redelivery repeats the body with the id.
    deduplicate_body: ClassVar[bool] = True

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        header = _header(headers, "x-hub-signature-256")
        scheme, _, signature = header.partition("=")
        if scheme != "sha256" or not signature:
            raise VerificationFailed("malformed X-Hub-Signature-256 header", "malformed")
        if not _matches(_hmac(config.secret.encode(), body).hex(), [signature.lower()]):
            raise VerificationFailed("signature does not match")
        payload = parse_payload(headers, body)
        event = headers.get("x-github-event") or "unknown"
        action = _text(get_path(payload, "action"))
        event_type = f"{event}.{action}" if action else event
        return Verified(
            headers.get("x-github-delivery"), event_type, payload, "github sha256 signature"
        )


class GitLabVerifier:
    """`X-Gitlab-Token` equal to the secret; `X-Gitlab-Event-UUID` is the id."""

    provider: ClassVar[str] = "gitlab"
    # Nothing is signed (the token is sent as is); bodies carry their object's ids and
    # times, and a retry repeats the body with the event UUID.
    deduplicate_body: ClassVar[bool] = True

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        token = _header(headers, "x-gitlab-token")
        if not _matches(config.secret, [token]):
            raise VerificationFailed("token does not match")
        payload = parse_payload(headers, body)
        delivery_id = headers.get("x-gitlab-event-uuid") or headers.get("x-gitlab-webhook-uuid")
        return Verified(
            delivery_id, _text(get_path(payload, "object_kind")), payload, "gitlab token"
        )


class ShopifyVerifier:
    """`X-Shopify-Hmac-Sha256: <base64>` over the body; `X-Shopify-Webhook-Id` is the id."""

    provider: ClassVar[str] = "shopify"
    # X-Shopify-Webhook-Id is not signed, but one order's body legitimately goes out
    # under several topics (orders/create, orders/paid), and the topic is not signed.
    deduplicate_body: ClassVar[bool] = False

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        signature = _b64decode(_header(headers, "x-shopify-hmac-sha256"))
        if signature is None:
            raise VerificationFailed("malformed X-Shopify-Hmac-Sha256 header", "malformed")
        if not _matches(_hmac(config.secret.encode(), body), [signature]):
            raise VerificationFailed("signature does not match")
        return Verified(
            headers.get("x-shopify-webhook-id"),
            headers.get("x-shopify-topic"),
            parse_payload(headers, body),
            "shopify hmac-sha256",
        )


class SlackVerifier:
    """`X-Slack-Signature: v0=<hex>` of `v0:{timestamp}:{body}`, with a timestamp tolerance."""

    provider: ClassVar[str] = "slack"
    # The event id is in the signed body, and the signed timestamp expires.
    deduplicate_body: ClassVar[bool] = False

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        timestamp = _header(headers, "x-slack-request-timestamp")
        version, _, signature = _header(headers, "x-slack-signature").partition("=")
        if version != "v0" or not signature:
            raise VerificationFailed("malformed X-Slack-Signature header", "malformed")
        expected = _hmac(config.secret.encode(), f"v0:{timestamp}:".encode() + body).hex()
        if not _matches(expected, [signature.lower()]):
            raise VerificationFailed("signature does not match")
        _check_timestamp(timestamp, config, now)
        payload = parse_payload(headers, body)
        kind = _text(get_path(payload, "type"))
        if kind == "url_verification":
            return Verified(
                None,
                kind,
                payload,
                "slack v0 signature",
                challenge=str(get_path(payload, "challenge") or ""),
            )
        event_type = _text(get_path(payload, "event.type")) or kind
        if event_type is None and isinstance(payload, dict) and "command" in payload:
            event_type = "slash_command"
        return Verified(
            _text(get_path(payload, "event_id")),
            event_type,
            payload,
            f"slack v0 signature, t={timestamp}",
        )


class StandardVerifier:
    """Standard Webhooks (Svix and others): `v1,<base64>` of `{id}.{timestamp}.{body}`."""

    provider: ClassVar[str] = "standard"
    # webhook-id is signed, and the signed timestamp expires.
    deduplicate_body: ClassVar[bool] = False

    @staticmethod
    def key(secret: str) -> bytes:
        encoded = secret.removeprefix("whsec_")
        # Senders often drop the padding; the reference libraries restore it, so do we.
        key = _b64decode(encoded + "=" * (-len(encoded) % 4))
        if not key:
            raise ValueError("secret must be 'whsec_' followed by base64")
        return key

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        msg_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        header = _header(headers, "webhook-signature")
        signatures = [
            sig
            for version, _, sig in (item.partition(",") for item in header.split(" "))
            if version == "v1"
        ]
        expected = base64.b64encode(
            _hmac(self.key(config.secret), f"{msg_id}.{timestamp}.".encode() + body)
        ).decode()
        if not _matches(expected, signatures):
            raise VerificationFailed("no v1 signature matches")
        _check_timestamp(timestamp, config, now)
        payload = parse_payload(headers, body)
        return Verified(
            msg_id,
            _text(get_path(payload, "type")),
            payload,
            f"standard webhooks v1 signature, t={timestamp}",
        )


class HmacVerifier:
    """Any sender that signs the body with an HMAC in one header, described by `options`."""

    provider: ClassVar[str] = "hmac"
    # The id header is not signed, but a generic sender may well send one body twice
    # (a heartbeat, a status that did not change): the source says when it does not.
    deduplicate_body: ClassVar[bool] = False

    def verify(
        self, config: SourceConfig, headers: Mapping[str, str], body: bytes, now: float
    ) -> Verified:
        options = config.options
        header_name = str(options["header"])
        value = _header(headers, header_name.lower())
        prefix = str(options.get("prefix") or "")
        if prefix:
            if not value.startswith(prefix):
                raise VerificationFailed(f"{header_name} header does not start with {prefix!r}")
            value = value[len(prefix) :]
        digest = _hmac(config.secret.encode(), body, str(options.get("algorithm", "sha256")))
        if options.get("encoding", "hex") == "base64":
            signature = _b64decode(value.strip())
            if signature is None or not _matches(digest, [signature]):
                raise VerificationFailed("signature does not match")
        elif not _matches(digest.hex(), [value.strip().lower()]):
            raise VerificationFailed("signature does not match")
        payload = parse_payload(headers, body)
        id_header = options.get("id_header")
        type_field = options.get("type_field")
        return Verified(
            headers.get(str(id_header).lower()) if id_header else None,
            _text(get_path(payload, str(type_field))) if type_field else None,
            payload,
            f"hmac-{options.get('algorithm', 'sha256')} signature in {header_name}",
        )


VERIFIERS: dict[str, Verifier] = {
    v.provider: v
    for v in (
        StripeVerifier(),
        GitHubVerifier(),
        GitLabVerifier(),
        ShopifyVerifier(),
        SlackVerifier(),
        StandardVerifier(),
        HmacVerifier(),
    )
}
PROVIDERS = tuple(VERIFIERS)
