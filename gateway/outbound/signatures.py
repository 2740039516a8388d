"""How an endpoint's deliveries are signed: one scheme per endpoint, with its options.

`standard` is Standard Webhooks (`signer.py`), the default; `hmac` is the HMAC of the
body (or of `{timestamp}.{body}`) in one header, as most tutorials verify it; `github`
and `stripe` are what those providers send, so their verification libraries accept
our deliveries. The options are stored in `endpoint.signature` (None: `standard`);
the secret is the endpoint's `secret`, encrypted like every secret.

Keys: a `standard` secret is `whsec_` + base64, and its key is the decoded base64; an
HMAC-family secret is any string of 16 to 256 characters, and its key is the string's
UTF-8 bytes (the way GitHub and Stripe use theirs, `whsec_` prefix and all).
"""

from __future__ import annotations

import base64
import hmac
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.outbound.signer import secret_key, signature_header
from gateway.validation import HEADER_NAME_RE, Input

STANDARD = "standard"
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
# The attempt number's header for every scheme but `standard` (`webhook-attempt`):
# neither GitHub nor Stripe sends one, so it keeps the `hmac` family's name.
ATTEMPT_HEADER = "X-Webhook-Attempt"
# Header names an HMAC scheme may not take: the gateway's own and the request's framing.
_RESERVED = {
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "user-agent",
    "te",
    "upgrade",
    "authorization",  # an endpoint's `auth` sets it
    ATTEMPT_HEADER.lower(),
}
_PREFIX_RE = re.compile(r"^[\x21-\x7e]*$")


class StandardSignature(Input):
    """Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`."""

    scheme: Literal["standard"] = Field(description="Standard Webhooks signing (the default).")


class HmacSignature(Input):
    """One header holding the HMAC of the body, or of `{timestamp}.{body}`."""

    scheme: Literal["hmac"] = Field(
        description="One header holding an HMAC, shaped by the options below."
    )
    header: str = Field(
        "X-Webhook-Signature", max_length=100, description="The signature's header."
    )
    algorithm: Literal["sha256", "sha512", "sha1"] = Field("sha256", description="The HMAC's hash.")
    encoding: Literal["hex", "base64"] = Field("hex", description="How the digest is written.")
    prefix: str | None = Field(
        None,
        max_length=64,
        description="Written before the digest; left out, the algorithm and `=` "
        '(`sha256=`, `sha512=`, `sha1=`); `""` for none.',
    )
    signed: Literal["{body}", "{timestamp}.{body}"] = Field(
        "{body}",
        description="What is signed: the raw body, or the Unix timestamp (seconds), a dot "
        "and the body.",
    )
    timestamp_header: str | None = Field(
        None,
        max_length=100,
        description="A header that carries the timestamp (Unix seconds); null for none "
        "(with `{timestamp}.{body}` signed, left out: `X-Webhook-Timestamp`).",
    )
    id_header: str | None = Field(
        None, max_length=100, description="A header that carries the event's id; null for none."
    )

    @field_validator("header", "timestamp_header", "id_header")
    @classmethod
    def _check_header(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not HEADER_NAME_RE.match(value):
            raise ValueError(f"invalid header name {value!r}")
        if value.lower() in _RESERVED:
            raise ValueError(f"header {value!r} is set by the gateway for another purpose")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX_RE.match(value):
            raise ValueError("prefix must be printable ASCII characters without spaces")
        return value

    @model_validator(mode="after")
    def _defaults_and_distinct(self) -> HmacSignature:
        if self.prefix is None:
            self.prefix = f"{self.algorithm}="
        if self.signed == "{timestamp}.{body}" and self.timestamp_header is None:
            # The receiver needs the timestamp to check the signature.
            self.timestamp_header = "X-Webhook-Timestamp"
        names = [n.lower() for n in (self.header, self.timestamp_header, self.id_header) if n]
        if len(names) != len(set(names)):
            raise ValueError("header, timestamp_header and id_header must be different headers")
        return self


class GithubSignature(Input):
    """GitHub's: `X-Hub-Signature-256: sha256=<hex>`, `X-GitHub-Event`, `X-GitHub-Delivery`."""

    scheme: Literal["github"] = Field(description="GitHub's headers, as GitHub sends them.")


class StripeSignature(Input):
    """Stripe's: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`."""

    scheme: Literal["stripe"] = Field(description="Stripe's `Stripe-Signature` header.")


Signature = Annotated[
    StandardSignature | HmacSignature | GithubSignature | StripeSignature,
    Field(discriminator="scheme"),
]
SIGNATURE_DOC = (
    'How deliveries are signed: `{"scheme": "standard"}` (Standard Webhooks, the default), '
    '`{"scheme": "hmac", ...options}` (one header with the HMAC of the body, as most '
    'tutorials verify), `{"scheme": "github"}` or `{"scheme": "stripe"}` (what those '
    "providers send, accepted by their libraries). See docs/signatures.md."
)


def stored(signature: Any) -> dict[str, Any] | None:
    """What `endpoint.signature` keeps: None for `standard`, else the options in full."""
    if signature is None or signature.scheme == STANDARD:
        return None
    return dict(signature.model_dump())


def shown(stored_signature: dict[str, Any] | None) -> dict[str, Any]:
    """What the API shows of a stored signature."""
    return stored_signature or {"scheme": STANDARD}


def scheme_of(stored_signature: dict[str, Any] | None) -> str:
    return STANDARD if not stored_signature else str(stored_signature["scheme"])


def check_secret(scheme: str, secret: str) -> None:
    """ValueError naming the problem when `secret` cannot sign for `scheme`."""
    if scheme == STANDARD:
        secret_key(secret)
    elif not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
        raise ValueError(
            f"secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters "
            f"for the {scheme} scheme, not {len(secret)}"
        )
    elif not secret.isprintable():
        raise ValueError("secret must be printable characters")


def key_of(scheme: str, secret: str) -> bytes:
    """The HMAC key of a secret under a scheme (ValueError when it cannot sign for it)."""
    if scheme == STANDARD:
        return secret_key(secret)
    check_secret(scheme, secret)
    return secret.encode()


def signed_headers(
    stored_signature: dict[str, Any] | None,
    keys: list[bytes],
    event_id: str,
    event_type: str,
    timestamp: int,
    body: bytes,
    attempt: int,
) -> dict[str, str]:
    """The headers that sign a delivery; `keys` newest first (two during a rotation)."""
    if not stored_signature:
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(keys, event_id, timestamp, body),
            "webhook-attempt": str(attempt),
        }
    scheme = stored_signature["scheme"]
    if scheme == "stripe":
        signed = b"%d." % timestamp + body
        v1 = ",".join("v1=" + hmac.digest(key, signed, "sha256").hex() for key in keys)
        return {"Stripe-Signature": f"t={timestamp},{v1}", ATTEMPT_HEADER: str(attempt)}
    if scheme == "github":
        # One signature only: during a rotation the new secret signs.
        return {
            "X-Hub-Signature-256": github_signature(keys[0], body),
            "X-GitHub-Event": event_type,
            "X-GitHub-Delivery": event_id,
            ATTEMPT_HEADER: str(attempt),
        }
    return _hmac_headers(stored_signature, keys[0], event_id, timestamp, body, attempt)


def github_signature(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.digest(key, body, "sha256").hex()


def _hmac_headers(
    options: dict[str, Any], key: bytes, event_id: str, timestamp: int, body: bytes, attempt: int
) -> dict[str, str]:
    signed = body if options["signed"] == "{body}" else b"%d." % timestamp + body
    digest = hmac.digest(key, signed, options["algorithm"])
    written = digest.hex() if options["encoding"] == "hex" else base64.b64encode(digest).decode()
    headers = {options["header"]: options["prefix"] + written, ATTEMPT_HEADER: str(attempt)}
    if options.get("timestamp_header"):
        headers[options["timestamp_header"]] = str(timestamp)
    if options.get("id_header"):
        headers[options["id_header"]] = event_id
    return headers
