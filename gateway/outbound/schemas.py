"""Request and response bodies of endpoints, events and deliveries."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.outbound.signer import secret_key
from gateway.timeutil import as_utc
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


def _check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_key(value)
    return value


# The origin rule (outbound/matching.py), said once for every schema that shows it.
SOURCE_IDS_RULE = (
    "Which origins the endpoint takes events from: absent or null, every event (published "
    "through the API and received from any inbound source); `[]`, published events only; "
    "a list of source ids, only the events those sources receive."
)


class EndpointCreate(Input):
    url: Text = Field(min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: Text | None = Field(None, max_length=1000)
    event_types: list[str] | None = Field(None, max_length=500)
    source_ids: list[ObjectId] | None = Field(
        None,
        max_length=500,
        description=SOURCE_IDS_RULE,
    )
    secret: str | None = None
    headers: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=50
    )
    rate_limit: int | None = Field(None, gt=0, le=100_000)
    disabled: bool = False

    _types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)


class EndpointUpdate(Input):
    url: Text | None = Field(None, min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: Text | None = Field(None, max_length=1000)
    event_types: list[str] | None = Field(None, max_length=500)
    source_ids: list[ObjectId] | None = Field(
        None,
        max_length=500,
        description=SOURCE_IDS_RULE,
    )
    headers: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(None, max_length=50)
    rate_limit: int | None = Field(None, gt=0, le=100_000)
    disabled: bool | None = None

    _types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)


class EndpointOut(BaseModel):
    id: str
    url: str
    tenant_id: str | None
    description: str | None
    event_types: list[str] | None
    source_ids: list[str] | None
    headers: dict[str, str]
    rate_limit: int | None
    disabled: bool
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str


class SecretOut(BaseModel):
    secret: str
    previous_secret_expires_at: datetime | None = None


class SecretRotate(Input):
    secret: str | None = None

    _secret = field_validator("secret")(_check_secret)


def _in_utc(value: datetime | None) -> datetime | None:
    """Taken to UTC now, so that a date past the calendar's edge is a 422, not a 500."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("date is out of range once taken to UTC") from None


class Recover(Input):
    since: datetime
    until: datetime | None = None

    _utc = field_validator("since", "until")(_in_utc)


class Recovered(BaseModel):
    requeued: int


class EventCreate(Input):
    type: EventType
    data: dict[str, Any]
    tenant_id: TenantId | None = None
    endpoint_ids: list[ObjectId] | None = Field(None, max_length=1000)

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_value(value)
        return value


class EventOut(BaseModel):
    id: str
    type: str
    data: dict[str, Any]
    tenant_id: str | None
    source_id: str | None
    created_at: datetime


class EventPublished(EventOut):
    deliveries: int


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    endpoint_id: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime


class DeliveryDetail(DeliveryOut):
    attempts: list[AttemptOut]


class EventDetail(EventOut):
    """An event with, when it came in through a source, the request as received."""

    headers: dict[str, str] | None = None
    body: str | None = None
    body_encoding: Literal["utf-8", "base64"] | None = None
    verification: str | None = None
