"""Request and response bodies of the HTTP API (api.md is the contract)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.outbound.signer import secret_key

T = TypeVar("T")

EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.\-]+$"
_FILTER_RE = re.compile(r"^(\*|[A-Za-z0-9_.\-]+(\.\*)?)$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the gateway sets itself or that would break the request.
RESERVED_HEADERS = {
    "content-type", "content-length", "transfer-encoding", "host", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent", "te", "upgrade",
}

EventType = Annotated[str, Field(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN)]
TenantId = Annotated[str, Field(min_length=1, max_length=255)]
ObjectId = Annotated[str, Field(min_length=1, max_length=40)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for item in value:
        if not _FILTER_RE.match(item):
            raise ValueError(
                f"invalid event type filter {item!r}: use a type, 'prefix.*' or '*'"
            )
    return value


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for name, header_value in value.items():
        if not _HEADER_NAME_RE.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the gateway and cannot be overridden")
        if any(c in header_value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has a line break or NUL in its value")
    return value


def _check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_key(value)
    return value


class EndpointCreate(_Input):
    url: str = Field(min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: str | None = Field(None, max_length=1000)
    event_types: list[str] | None = Field(None, max_length=500)
    source_ids: list[ObjectId] | None = Field(None, max_length=500)
    secret: str | None = None
    headers: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=50
    )
    rate_limit: int | None = Field(None, gt=0, le=100_000)
    disabled: bool = False

    _types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)


class EndpointUpdate(_Input):
    url: str | None = Field(None, min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: str | None = Field(None, max_length=1000)
    event_types: list[str] | None = Field(None, max_length=500)
    source_ids: list[ObjectId] | None = Field(None, max_length=500)
    headers: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        None, max_length=50
    )
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
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str


class SecretOut(BaseModel):
    secret: str
    previous_secret_expires_at: datetime | None = None


class SecretRotate(_Input):
    secret: str | None = None

    _secret = field_validator("secret")(_check_secret)


class Recover(_Input):
    since: datetime
    until: datetime | None = None


class Recovered(BaseModel):
    requeued: int


class EventCreate(_Input):
    type: EventType
    data: dict[str, Any]
    tenant_id: TenantId | None = None
    endpoint_ids: list[ObjectId] | None = Field(None, max_length=1000)


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


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None
