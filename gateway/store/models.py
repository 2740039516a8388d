"""The tables. Times are naive UTC; ids are prefixed ULIDs, so ordering by id is by age."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from gateway.timeutil import utcnow

# Fixed constraint names, so migrations are the same on PostgreSQL and SQLite.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class DeliveryStatus:
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Skipped by its endpoint's transformation (`cancel: true`): never sent.
    CANCELLED = "cancelled"
    # Passed over by hand (`POST /v1/deliveries/{id}/skip`): never sent, and no longer
    # holding back the later events of its ordering key.
    SKIPPED = "skipped"
    ALL = (PENDING, SUCCEEDED, FAILED, CANCELLED, SKIPPED)


class Ordering:
    """How an endpoint receives the events of one ordering key (`Endpoint.ordering`)."""

    # One at a time, in publish order; a delivery that finally fails lets the next go.
    ORDERED = "ordered"
    # As ORDERED, but a finally failed delivery holds its key until retried or skipped.
    STRICT = "strict"


class EndpointKind:
    """How an endpoint receives its deliveries (`Endpoint.kind`)."""

    # POSTed to its `url`.
    HTTP = "http"
    # Read by a client of `GET /v1/endpoints/{id}/stream` (`gateway listen`), which
    # acknowledges each; its `url` is "" (see `outbound/streams.py`).
    STREAM = "stream"
    ALL = (HTTP, STREAM)


class Endpoint(SQLModel, table=True):
    __tablename__ = "endpoint"

    id: str = Field(primary_key=True, max_length=40)
    url: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(
        default=EndpointKind.HTTP,
        sa_column=Column(String(8), nullable=False, server_default=EndpointKind.HTTP),
    )
    tenant_id: str | None = Field(default=None, index=True, max_length=255)
    description: str | None = Field(default=None, sa_column=Column(Text))
    event_types: list[str] | None = Field(default=None, sa_column=Column(JSON))
    source_ids: list[str] | None = Field(default=None, sa_column=Column(JSON))
    secret: str = Field(sa_column=Column(Text, nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=Column(Text))
    previous_secret_expires_at: datetime | None = None
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rate_limit: int | None = None
    # A CEL expression over the event: delivered only when it is true (None: always).
    filter: str | None = Field(default=None, sa_column=Column(Text))
    # JavaScript defining `handler(webhook)`, run on each delivery before it is sent.
    transformation: str | None = Field(default=None, sa_column=Column(Text))
    # How deliveries are signed: {"scheme": "standard" | "hmac" | "github" | "stripe",
    # ...options}; None: Standard Webhooks. Options only: the secret is `secret`.
    signature: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Retries and disabling of this endpoint ({"schedule", "max_duration",
    # "final_statuses", "disable_after_failures"}); a field left out: the settings'.
    retry_policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # How the receiver authenticates the gateway (basic, bearer, oauth2, mtls): JSON,
    # encrypted at rest like the secrets, since it holds credentials.
    auth: str | None = Field(default=None, sa_column=Column(Text))
    # Who hears, by email, that this endpoint is failing.
    contact_email: str | None = Field(default=None, max_length=320)
    # None: events go as fast as they can; `Ordering.ORDERED` or `Ordering.STRICT`: the
    # events of one ordering key are delivered one at a time, in publish order.
    ordering: str | None = Field(default=None, max_length=8)
    disabled: bool = False
    # Health: why it was disabled (410 Gone, or failing too long), since when every
    # attempt has failed, and the circuit breaker that spaces attempts out meanwhile.
    disabled_reason: str | None = Field(default=None, max_length=255)
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    circuit_open_until: datetime | None = None
    # Deliveries that ended failed in a row (a success resets it): the count rule.
    failed_deliveries_in_row: int = 0
    # The highest warning (50, 70 or 90 percent of the nearer disable threshold) sent
    # since the endpoint last succeeded, and when a warning was last emailed.
    warned_percent: int = 0
    warning_emailed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """A management key. Only its SHA-256 is stored; the key is shown once, at creation."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=255)
    key_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    # The first characters, so that a user can tell keys apart in a list.
    key_prefix: str = Field(max_length=16)
    # A key scoped to a tenant sees and changes only that tenant's objects.
    tenant_id: str | None = Field(default=None, max_length=255)
    # Requests per second this key may make; None: GATEWAY_API_RATE_LIMIT.
    rate_limit: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Source(SQLModel, table=True):
    """An inbound URL (`/in/{id}`) that a provider such as Stripe or GitHub posts to."""

    __tablename__ = "source"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=255)
    provider: str = Field(max_length=32)
    secret: str = Field(sa_column=Column(Text, nullable=False))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    tolerance_seconds: int = 300
    # Requests per second accepted at /in/{id}; None: GATEWAY_INBOUND_RATE_LIMIT.
    rate_limit: int | None = None
    # Deduplicate on the body's SHA-256 instead of the provider's delivery id; None:
    # the provider's default (see `inbound/verifiers.py`).
    deduplicate_body: bool | None = None
    # Check a received event's data against its type's schema in the catalogue.
    validate_data: bool = False
    # JavaScript defining `handler(webhook)`, run on what is received, before routing.
    transformation: str | None = Field(default=None, sa_column=Column(Text))
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OrderingKey(SQLModel, table=True):
    """The last sequence number given to an ordering key's events. Taken by an upsert in
    the publishing transaction, whose row lock it holds until commit: the sequence of a
    key's events is the order in which their transactions committed. `used_at`: when it
    was last taken; retention deletes a key unused for its period once none of its
    events is left (`retention.py`)."""

    __tablename__ = "ordering_key"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    last_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    used_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (
        # `GET /v1/events?ordering_key=`: a key's events in publish order.
        Index(
            "ix_event_ordering_key_sequence",
            "ordering_key",
            "sequence",
            postgresql_where=text("ordering_key IS NOT NULL"),
            sqlite_where=text("ordering_key IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    type: str = Field(index=True, max_length=255)
    tenant_id: str | None = Field(default=None, index=True, max_length=255)
    source_id: str | None = Field(default=None, index=True, max_length=40)
    # The JSON text exactly as first serialised: every attempt signs the same bytes.
    data: str = Field(sa_column=Column(Text, nullable=False))
    # An update event's data before the change, as JSON text; delivered beside `data`.
    previous_data: str | None = Field(default=None, sa_column=Column(Text))
    idempotency_key: str | None = Field(
        default=None, sa_column=Column(String(255), unique=True, nullable=True)
    )
    request_hash: str | None = Field(default=None, max_length=64)
    # Received through a source that deduplicates on the body: its SHA-256, with the
    # source's id, so that a replay under another delivery id is found as well.
    content_key: str | None = Field(
        default=None, sa_column=Column(String(255), unique=True, nullable=True)
    )
    # Received through a source: the request as it came, and how it was verified.
    raw_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    raw_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    verification: str | None = Field(default=None, max_length=255)
    # The W3C traceparent of the request that published it: attempts join its trace.
    trace_parent: str | None = Field(default=None, max_length=64)
    # Events of one ordering key go to an ordered endpoint in `sequence` order, the
    # order in which they were committed (see `OrderingKey`).
    ordering_key: str | None = Field(default=None, max_length=200)
    sequence: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(default_factory=utcnow)


class EventType(SQLModel, table=True):
    """An entry of the event-type catalogue: what an event of that type holds."""

    __tablename__ = "event_type"

    name: str = Field(primary_key=True, max_length=255)
    description: str | None = Field(default=None, sa_column=Column(Text))
    # A JSON Schema (draft 2020-12) that the data of an event of this type must meet.
    data_schema: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    examples: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    deprecated: bool = False
    # Archived: kept for the events already sent, hidden from new subscriptions.
    archived_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One (event, endpoint) pair: the unit that is retried and that succeeds or fails."""

    __tablename__ = "delivery"
    __table_args__ = (
        # The sweeper's scan: due pending deliveries, oldest first.
        Index("ix_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        # The events list filtered by type and delivery status, without a scan of the
        # type's events when few (or none) of them have a delivery in that status.
        Index("ix_delivery_status_event_type", "status", "event_type", "event_id"),
        # Ordered endpoints: whether an earlier delivery of the same key still holds
        # this one back, and which delivery of a key comes next.
        Index(
            "ix_delivery_endpoint_id_ordering_key_sequence",
            "endpoint_id",
            "ordering_key",
            "sequence",
            postgresql_where=text("ordering_key IS NOT NULL"),
            sqlite_where=text("ordering_key IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    # A foreign key on SQLite only: on PostgreSQL, where event is partitioned, its check
    # cost more than the rest of a publish's insert (migration 0017 says what holds it).
    event_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("event.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    endpoint_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("endpoint.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    # The event's type, copied: see the index above.
    event_type: str | None = Field(default=None, max_length=255)
    # The event's ordering key and sequence, copied only when the endpoint is ordered:
    # NULL for every other delivery, which nothing holds back.
    ordering_key: str | None = Field(default=None, max_length=200)
    sequence: int | None = Field(default=None, sa_column=Column(BigInteger))
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempt_count: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow)
    # A worker that claims a delivery owns it until then; a dead worker's claim lapses.
    locked_until: datetime | None = None
    # When it was last handed to the queue; the sweeper re-dispatches only stale ones.
    dispatched_at: datetime | None = Field(default_factory=utcnow)
    # A send slot reserved under the endpoint's rate_limit, to be used when it comes.
    rate_slot_at: datetime | None = None
    # Claims that ended without anything recorded (a crash or a bug); bounded.
    stalled_claims: int = 0
    last_status_code: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Attempt(SQLModel, table=True):
    __tablename__ = "attempt"
    __table_args__ = (
        # The figures (`outbound/stats.py`) read a time range: this index holds every
        # column they count, so PostgreSQL answers from it without visiting the table.
        Index(
            "ix_attempt_started_at",
            "started_at",
            "status_code",
            "duration_ms",
            "retried",
            "endpoint_id",
        ),
        Index("ix_attempt_endpoint_id_started_at", "endpoint_id", "started_at"),
    )

    # A foreign key on SQLite only, as `Delivery.event_id`.
    delivery_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("delivery.id", ondelete="CASCADE"), primary_key=True
        )
    )
    attempt: int = Field(primary_key=True)
    started_at: datetime
    status_code: int | None = None
    duration_ms: int = 0
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    # Copied from the delivery when recorded, so that figures per endpoint (or tenant)
    # over a time range need no join through the deliveries.
    endpoint_id: str | None = Field(default=None, max_length=40)
    # A failed attempt after which the delivery was put off to a retry (rather than
    # given up); None for a success.
    retried: bool | None = None


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for statements on hot paths that skip the ORM."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser of the console. The cookie holds a random token; only its
    SHA-256 is stored. It ends at `expires_at`, at sign-out (the row is deleted), or as
    soon as the key it was opened with is revoked (checked on every request)."""

    __tablename__ = "console_session"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    # The key signed in with: an API key's id, or None for the bootstrap key, whose
    # hash is kept instead so that changing GATEWAY_API_KEY ends its sessions.
    api_key_id: str | None = Field(
        default=None,
        sa_column=Column(String(40), ForeignKey("api_key.id", ondelete="CASCADE"), index=True),
    )
    bootstrap_hash: str | None = Field(default=None, max_length=64)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class PortalRevocation(SQLModel, table=True):
    """Portal links are signed tokens with nothing stored; revoking a tenant's links
    keeps only this: every link of the tenant issued before `revoked_before` is void."""

    __tablename__ = "portal_revocation"

    tenant_id: str = Field(sa_column=Column(String(255), primary_key=True))
    revoked_before: datetime


class SourceRefusal(SQLModel, table=True):
    """A request to `/in/{source}` refused for failing verification: kept so that an
    operator can see why a provider's requests are not arriving. Never the body nor a
    signature: the reason, the caller's address and a few harmless headers. Bounded:
    `gateway/inbound/refusals.py` keeps only the latest per source."""

    __tablename__ = "source_refusal"
    __table_args__ = (Index("ix_source_refusal_source_id_id", "source_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(
        sa_column=Column(String(40), ForeignKey("source.id", ondelete="CASCADE"), nullable=False)
    )
    received_at: datetime = Field(default_factory=utcnow)
    reason: str = Field(max_length=32)
    message: str = Field(max_length=255)
    client: str = Field(max_length=64)
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
