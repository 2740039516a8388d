"""Request and response bodies of the HTTP API (api.md is the contract)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from gateway.inbound.verifiers import StandardVerifier
from gateway.outbound.signer import secret_key
from gateway.timeutil import as_utc

T = TypeVar("T")

EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.\-]+$"
_FILTER_RE = re.compile(r"^(\*|[A-Za-z0-9_.\-]+(\.\*)?)$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the gateway sets itself or that would break the request.
RESERVED_HEADERS = {
    "content-type", "content-length", "transfer-encoding", "host", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent", "te", "upgrade",
}

# Header values go on the wire as they are: visible ASCII, spaces and tabs only.
_HEADER_VALUE_RE = re.compile(r"^[\t\x20-\x7e]*$")
MAX_DATA_DEPTH = 64


def storable(value: str) -> str:
    """Refuse what no database column can hold: NUL, and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(storable)]
EventType = Annotated[str, Field(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN)]
TenantId = Annotated[Text, Field(min_length=1, max_length=255)]
ObjectId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]


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
        if not _HEADER_VALUE_RE.match(header_value):
            raise ValueError(
                f"header {name!r} must have a value of printable ASCII characters"
            )
    return value


def _check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_key(value)
    return value


class EndpointCreate(_Input):
    url: Text = Field(min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: Text | None = Field(None, max_length=1000)
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
    url: Text | None = Field(None, min_length=1, max_length=2048)
    tenant_id: TenantId | None = None
    description: Text | None = Field(None, max_length=1000)
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
    disabled_reason: str | None = None
    failing_since: datetime | None = None
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


def _in_utc(value: datetime | None) -> datetime | None:
    """Taken to UTC now, so that a date past the calendar's edge is a 422, not a 500."""
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("date is out of range once taken to UTC") from None


class Recover(_Input):
    since: datetime
    until: datetime | None = None

    _utc = field_validator("since", "until")(_in_utc)


class Recovered(BaseModel):
    requeued: int


class EventCreate(_Input):
    type: EventType
    data: dict[str, Any]
    tenant_id: TenantId | None = None
    endpoint_ids: list[ObjectId] | None = Field(None, max_length=1000)

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_value(value)
        return value


def check_json_value(value: Any, depth: int = 1) -> None:
    """What receivers can parse: no NaN or infinities, sane nesting, valid Unicode."""
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"data is nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("data must not contain NaN or Infinity (they are not JSON)")
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)


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


class ErrorOut(BaseModel):
    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    meaning = {
        401: "Missing or invalid API key", 403: "Not allowed for this key",
        404: "Not found (or another tenant's)", 409: "Conflicts with the current state",
        413: "Body over the size limit", 429: "Over the rate limit; see Retry-After",
        503: "Database unavailable; retry",
    }
    return {code: {"model": ErrorOut, "description": meaning[code]} for code in codes}


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


# Inbound sources

Provider = Literal["stripe", "github", "gitlab", "shopify", "slack", "standard", "hmac"]
HeaderName = Annotated[str, Field(min_length=1, max_length=255, pattern=_HEADER_NAME_RE.pattern)]


class HmacOptions(_Input):
    """How a generic sender signs: which header, which hash, which encoding."""

    header: HeaderName
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: Annotated[Text, Field(max_length=64)] = ""
    id_header: HeaderName | None = None
    type_field: Annotated[Text, Field(min_length=1, max_length=255)] | None = None


def check_source_options(provider: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options normalised for the provider; ValueError naming the problem."""
    if provider == "hmac":
        if not options:
            raise ValueError("options with at least 'header' are required for provider 'hmac'")
        try:
            return HmacOptions.model_validate(options).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"invalid hmac options ({problems})") from None
    if options:
        raise ValueError(f"provider {provider!r} takes no options")
    return {}


def check_source_secret(provider: str, secret: str) -> str:
    if provider == "standard":
        StandardVerifier.key(secret)
    return secret


SourceSecret = Annotated[Text, Field(min_length=1, max_length=1024)]
Tolerance = Annotated[int, Field(ge=1, le=7 * 24 * 3600)]


class SourceCreate(_Input):
    name: Annotated[Text, Field(min_length=1, max_length=255)]
    provider: Provider
    secret: SourceSecret
    # Validated when absent too: hmac cannot do without its options.
    options: dict[str, Any] | None = Field(None, validate_default=True)
    tolerance_seconds: Tolerance = 300
    rate_limit: int | None = Field(None, gt=0, le=1_000_000)
    deduplicate_body: bool | None = None
    disabled: bool = False

    # Checked against the provider, declared before them, so that errors name the field.
    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str, info: ValidationInfo) -> str:
        if "provider" in info.data:
            check_source_secret(info.data["provider"], value)
        return value

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any] | None, info: ValidationInfo
                       ) -> dict[str, Any] | None:
        if "provider" not in info.data:
            return value
        return check_source_options(info.data["provider"], value)


class SourceUpdate(_Input):
    name: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    secret: SourceSecret | None = None
    options: dict[str, Any] | None = None
    tolerance_seconds: Tolerance | None = None
    rate_limit: int | None = Field(None, gt=0, le=1_000_000)
    # null: back to the provider's default.
    deduplicate_body: bool | None = None
    disabled: bool | None = None


class SourceOut(BaseModel):
    id: str
    name: str
    provider: str
    options: dict[str, Any]
    tolerance_seconds: int
    rate_limit: int | None
    # In effect: the source's own choice, else its provider's default.
    deduplicate_body: bool
    disabled: bool
    ingest_path: str
    created_at: datetime
    updated_at: datetime


class SourceCreated(SourceOut):
    secret: str


class SourceSecretOut(BaseModel):
    secret: str


class InboundAccepted(BaseModel):
    status: Literal["accepted", "duplicate"]
    event_id: str


class InboundChallenge(BaseModel):
    """The answer to a Slack `url_verification` handshake."""

    challenge: str


class EventDetail(EventOut):
    """An event with, when it came in through a source, the request as received."""

    headers: dict[str, str] | None = None
    body: str | None = None
    body_encoding: Literal["utf-8", "base64"] | None = None
    verification: str | None = None


# API keys

class ApiKeyCreate(_Input):
    name: Annotated[Text, Field(min_length=1, max_length=255)]
    tenant_id: TenantId | None = None
    rate_limit: int | None = Field(None, gt=0, le=1_000_000)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    key_prefix: str
    tenant_id: str | None
    rate_limit: int | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str
