"""Request and response bodies of endpoints, events and deliveries."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator

from gateway.outbound import filters
from gateway.outbound.endpoint_auth import AUTH_DOC, EndpointAuth
from gateway.outbound.policy import POLICY_DOC, RetryPolicy
from gateway.outbound.signatures import (
    SIGNATURE_DOC,
    Signature,
    StandardSignature,
    check_secret,
)
from gateway.timeutil import as_utc
from gateway.transform import MAX_CODE_CHARS
from gateway.validation import (
    HEADER_NAME_RE,
    EventType,
    Input,
    ObjectId,
    TenantId,
    Text,
    check_json_value,
)

_FILTER_RE = re.compile(r"^(\*|[A-Za-z0-9_.\-]+(\.\*)?)$")
# Headers the gateway sets itself or that would break the request.
RESERVED_HEADERS = {
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "webhook-attempt",
    "user-agent",
    "te",
    "upgrade",
}
# Header values go on the wire as they are: visible ASCII, spaces and tabs only.
_HEADER_VALUE_RE = re.compile(r"^[\t\x20-\x7e]*$")


def _check_event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for item in value:
        if not _FILTER_RE.match(item):
            raise ValueError(f"invalid event type filter {item!r}: use a type, 'prefix.*' or '*'")
    return value


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for name, header_value in value.items():
        if not HEADER_NAME_RE.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the gateway and cannot be overridden")
        if not _HEADER_VALUE_RE.match(header_value):
            raise ValueError(f"header {name!r} must have a value of printable ASCII characters")
    return value


MAX_HEADERS = 50
MAX_HEADER_VALUE = 4096
# A transformation's result is held to the same rules (`transforms.py`).
check_headers = _check_headers


def _check_filter(value: str | None) -> str | None:
    return None if value is None else filters.check(value)


def _check_secret(value: str | None, info: ValidationInfo) -> str | None:
    """A secret the endpoint's scheme can sign with (the scheme is validated first)."""
    if value is not None and "signature" in info.data:
        signature = info.data["signature"]
        check_secret(signature.scheme if signature else "standard", value)
    return value


def _check_any_secret(value: str | None) -> str | None:
    """A rotation's secret: what every scheme takes at most; its own, checked by the service."""
    if value is not None:
        check_secret("hmac", value)
    return value


# One address, no display name: it goes into a mail header as it is.
_EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
CONTACT_EMAIL_DOC = (
    "Who is told by email when the endpoint is failing, disabled or recovered (sent when "
    "the gateway has GATEWAY_SMTP_URL; at most one an hour): an address such as "
    "`ops@example.com`, at most 320 characters; null for none."
)


def _check_email(value: str | None) -> str | None:
    if value is not None and not _EMAIL_RE.match(value):
        raise ValueError("not an email address (expected name@example.com)")
    return value


# The origin rule (outbound/matching.py), said once for every schema that shows it.
SOURCE_IDS_RULE = (
    "Which origins the endpoint takes events from: absent or null, every event (published "
    "through the API and received from any inbound source); `[]`, published events only; "
    "a list of source ids, only the events those sources receive."
)


# Said once for the schemas that show the same field.
URL_DOC = (
    "Where deliveries are POSTed: an http or https URL of at most 2048 characters. Its "
    "host must resolve to public addresses (private, loopback and other special ranges "
    "are refused unless in GATEWAY_ALLOWED_NETWORKS); redirects are never followed."
)
KIND_DOC = (
    '`"http"` (the default): deliveries are POSTed to `url`. `"stream"`: they are read by a '
    "client of `GET /v1/endpoints/{endpoint_id}/stream` (such as `gateway listen`), which "
    "acknowledges each with `POST /v1/endpoints/{endpoint_id}/stream/ack`; such an endpoint "
    "has no `url` and no `auth`. Retries, signatures, the attempt log and health are the "
    "same for both (see docs/listen.md)."
)
TENANT_DOC = (
    "The tenant (your customer) it belongs to: it then receives only that tenant's events. "
    "Null or left out: it receives events without a tenant. A tenant's key sets its own."
)
DESCRIPTION_DOC = "Free text for people, at most 1000 characters."
EVENT_TYPES_DOC = (
    "The event types it receives: exact types (`invoice.paid`), prefixes (`invoice.*`) or "
    "`*`. Null or `[]`: every type. At most 500 filters."
)
HEADERS_DOC = (
    "Extra HTTP headers sent with every delivery (at most 50, values up to 4096 printable "
    "ASCII characters), stored encrypted. The gateway's own (`webhook-*`, `content-type`, "
    "`user-agent`, ...) cannot be set."
)
FILTER_DOC = (
    "A Common Expression Language (CEL) expression over the event: it is delivered to "
    "this endpoint only when the expression is true, after the type and source filters. "
    "It sees `type`, `data`, `tenant_id`, `source_id` and `headers` (a received event's "
    'request headers; `{}` otherwise), e.g. `data.amount > 1000 && data.currency in ["EUR", '
    '"USD"]`. An expression that fails on an event (a missing key, the wrong type) does not '
    f"match. At most {filters.MAX_LENGTH} characters; null for none (see docs/filters.md)."
)
TRANSFORMATION_DOC = (
    "JavaScript defining `function handler(webhook)`, run before each attempt: it gets "
    '`{"method", "url", "headers", "payload", "event_type"}` and returns it changed, or '
    "with `cancel: true` to skip the delivery (see docs/transformations.md). At most "
    "65536 characters; it must compile and define `handler` (422 otherwise). Null: none."
)
ORDERED_DOC = (
    "How it receives the events of one `ordering_key`: `false` (the default), as fast as "
    "they come, in any order; `true`, one at a time in publish order, the next sent once "
    'the one before has succeeded or finally failed; `"strict"`, as `true`, but a '
    "delivery that finally fails holds back the rest of its key until it is retried or "
    "skipped (`POST /v1/deliveries/{delivery_id}/skip`). Events without a key, and other "
    "keys, are never held back (see docs/ordering.md)."
)
ORDERING_KEY_DOC = (
    "Events with the same key reach each ordered endpoint one at a time, in the order the "
    "gateway stored them (see docs/ordering.md); 1 to 200 characters. Left out: none, the "
    "event is sent as soon as it can be."
)
# An ordering key as a request gives it.
OrderingKeyText = Annotated[Text, Field(min_length=1, max_length=200)]
# `ordered` of an endpoint: false, true or "strict" (and not "yes", which a lax bool takes).
Ordered = Annotated[bool, Strict()] | Literal["strict"]
RATE_LIMIT_DOC = (
    "Deliveries per second to it at most (1 to 100000); null for no limit. Deliveries over "
    "it wait their turn and count as no attempt."
)

SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENDPOINT_CREATE_EXAMPLE: dict[str, Any] = {
    "url": "https://billing.example.com/webhooks",
    "description": "Billing service",
    "event_types": ["invoice.*"],
    "headers": {"X-Team": "billing"},
}
ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": "ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D",
    "url": "https://billing.example.com/webhooks",
    "kind": "http",
    "tenant_id": None,
    "description": "Billing service",
    "event_types": ["invoice.*"],
    "source_ids": None,
    "headers": {"X-Team": "billing"},
    "rate_limit": None,
    "filter": None,
    "signature": {"scheme": "standard"},
    "ordered": False,
    "disabled": False,
    "disabled_reason": None,
    "failing_since": None,
    "created_at": "2026-01-15T09:30:12.481000Z",
    "updated_at": "2026-01-15T09:30:12.481000Z",
}
# Events one `POST /v1/events/batch` takes.
MAX_BATCH_EVENTS = 500
EVENT_CREATE_EXAMPLE: dict[str, Any] = {
    "type": "invoice.paid",
    "data": {"invoice": "in_42", "amount": 1200, "currency": "EUR"},
}
EVENT_TEST_EXAMPLE: dict[str, Any] = {
    "event_type": "invoice.paid",
    "data": {"invoice": "in_test", "amount": 1, "currency": "EUR"},
}
EVENT_EXAMPLE: dict[str, Any] = {
    "id": "evt_01KF41J7M3P5S8V2X6Z9B4D7FH",
    **EVENT_CREATE_EXAMPLE,
    "tenant_id": None,
    "source_id": None,
    "ordering_key": None,
    "sequence": None,
    "created_at": "2026-01-15T10:15:02.318000Z",
}
RECEIVED_EXAMPLE: dict[str, Any] = {
    "id": "evt_01KF41M2Q8T4W7Y1A3C6E9G2HJ",
    "type": "issues.opened",
    "data": {"action": "opened", "issue": {"number": 7}},
    "tenant_id": None,
    "source_id": "src_01KF2T6H9K3M5P7R1T4W6Y8A2C",
    "created_at": "2026-01-15T10:16:40.052000Z",
    "headers": {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": "5f3c2a10-1d2e-11f1-8a4b-0242ac120002",
        "x-hub-signature-256": "sha256=8d7c0e9b3f1a4c6e2b5d8f0a7c3e1b9d"
        "4f6a2c8e0b7d5f3a1c9e7b5d3f1a2c4e",
    },
    "body": '{"action":"opened","issue":{"number":7}}',
    "body_encoding": "utf-8",
    "verification": "github sha256 signature",
}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": "dlv_01KF41J7M4A2C6E8G1J3K5M7NQ",
    "event_id": "evt_01KF41J7M3P5S8V2X6Z9B4D7FH",
    "endpoint_id": "ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D",
    "status": "succeeded",
    "attempt_count": 1,
    "next_attempt_at": None,
    "last_status_code": 200,
    "created_at": "2026-01-15T10:15:02.318000Z",
    "updated_at": "2026-01-15T10:15:02.412000Z",
}
ATTEMPT_EXAMPLE: dict[str, Any] = {
    "attempt": 1,
    "started_at": "2026-01-15T10:15:02.331000Z",
    "status_code": 200,
    "duration_ms": 81,
    "response_body": '{"status":"ok"}',
    "error": None,
}


class EndpointCreate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_CREATE_EXAMPLE]})

    url: Text | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description=URL_DOC + " Required for an http endpoint; none for a stream one.",
    )
    kind: Literal["http", "stream"] = Field("http", description=KIND_DOC)
    tenant_id: TenantId | None = Field(None, description=TENANT_DOC)
    description: Text | None = Field(None, max_length=1000, description=DESCRIPTION_DOC)
    event_types: list[str] | None = Field(None, max_length=500, description=EVENT_TYPES_DOC)
    source_ids: list[ObjectId] | None = Field(
        None,
        max_length=500,
        description=SOURCE_IDS_RULE,
    )
    signature: Signature | None = Field(None, description=SIGNATURE_DOC + " Null: standard.")
    secret: str | None = Field(
        None,
        description="The signing secret: for `standard`, `whsec_` followed by the base64 of "
        "24 to 64 bytes (Standard Webhooks); for the other schemes, any 16 to 256 printable "
        "characters. Leave it out and the gateway generates one (`whsec_...`, good for every "
        "scheme); either way the answer shows it.",
    )
    headers: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=50, description=HEADERS_DOC
    )
    rate_limit: int | None = Field(None, gt=0, le=100_000, description=RATE_LIMIT_DOC)
    ordered: Ordered = Field(False, description=ORDERED_DOC)
    disabled: bool = Field(
        False, description="Create it disabled: it receives nothing until enabled."
    )
    transformation: Text | None = Field(
        None, min_length=1, max_length=MAX_CODE_CHARS, description=TRANSFORMATION_DOC
    )
    filter: Text | None = Field(
        None, min_length=1, max_length=filters.MAX_LENGTH, description=FILTER_DOC
    )

    auth: EndpointAuth | None = Field(None, description=AUTH_DOC)
    retry_policy: RetryPolicy | None = Field(None, description=POLICY_DOC)
    contact_email: str | None = Field(None, max_length=320, description=CONTACT_EMAIL_DOC)

    _types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)
    _email = field_validator("contact_email")(_check_email)
    _filter = field_validator("filter")(_check_filter)


class EndpointUpdate(Input):
    """Only the fields sent change; `null` clears a field that may be empty."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event_types": ["invoice.*", "customer.deleted"]}]}
    )

    url: Text | None = Field(
        None, min_length=1, max_length=2048, description=URL_DOC + " Cannot be null."
    )
    tenant_id: TenantId | None = Field(None, description=TENANT_DOC)
    description: Text | None = Field(None, max_length=1000, description=DESCRIPTION_DOC)
    event_types: list[str] | None = Field(None, max_length=500, description=EVENT_TYPES_DOC)
    source_ids: list[ObjectId] | None = Field(
        None,
        max_length=500,
        description=SOURCE_IDS_RULE,
    )
    headers: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        None, max_length=50, description=HEADERS_DOC + " Replaces the whole set; `{}` clears it."
    )
    rate_limit: int | None = Field(None, gt=0, le=100_000, description=RATE_LIMIT_DOC)
    ordered: Ordered | None = Field(
        None,
        description=ORDERED_DOC + " Cannot be null. Made unordered, the deliveries its keys "
        "held back go at once.",
    )
    disabled: bool | None = Field(
        None,
        description="`true` stops deliveries to it (waiting ones end as failed); `false` "
        "enables it again. Cannot be null.",
    )
    transformation: Text | None = Field(
        None, min_length=1, max_length=MAX_CODE_CHARS, description=TRANSFORMATION_DOC
    )
    filter: Text | None = Field(
        None, min_length=1, max_length=filters.MAX_LENGTH, description=FILTER_DOC
    )
    signature: Signature | None = Field(
        None,
        description=SIGNATURE_DOC + " Null: back to standard (the secret must then be a "
        "`whsec_` one: rotate to a generated secret first). The secret stays as it is.",
    )

    auth: EndpointAuth | None = Field(None, description=AUTH_DOC + " `null` removes it.")
    retry_policy: RetryPolicy | None = Field(
        None, description=POLICY_DOC + " Replaces the whole policy."
    )
    contact_email: str | None = Field(None, max_length=320, description=CONTACT_EMAIL_DOC)

    _types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _email = field_validator("contact_email")(_check_email)
    _filter = field_validator("filter")(_check_filter)


class EndpointOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_EXAMPLE]})

    id: str = Field(description="The endpoint's id: `ep_` and a ULID.")
    url: str | None = Field(description=URL_DOC + " Null for a stream endpoint.")
    kind: Literal["http", "stream"] = Field("http", description=KIND_DOC)
    tenant_id: str | None = Field(description=TENANT_DOC)
    description: str | None = Field(description=DESCRIPTION_DOC)
    event_types: list[str] | None = Field(description=EVENT_TYPES_DOC)
    source_ids: list[str] | None = Field(description=SOURCE_IDS_RULE)
    headers: dict[str, str] = Field(description=HEADERS_DOC)
    rate_limit: int | None = Field(description=RATE_LIMIT_DOC)
    ordered: Ordered = Field(False, description=ORDERED_DOC)
    transformation: str | None = Field(None, description=TRANSFORMATION_DOC)
    filter: str | None = Field(None, description=FILTER_DOC)
    signature: Signature = Field(
        default_factory=lambda: StandardSignature(scheme="standard"), description=SIGNATURE_DOC
    )
    auth: dict[str, Any] | None = Field(
        None, description=AUTH_DOC.replace("Null: none", "Its secrets are `********`; null: none")
    )
    retry_policy: RetryPolicy | None = Field(None, description=POLICY_DOC)
    contact_email: str | None = Field(None, description=CONTACT_EMAIL_DOC)
    failed_deliveries_in_row: int = Field(
        0, description="Deliveries to it that ended failed since its last success."
    )
    warned_percent: int = Field(
        0,
        description="The last `endpoint.failing` warning published (50, 70 or 90: percent "
        "of the way to being disabled by the nearer rule) since it last succeeded; 0: none.",
    )
    disabled: bool = Field(description="Whether deliveries to it are stopped.")
    disabled_reason: str | None = Field(
        None,
        description="Why the gateway disabled it (it answered 410 Gone, or every attempt "
        "failed for GATEWAY_DISABLE_AFTER); null when enabled or disabled by a request.",
    )
    failing_since: datetime | None = Field(
        None,
        description="Since when every attempt to it has failed (RFC 3339, UTC); null while "
        "its latest attempt succeeded.",
    )
    created_at: datetime = Field(description="When it was created (RFC 3339, UTC).")
    updated_at: datetime = Field(description="When it was last changed (RFC 3339, UTC).")


class EndpointCreated(EndpointOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**ENDPOINT_EXAMPLE, "secret": SECRET_EXAMPLE}]}
    )

    secret: str = Field(
        description="The signing secret (`whsec_...`): shown here and by "
        "`GET /v1/endpoints/{endpoint_id}/secret` only. Keep it in a secret store."
    )


class SecretOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret": SECRET_EXAMPLE,
                    "previous_secret_expires_at": "2026-01-16T11:02:45.120000Z",
                }
            ]
        }
    )

    secret: str = Field(description="The current signing secret (`whsec_...`).")
    previous_secret_expires_at: datetime | None = Field(
        None,
        description="Until when the secret before the last rotation still signs beside the "
        "current one (RFC 3339, UTC); null when only the current one signs.",
    )


class AuthOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"auth": {"type": "bearer", "token": "tok_7Hq2c9XbR4"}}, {"auth": None}]
        }
    )

    auth: dict[str, Any] | None = Field(
        description="The endpoint's `auth` with its secrets in clear; null when it has none."
    )


class SecretRotate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"secret": SECRET_EXAMPLE}]})
    example_summaries: ClassVar[tuple[str, ...]] = (
        "A secret the gateway generates",
        "A secret of your own",
    )

    secret: str | None = Field(
        None,
        description="The new secret (for `standard`, `whsec_` and the base64 of 24 to 64 "
        "bytes; for the other schemes, 16 to 256 printable characters); left out, the "
        "gateway generates one.",
    )

    _secret = field_validator("secret")(_check_any_secret)


def _in_utc(value: datetime | None) -> datetime | None:
    """Taken to UTC now, so that a date past the calendar's edge is a 422, not a 500."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("date is out of range once taken to UTC") from None


class Recover(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"since": "2026-01-15T00:00:00Z", "until": "2026-01-16T00:00:00Z"},
            ]
        }
    )

    since: datetime = Field(
        description="Re-queue the failed deliveries created at or after this instant "
        "(RFC 3339; without an offset, UTC)."
    )
    until: datetime | None = Field(
        None, description="And created before this instant; left out, up to now."
    )

    _utc = field_validator("since", "until")(_in_utc)


class Recovered(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"requeued": 12}]})

    requeued: int = Field(description="How many failed deliveries were queued again, due now.")


class EndpointTestSend(Input):
    """What a test send sends; left out, a `webhook.test` event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{}, {"event_type": "invoice.paid"}, EVENT_TEST_EXAMPLE],
        }
    )
    example_summaries: ClassVar[tuple[str, ...]] = (
        "A webhook.test event",
        "A type's first example from the catalogue",
        "A type with data of your own",
    )

    event_type: EventType | None = Field(
        None,
        description="The event's type; left out, `webhook.test`. Data of a type in the "
        "event-type catalogue must meet its schema (422 otherwise).",
    )
    data: dict[str, Any] | None = Field(
        None,
        description="The event's data; left out, the type's first example in the catalogue "
        "(422 when it has none), or for `webhook.test` a short message.",
    )

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_value(value)
        return value


class EventCreate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_CREATE_EXAMPLE]})

    type: EventType = Field(
        description="The event's type, matched against endpoints' `event_types`: letters, "
        "digits, `_`, `.` and `-`, dots separating the parts (`invoice.paid`)."
    )
    data: dict[str, Any] = Field(
        description="Any JSON object: endpoints receive it as it was sent, as the payload's "
        "`data` (no NaN or Infinity, at most 64 levels deep)."
    )
    tenant_id: TenantId | None = Field(
        None,
        description="The tenant it belongs to: only that tenant's endpoints receive it. "
        "Left out, only endpoints without a tenant do. A tenant's key always publishes as "
        "its tenant.",
    )
    endpoint_ids: list[ObjectId] | None = Field(
        None,
        max_length=1000,
        description="Send to these endpoints only (ids, `ep_...`), whatever their type "
        "filters; an unknown id is a 422. Left out, every matching endpoint receives it.",
    )
    previous_data: dict[str, Any] | None = Field(
        None,
        description="For an update event, the object as it was before the change (any JSON "
        "object, checked as `data` is): endpoints receive it as the payload's "
        "`previous_data`, beside `data`, and filters read it as `previous_data`. Left out, "
        "the payload has no `previous_data`.",
    )
    ordering_key: OrderingKeyText | None = Field(None, description=ORDERING_KEY_DOC)

    @field_validator("data", "previous_data")
    @classmethod
    def _check_data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_value(value)
        return value


class EventBatchItem(EventCreate):
    """One event of a batch: as `POST /v1/events` takes it, with its idempotency key."""

    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="Publish this event at most once per key, as the `Idempotency-Key` "
        "header does for one event: a repeat (in a later batch, or a single publish with "
        "that key) answers the first event and sends nothing new; a repeat with different "
        "content is a 409, and within one batch a 422. Scoped to the caller.",
    )


class EventBatch(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {**EVENT_CREATE_EXAMPLE, "idempotency_key": "in_42-paid"},
                        {
                            "type": "invoice.updated",
                            "data": {"invoice": "in_43", "amount": 900, "status": "open"},
                            "previous_data": {
                                "invoice": "in_43",
                                "amount": 1200,
                                "status": "open",
                            },
                            "idempotency_key": "in_43-updated-2",
                        },
                    ]
                }
            ]
        }
    )

    events: list[EventBatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        description=f"1 to {MAX_BATCH_EVENTS} events, each as `POST /v1/events` takes it. "
        "All are stored, or none: the first refused one is answered (422 whose `loc` "
        'names its index, `["body", "events", 3, ...]`).',
    )


class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]})

    id: str = Field(
        description="The event's id: `evt_` and a ULID. Endpoints receive it as the "
        "payload's `id` and the `webhook-id` header."
    )
    type: str = Field(
        description="The event's type; for a received event, the provider's type in the "
        "gateway's alphabet (`orders/create` becomes `orders.create`, none is `unknown`)."
    )
    data: dict[str, Any] = Field(
        description="The JSON object endpoints receive as the payload's `data`; for a "
        "received event, the provider's JSON object (anything else is wrapped: "
        '`{"payload": ...}` or `{"body": "<text>"}`).'
    )
    previous_data: dict[str, Any] | None = Field(
        None,
        description="An update event's data before the change, as published: endpoints "
        "receive it as the payload's `previous_data`. Null when it was not given.",
    )
    tenant_id: str | None = Field(description="The tenant it belongs to; null for none.")
    source_id: str | None = Field(
        description="The inbound source it was received through (`src_...`); null for an "
        "event published through the API."
    )
    ordering_key: str | None = Field(None, description=ORDERING_KEY_DOC)
    sequence: int | None = Field(
        None,
        description="Its place among the events of its `ordering_key`, from 1, in the order "
        "they were stored: the order ordered endpoints receive them in. Null without a key.",
    )
    created_at: datetime = Field(
        description="When the gateway stored it (RFC 3339, UTC): the payload's `timestamp`."
    )


class EventPublished(EventOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{**EVENT_EXAMPLE, "deliveries": 2}]})

    deliveries: int = Field(
        description="How many endpoints it is being delivered to (0 when none matches)."
    )


class EventBatchItemPublished(EventPublished):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**EVENT_EXAMPLE, "deliveries": 2, "created": True}]}
    )

    created: bool = Field(
        description="True when stored by this batch; false when its `idempotency_key` "
        "repeated an earlier event: that event is answered and nothing new is sent."
    )


class EventBatchPublished(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"events": [{**EVENT_EXAMPLE, "deliveries": 2, "created": True}]}]
        }
    )

    events: list[EventBatchItemPublished] = Field(
        description="Each event of the batch, in the order sent: its id and how many "
        "endpoints it is being delivered to."
    )


class AttemptOut(BaseModel):
    attempt: int = Field(description="Its number among the delivery's attempts, from 1.")
    started_at: datetime = Field(description="When it started (RFC 3339, UTC).")
    status_code: int | None = Field(
        description="The endpoint's HTTP status; null when there was no answer (timeout, "
        "connection or TLS error)."
    )
    duration_ms: int = Field(
        description="Milliseconds from connecting to the last byte of the answer (or to "
        "the failure)."
    )
    response_body: str | None = Field(
        description="The first 4 KiB of the endpoint's answer, as text; null without one."
    )
    error: str | None = Field(
        description="Why it failed when the status does not say (`timed out after 15s`, "
        "`connection failed: ...`, `refused: ...` for a disallowed address, `redirect to "
        "... not followed`); null otherwise."
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    id: str = Field(description="The delivery's id: `dlv_` and a ULID.")
    event_id: str = Field(description="The event delivered (`evt_...`).")
    endpoint_id: str = Field(description="The endpoint it goes to (`ep_...`).")
    status: str = Field(
        description="`pending` (waiting for its next attempt, or in one), `succeeded` (the "
        "endpoint answered 2xx), `failed` (out of attempts, answered 410, or its endpoint "
        "was disabled), `cancelled` (its endpoint's transformation cancelled it: not sent) "
        "or `skipped` (passed over by hand: not sent, and no longer holding back its key).",
        json_schema_extra={"enum": ["pending", "succeeded", "failed", "cancelled", "skipped"]},
    )
    ordering_key: str | None = Field(
        None,
        description="The event's ordering key, when its endpoint is ordered: it is sent "
        "after the deliveries of the key before it (`sequence`). Null otherwise.",
    )
    sequence: int | None = Field(
        None, description="The event's place among its key's events; null without a key."
    )
    attempt_count: int = Field(description="Attempts made so far.")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (RFC 3339, UTC); null once it succeeded "
        "or failed."
    )
    last_status_code: int | None = Field(
        description="The HTTP status of the latest attempt; null before the first, or when "
        "the latest had no answer."
    )
    created_at: datetime = Field(description="When it was created (RFC 3339, UTC).")
    updated_at: datetime = Field(description="When it last changed (RFC 3339, UTC).")


class DeliveryDetail(DeliveryOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**DELIVERY_EXAMPLE, "attempts": [ATTEMPT_EXAMPLE]}]}
    )

    attempts: list[AttemptOut] = Field(description="Every attempt made, oldest first.")


class EventDetail(EventOut):
    """An event with, when it came in through a source, the request as received."""

    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE, RECEIVED_EXAMPLE]})
    example_summaries: ClassVar[tuple[str, ...]] = ("Published", "Received through a source")

    headers: dict[str, str] | None = Field(
        None,
        description="A received event's request headers, names in lower case (credentials "
        "such as `authorization` and `cookie` are not kept); null for a published event.",
    )
    body: str | None = Field(
        None,
        description="A received event's request body exactly as it came, in "
        "`body_encoding`; null for a published event.",
    )
    body_encoding: Literal["utf-8", "base64"] | None = Field(
        None, description="`utf-8` when the body is text, `base64` otherwise."
    )
    verification: str | None = Field(
        None,
        description="How the gateway verified the request (`github sha256 signature`, "
        "`stripe v1 signature, t=...`); null for a published event.",
    )


class FilterTest(Input):
    """A sample event to try an endpoint's filter (or another expression) on."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "invoice.paid", "data": {"amount": 1500, "currency": "EUR"}},
                {
                    "type": "invoice.paid",
                    "data": {"amount": 20, "currency": "EUR"},
                    "filter": "data.amount > 1000",
                },
            ]
        }
    )
    example_summaries: ClassVar[tuple[str, ...]] = (
        "Try the saved filter",
        "Try another expression",
    )

    type: EventType = Field(description="The event's type, the filter's `type`.")
    data: dict[str, Any] = Field(description="The event's data, the filter's `data`.")
    previous_data: dict[str, Any] | None = Field(
        None,
        description="An update event's data before the change, the filter's "
        "`previous_data` (`{}` when left out).",
    )
    tenant_id: TenantId | None = Field(None, description="The filter's `tenant_id`.")
    source_id: ObjectId | None = Field(None, description="The filter's `source_id`.")
    headers: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict,
        max_length=100,
        description="The filter's `headers`, as a received event's (names in lower case).",
    )
    filter: Text | None = Field(
        None,
        min_length=1,
        max_length=filters.MAX_LENGTH,
        description="An expression to try instead of the endpoint's saved filter.",
    )

    _filter = field_validator("filter")(_check_filter)

    @field_validator("data", "previous_data")
    @classmethod
    def _check_data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_value(value)
        return value


class FilterTestResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"matches": True, "error": None},
                {"matches": False, "error": "no such key: amount"},
            ]
        }
    )

    matches: bool = Field(
        description="Whether the event would be delivered to the endpoint by its filter "
        "(true when it has none); its type and source filters are not applied here."
    )
    error: str | None = Field(
        description="Why the filter failed on the event (then it does not match); null "
        "when it evaluated to true or false."
    )


class StreamAck(Input):
    """What a stream's client answers for one attempt it was offered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delivery_id": "dlv_01KF41J7M4A2C6E8G1J3K5M7NQ",
                    "attempt": 1,
                    "status_code": 200,
                    "body": '{"ok":true}',
                }
            ]
        }
    )

    delivery_id: ObjectId = Field(description="The offer's `delivery_id`.")
    attempt: int = Field(ge=1, le=10_000, description="The offer's `attempt`.")
    status_code: int | None = Field(
        ge=100,
        le=599,
        description="What the local receiver answered: a 2xx is a success, anything else "
        "a failure retried on the schedule. Null: it did not answer (say why in `error`).",
    )
    body: Text = Field(
        "", max_length=4096, description="The first characters of the local answer's body."
    )
    error: Text | None = Field(
        None, max_length=1000, description="Why there is no answer (recorded in the attempt log)."
    )
