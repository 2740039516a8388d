"""The API's request and response bodies, named as in the gateway's OpenAPI document.

Written by hand, field for field; tests/sdk/test_sdk_openapi.py fails when they and the
document drift apart. Request bodies refuse unknown fields, as the gateway does, so a typo
fails before anything is sent; response bodies keep fields this version does not know yet
(readable with `model_extra`), so a newer gateway does not break an older client.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled", "skipped"]
# How an endpoint receives the events of one `ordering_key`: as fast as it can (False),
# one at a time in order (True), or one at a time and stopping at a failure ("strict").
Ordered = bool | Literal["strict"]
# Where an endpoint's deliveries go: POSTed to its url, or read from its stream.
EndpointKind = Literal["http", "stream"]


class RequestModel(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResponseModel(BaseModel):
    """A response body: fields added by a newer gateway are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Page(ResponseModel, Generic[T]):
    """One page of a list; `next_cursor` asks for the next (null on the last)."""

    data: list[T]
    next_cursor: str | None


class ErrorOut(ResponseModel):
    detail: str


class ValidationProblem(ResponseModel):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(ResponseModel):
    detail: list[ValidationProblem]


# Signature schemes and endpoint authentication


class StandardSignature(RequestModel):
    scheme: Literal["standard"] = "standard"


class HmacSignature(RequestModel):
    scheme: Literal["hmac"] = "hmac"
    header: str = "X-Webhook-Signature"
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str | None = None
    signed: Literal["{body}", "{timestamp}.{body}"] = "{body}"
    timestamp_header: str | None = None
    id_header: str | None = None


class GithubSignature(RequestModel):
    scheme: Literal["github"] = "github"


class StripeSignature(RequestModel):
    scheme: Literal["stripe"] = "stripe"


Signature = Annotated[
    StandardSignature | HmacSignature | GithubSignature | StripeSignature,
    Field(discriminator="scheme"),
]


class BasicAuth(RequestModel):
    type: Literal["basic"] = "basic"
    username: str
    password: str


class BearerAuth(RequestModel):
    type: Literal["bearer"] = "bearer"
    token: str


class OAuth2Auth(RequestModel):
    type: Literal["oauth2"] = "oauth2"
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None


class MtlsAuth(RequestModel):
    type: Literal["mtls"] = "mtls"
    certificate: str
    private_key: str
    ca_bundle: str | None = None


Auth = Annotated[BasicAuth | BearerAuth | OAuth2Auth | MtlsAuth, Field(discriminator="type")]


class RetryPolicy(RequestModel):
    schedule: list[float] | None = None
    max_duration: int | None = None
    final_statuses: list[int] | None = None
    disable_after_failures: int | None = None


# Endpoints


class EndpointCreate(RequestModel):
    url: str | None = None
    kind: EndpointKind = "http"
    tenant_id: str | None = None
    description: str | None = None
    event_types: list[str] | None = None
    source_ids: list[str] | None = None
    signature: Signature | None = None
    secret: str | None = None
    headers: dict[str, str] = {}
    rate_limit: int | None = None
    disabled: bool = False
    transformation: str | None = None
    filter: str | None = None
    auth: Auth | None = None
    retry_policy: RetryPolicy | None = None
    contact_email: str | None = None
    ordered: Ordered = False


class EndpointUpdate(RequestModel):
    """Only the fields given are changed; `None` clears a field that may be empty."""

    url: str | None = None
    tenant_id: str | None = None
    description: str | None = None
    event_types: list[str] | None = None
    source_ids: list[str] | None = None
    headers: dict[str, str] | None = None
    rate_limit: int | None = None
    disabled: bool | None = None
    transformation: str | None = None
    filter: str | None = None
    signature: Signature | None = None
    auth: Auth | None = None
    retry_policy: RetryPolicy | None = None
    contact_email: str | None = None
    ordered: Ordered | None = None


class EndpointOut(ResponseModel):
    id: str
    url: str | None
    kind: EndpointKind = "http"
    tenant_id: str | None
    description: str | None
    event_types: list[str] | None
    source_ids: list[str] | None
    headers: dict[str, str]
    rate_limit: int | None
    transformation: str | None = None
    filter: str | None = None
    signature: Signature = StandardSignature()
    auth: dict[str, Any] | None = None
    retry_policy: RetryPolicy | None = None
    contact_email: str | None = None
    failed_deliveries_in_row: int = 0
    warned_percent: int = 0
    disabled: bool
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    ordered: Ordered = False
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str


class SecretOut(ResponseModel):
    secret: str
    previous_secret_expires_at: datetime | None = None


class SecretRotate(RequestModel):
    secret: str | None = None


class AuthOut(ResponseModel):
    auth: dict[str, Any] | None


class EndpointTestSend(RequestModel):
    event_type: str | None = None
    data: dict[str, Any] | None = None


class FilterTest(RequestModel):
    type: str
    data: dict[str, Any]
    previous_data: dict[str, Any] | None = None
    tenant_id: str | None = None
    source_id: str | None = None
    headers: dict[str, str] = {}
    filter: str | None = None


class FilterTestResult(ResponseModel):
    matches: bool
    error: str | None


class TransformationTest(RequestModel):
    payload: Any = None
    event_type: str | None = None
    code: str | None = None


class TransformationTested(ResponseModel):
    result: dict[str, Any] | None
    error: str | None


class StreamAck(RequestModel):
    delivery_id: str
    attempt: int
    status_code: int | None
    body: str = ""
    error: str | None = None


class StreamOffer(ResponseModel):
    """One attempt read from a stream endpoint (not in the document's schemas: it is the
    `data` of the stream's `delivery` events): the signed request, to forward as it is."""

    delivery_id: str
    attempt: int
    event_id: str
    event_type: str
    method: str
    headers: dict[str, str]
    body: str
    body_encoding: Literal["utf-8", "base64"]

    @property
    def content(self) -> bytes:
        """The request's body as it was signed."""
        if self.body_encoding == "base64":
            return base64.b64decode(self.body)
        return self.body.encode()


class Recover(RequestModel):
    since: datetime
    until: datetime | None = None


class Recovered(ResponseModel):
    requeued: int


# Events and deliveries


class EventCreate(RequestModel):
    type: str
    data: dict[str, Any]
    tenant_id: str | None = None
    endpoint_ids: list[str] | None = None
    previous_data: dict[str, Any] | None = None
    ordering_key: str | None = None


class EventBatchItem(EventCreate):
    idempotency_key: str | None = None


class EventBatch(RequestModel):
    events: list[EventBatchItem]


class EventOut(ResponseModel):
    id: str
    type: str
    data: dict[str, Any]
    previous_data: dict[str, Any] | None = None
    tenant_id: str | None
    source_id: str | None
    created_at: datetime
    ordering_key: str | None = None
    sequence: int | None = None


class EventPublished(EventOut):
    deliveries: int


class EventBatchItemPublished(EventPublished):
    created: bool


class EventBatchPublished(ResponseModel):
    events: list[EventBatchItemPublished]


class EventDetail(EventOut):
    """An event; a received one also has the request as it came in."""

    headers: dict[str, str] | None = None
    body: str | None = None
    body_encoding: Literal["utf-8", "base64"] | None = None
    verification: str | None = None


class DeliveryOut(ResponseModel):
    id: str
    event_id: str
    endpoint_id: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    ordering_key: str | None = None
    sequence: int | None = None


class AttemptOut(ResponseModel):
    attempt: int
    started_at: datetime
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None


class DeliveryDetail(DeliveryOut):
    attempts: list[AttemptOut]


# The event-type catalogue


class EventTypeCreate(RequestModel):
    name: str
    description: str | None = None
    data_schema: dict[str, Any] | None = Field(None, alias="schema")
    examples: list[dict[str, Any]] = []
    deprecated: bool = False


class EventTypeUpdate(RequestModel):
    description: str | None = None
    data_schema: dict[str, Any] | None = Field(None, alias="schema")
    examples: list[dict[str, Any]] | None = None
    deprecated: bool | None = None
    archived: bool | None = None


class EventTypeOut(ResponseModel):
    name: str
    group: str | None
    description: str | None
    data_schema: dict[str, Any] | None = Field(alias="schema")
    examples: list[dict[str, Any]]
    deprecated: bool
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document whose `webhooks` become event types."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    webhooks: dict[str, dict[str, Any]]
    components: dict[str, Any] | None = None


class EventTypesImported(ResponseModel):
    created: list[str]
    updated: list[str]


# Sources (inbound webhooks from providers)

Provider = Literal["stripe", "github", "gitlab", "shopify", "slack", "standard", "hmac"]


class SourceCreate(RequestModel):
    name: str
    provider: Provider
    secret: str
    options: dict[str, Any] | None = None
    tolerance_seconds: int = 300
    rate_limit: int | None = None
    deduplicate_body: bool | None = None
    validate_data: bool = Field(False, alias="validate")
    disabled: bool = False
    transformation: str | None = None


class SourceUpdate(RequestModel):
    name: str | None = None
    secret: str | None = None
    options: dict[str, Any] | None = None
    tolerance_seconds: int | None = None
    rate_limit: int | None = None
    deduplicate_body: bool | None = None
    validate_data: bool | None = Field(None, alias="validate")
    disabled: bool | None = None
    transformation: str | None = None


class SourceOut(ResponseModel):
    id: str
    name: str
    provider: str
    options: dict[str, Any]
    tolerance_seconds: int
    rate_limit: int | None
    deduplicate_body: bool
    validate_data: bool = Field(False, alias="validate")
    disabled: bool
    transformation: str | None = None
    ingest_path: str
    created_at: datetime
    updated_at: datetime


class SourceCreated(SourceOut):
    secret: str


class SourceSecretOut(ResponseModel):
    secret: str


class RefusalOut(ResponseModel):
    id: int
    source_id: str
    received_at: datetime
    reason: str
    message: str
    client: str
    headers: dict[str, str]


class RefusalList(ResponseModel):
    data: list[RefusalOut]


# API keys and portal links


class ApiKeyCreate(RequestModel):
    name: str
    tenant_id: str | None = None
    rate_limit: int | None = None


class ApiKeyOut(ResponseModel):
    id: str
    name: str
    key_prefix: str
    tenant_id: str | None
    rate_limit: int | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str


class PortalLinkCreate(RequestModel):
    tenant_id: str
    expires_in: int = 3600


class PortalLinkOut(ResponseModel):
    url: str
    expires_at: datetime


class PortalLinksRevoke(RequestModel):
    tenant_id: str


# Statistics and health

Bucket = Literal["minute", "hour", "day"]


class Latency(ResponseModel):
    p50: int | None
    p95: int | None
    p99: int | None


class StatusClasses(ResponseModel):
    c1xx: int = Field(alias="1xx")
    c2xx: int = Field(alias="2xx")
    c3xx: int = Field(alias="3xx")
    c4xx: int = Field(alias="4xx")
    c5xx: int = Field(alias="5xx")
    none: int


class BucketFigures(ResponseModel):
    attempts: int
    succeeded: int
    failed: int
    retried: int
    success_rate: float | None
    latency_ms: Latency
    status_classes: StatusClasses
    start: datetime


class StatsOut(ResponseModel):
    attempts: int
    succeeded: int
    failed: int
    retried: int
    success_rate: float | None
    latency_ms: Latency
    status_classes: StatusClasses
    since: datetime
    until: datetime
    bucket: Bucket
    buckets: list[BucketFigures]


class Health(ResponseModel):
    status: Literal["ok"]


class Readiness(ResponseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


# What an endpoint receives


class WebhookPayload(ResponseModel):
    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]
    previous_data: dict[str, Any] | None = None
