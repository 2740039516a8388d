"""Checking, in a receiver, that a webhook came from the gateway: every signature scheme an
endpoint can be given (docs/signatures.md in the gateway's repository).

    payload = verify(request_body, request.headers, secret)

The scheme is read from the headers (`webhook-signature`: Standard Webhooks; `Stripe-Signature`;
`X-Hub-Signature-256`: GitHub; `X-Webhook-Signature`: `hmac` with its defaults), or given as
the endpoint's `signature`, as the API shows it, for `hmac` options of your own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel

from hookgate.errors import SignatureError

DEFAULT_TOLERANCE = 300


class Headers(Protocol):
    """A request's headers: a dict, or a framework's (Starlette's, Werkzeug's) as they are."""

    def items(self) -> Iterable[tuple[str, str]]: ...


_STANDARD_PREFIX = "whsec_"


def verify(
    payload: bytes | str,
    headers: Headers,
    secret: str,
    *,
    signature: BaseModel | Mapping[str, Any] | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Any:
    """The webhook's parsed JSON body, once its signature is checked against `secret`
    (and, where the scheme signs one, its timestamp is within `tolerance` seconds of now).

    Raises `SignatureError` saying what failed. `payload` must be the raw body, as
    received: parsed and serialised again, it no longer matches its signature."""
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    lowered = {name.lower(): value for name, value in headers.items()}
    options = _options(signature, lowered)
    scheme = options.get("scheme", "standard")
    if scheme == "standard":
        _standard(body, lowered, secret, tolerance)
    elif scheme == "stripe":
        _stripe(body, lowered, secret, tolerance)
    elif scheme == "github":
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        _match([expected], [_header(lowered, "x-hub-signature-256")])
    elif scheme == "hmac":
        _hmac(body, lowered, secret, tolerance, options)
    else:
        raise SignatureError(f"unknown signature scheme {scheme!r}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise SignatureError(f"the signature is valid but the body is not JSON: {error}") from None


def _options(
    signature: BaseModel | Mapping[str, Any] | None, headers: dict[str, str]
) -> dict[str, Any]:
    if isinstance(signature, BaseModel):
        return signature.model_dump()
    if signature is not None:
        return dict(signature)
    for header, scheme in (
        ("webhook-signature", "standard"),
        ("stripe-signature", "stripe"),
        ("x-hub-signature-256", "github"),
        ("x-webhook-signature", "hmac"),
    ):
        if header in headers:
            return {"scheme": scheme}
    raise SignatureError(
        "no signature header (webhook-signature, Stripe-Signature, X-Hub-Signature-256 or "
        "X-Webhook-Signature); for an hmac header of your own, pass signature="
    )


def _header(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing header {name}")
    return value


def _timestamp(value: str, tolerance: int) -> int:
    try:
        timestamp = int(value)
    except ValueError:
        raise SignatureError(f"invalid timestamp {value[:32]!r}") from None
    if abs(time.time() - timestamp) > tolerance:
        raise SignatureError(f"timestamp outside the tolerance of {tolerance} s")
    return timestamp


def _match(expected: list[str], given: list[str]) -> None:
    # Every pair compared, in constant time each, so timing says nothing about which.
    found = False
    for candidate in given:
        for wanted in expected:
            found |= hmac.compare_digest(candidate.encode(), wanted.encode())
    if not found:
        raise SignatureError("no signature matches")


def _standard(body: bytes, headers: dict[str, str], secret: str, tolerance: int) -> None:
    msg_id = _header(headers, "webhook-id")
    timestamp = _timestamp(_header(headers, "webhook-timestamp"), tolerance)
    encoded = secret.removeprefix(_STANDARD_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("a Standard Webhooks secret is 'whsec_' and base64") from None
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [
        entry.split(",", 1)[1]
        for entry in _header(headers, "webhook-signature").split()
        if entry.startswith("v1,")
    ]
    _match([expected], given)


def _stripe(body: bytes, headers: dict[str, str], secret: str, tolerance: int) -> None:
    entries = [
        item.split("=", 1)
        for item in _header(headers, "stripe-signature").split(",")
        if "=" in item
    ]
    stamps = [value for name, value in entries if name.strip() == "t"]
    if len(stamps) != 1:
        raise SignatureError("Stripe-Signature has no timestamp")
    timestamp = _timestamp(stamps[0], tolerance)
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    _match([expected], [value for name, value in entries if name.strip() == "v1"])


def _hmac(
    body: bytes, headers: dict[str, str], secret: str, tolerance: int, options: dict[str, Any]
) -> None:
    algorithm = options.get("algorithm") or "sha256"
    if algorithm not in ("sha256", "sha512", "sha1"):
        raise SignatureError(f"unknown algorithm {algorithm!r}")
    prefix = options.get("prefix")
    prefix = f"{algorithm}=" if prefix is None else prefix
    signed = body
    timestamp_header = options.get("timestamp_header")
    if options.get("signed", "{body}") == "{timestamp}.{body}":
        timestamp_header = timestamp_header or "X-Webhook-Timestamp"
    if timestamp_header:
        timestamp = _timestamp(_header(headers, timestamp_header), tolerance)
        if options.get("signed") == "{timestamp}.{body}":
            signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, algorithm).digest()
    written = (
        base64.b64encode(digest).decode() if options.get("encoding") == "base64" else digest.hex()
    )
    header = options.get("header") or "X-Webhook-Signature"
    _match([prefix + written], [_header(headers, header)])
