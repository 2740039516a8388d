"""The API's operations, grouped as the API's paths are, each declared once.

Every method returns the variable parts of its request; `operation` (hookgate._core)
adds the route and the answer's model, and makes it a method of the sync client or a
coroutine of the async one. `list` methods iterate over every item, page after page;
`list_page` methods answer one page and its `next_cursor`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from hookgate._core import M, Pages, Parts, Resource, new_idempotency_key, operation, stream
from hookgate.models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuthOut,
    Bucket,
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointTestSend,
    EndpointUpdate,
    EventBatch,
    EventBatchItem,
    EventBatchPublished,
    EventCreate,
    EventDetail,
    EventOut,
    EventPublished,
    EventTypeCreate,
    EventTypeOut,
    EventTypesImported,
    EventTypeUpdate,
    FilterTest,
    FilterTestResult,
    Health,
    OpenAPIDocument,
    Page,
    PortalLinkCreate,
    PortalLinkOut,
    PortalLinksRevoke,
    Readiness,
    Recover,
    Recovered,
    RefusalList,
    SecretOut,
    SecretRotate,
    SourceCreate,
    SourceCreated,
    SourceOut,
    SourceSecretOut,
    SourceUpdate,
    StatsOut,
    StreamAck,
    StreamOffer,
    TransformationTest,
    TransformationTested,
)

NoContent = type(None)


def _set(**fields: Any) -> dict[str, Any]:
    """The fields given a value: a left-out keyword is not sent."""
    return {name: value for name, value in fields.items() if value is not None}


class Events(Resource[M]):
    """Publishing events, and reading them with their deliveries."""

    @operation("POST", "/v1/events", EventPublished, body=EventCreate, retry_safe=True)
    def publish(
        self,
        type: str,
        data: Mapping[str, Any],
        *,
        tenant_id: str | None = None,
        endpoint_ids: Iterable[str] | None = None,
        previous_data: Mapping[str, Any] | None = None,
        ordering_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> Parts:
        """Publish an event: stored with its deliveries when this returns.

        Sent with an `Idempotency-Key` (`idempotency_key`, else a fresh one per call) that
        its retries repeat, so a retry after a lost answer never publishes twice."""
        body = _set(
            type=type,
            data=data,
            tenant_id=tenant_id,
            endpoint_ids=None if endpoint_ids is None else list(endpoint_ids),
            previous_data=previous_data,
            ordering_key=ordering_key,
        )
        key = idempotency_key or new_idempotency_key()
        return Parts(body=body, headers={"Idempotency-Key": key})

    @operation("POST", "/v1/events/batch", EventBatchPublished, body=EventBatch, retry_safe=True)
    def publish_batch(self, events: Iterable[EventBatchItem | Mapping[str, Any]]) -> Parts:
        """Publish up to 500 events at once: all are stored, or none.

        Each event without an `idempotency_key` gets a fresh one, which retries repeat."""
        items = []
        for event in events:
            item = (
                event.model_dump(mode="json", by_alias=True, exclude_unset=True)
                if isinstance(event, BaseModel)
                else dict(event)
            )
            item.setdefault("idempotency_key", new_idempotency_key())
            items.append(item)
        return Parts(body={"events": items})

    @operation("GET", "/v1/events/{event_id}", EventDetail)
    def get(self, event_id: str) -> Parts:
        """An event; a received one with the request as it came in."""
        return Parts(path={"event_id": event_id})

    @operation("GET", "/v1/events/{event_id}/deliveries", Page[DeliveryOut])
    def deliveries_page(
        self,
        event_id: str,
        *,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Parts:
        """One page of an event's deliveries."""
        query = {"status": status, "limit": limit, "cursor": cursor}
        return Parts(path={"event_id": event_id}, query=query)

    deliveries = Pages(deliveries_page)

    @operation("GET", "/v1/events", Page[EventOut])
    def list_page(
        self,
        *,
        type: str | None = None,
        tenant_id: str | None = None,
        source_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        delivery_status: DeliveryStatus | None = None,
        ordering_key: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Parts:
        """One page of events, newest first (with `ordering_key`: in the key's order)."""
        return Parts(
            query={
                "type": type,
                "tenant_id": tenant_id,
                "source_id": source_id,
                "since": since,
                "until": until,
                "delivery_status": delivery_status,
                "ordering_key": ordering_key,
                "limit": limit,
                "cursor": cursor,
            }
        )

    list = Pages(list_page)


class Deliveries(Resource[M]):
    """One delivery of an event to an endpoint."""

    @operation("GET", "/v1/deliveries/{delivery_id}", DeliveryDetail)
    def get(self, delivery_id: str) -> Parts:
        """A delivery with its attempts."""
        return Parts(path={"delivery_id": delivery_id})

    @operation("POST", "/v1/deliveries/{delivery_id}/retry", DeliveryOut)
    def retry(self, delivery_id: str) -> Parts:
        """Send a delivery again now, whatever became of it."""
        return Parts(path={"delivery_id": delivery_id})

    @operation("POST", "/v1/deliveries/{delivery_id}/skip", DeliveryOut)
    def skip(self, delivery_id: str) -> Parts:
        """Never send this delivery; to an ordered endpoint, its key's next event goes on."""
        return Parts(path={"delivery_id": delivery_id})


class Endpoints(Resource[M]):
    """Where events are delivered."""

    @operation("POST", "/v1/endpoints", EndpointCreated, body=EndpointCreate)
    def create(self, /, url: str | None = None, **fields: Any) -> Parts:
        """Subscribe an endpoint (at `url`, or `kind="stream"` without one); `fields` as in
        `EndpointCreate`. Answers its secret."""
        return Parts(body=fields if url is None else {"url": url, **fields})

    @operation("GET", "/v1/endpoints/{endpoint_id}", EndpointOut)
    def get(self, endpoint_id: str) -> Parts:
        return Parts(path={"endpoint_id": endpoint_id})

    @operation("PATCH", "/v1/endpoints/{endpoint_id}", EndpointOut, body=EndpointUpdate)
    def update(self, /, endpoint_id: str, **fields: Any) -> Parts:
        """Change the fields given (as in `EndpointUpdate`); `None` clears one."""
        return Parts(path={"endpoint_id": endpoint_id}, body=fields)

    @operation("DELETE", "/v1/endpoints/{endpoint_id}", NoContent)
    def delete(self, endpoint_id: str) -> Parts:
        return Parts(path={"endpoint_id": endpoint_id})

    @operation("GET", "/v1/endpoints/{endpoint_id}/secret", SecretOut)
    def get_secret(self, endpoint_id: str) -> Parts:
        """The signing secret, for the receiver's `verify`."""
        return Parts(path={"endpoint_id": endpoint_id})

    @operation("POST", "/v1/endpoints/{endpoint_id}/secret/rotate", SecretOut, body=SecretRotate)
    def rotate_secret(self, endpoint_id: str, secret: str | None = None) -> Parts:
        """A new secret (generated, or this one); the old one signs too for a while."""
        return Parts(path={"endpoint_id": endpoint_id}, body=_set(secret=secret))

    @operation("GET", "/v1/endpoints/{endpoint_id}/auth", AuthOut)
    def get_auth(self, endpoint_id: str) -> Parts:
        """The endpoint's credentials for its receiver, unmasked."""
        return Parts(path={"endpoint_id": endpoint_id})

    @operation("POST", "/v1/endpoints/{endpoint_id}/test", EventPublished, body=EndpointTestSend)
    def test(
        self,
        endpoint_id: str,
        *,
        event_type: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Parts:
        """Send a test event to this endpoint only."""
        body = _set(event_type=event_type, data=data)
        return Parts(path={"endpoint_id": endpoint_id}, body=body)

    @operation(
        "POST",
        "/v1/endpoints/{endpoint_id}/filter/test",
        FilterTestResult,
        body=FilterTest,
        retry_safe=True,
    )
    def test_filter(
        self, /, endpoint_id: str, type: str, data: Mapping[str, Any], **fields: Any
    ) -> Parts:
        """Whether the endpoint's filter (or `filter=`) matches a sample event."""
        body = {"type": type, "data": data, **fields}
        return Parts(path={"endpoint_id": endpoint_id}, body=body)

    @operation(
        "POST",
        "/v1/endpoints/{endpoint_id}/transformation/test",
        TransformationTested,
        body=TransformationTest,
        retry_safe=True,
    )
    def test_transformation(self, /, endpoint_id: str, payload: Any, **fields: Any) -> Parts:
        """What the endpoint's transformation (or `code=`) makes of a payload."""
        return Parts(path={"endpoint_id": endpoint_id}, body={"payload": payload, **fields})

    @operation("POST", "/v1/endpoints/{endpoint_id}/recover", Recovered, body=Recover)
    def recover(self, endpoint_id: str, since: datetime, until: datetime | None = None) -> Parts:
        """Queue again the deliveries that failed for good since a time."""
        body = _set(since=since, until=until)
        return Parts(path={"endpoint_id": endpoint_id}, body=body)

    @operation("GET", "/v1/endpoints/{endpoint_id}/stats", StatsOut)
    def stats(
        self,
        endpoint_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: Bucket | None = None,
    ) -> Parts:
        """Attempts, success rate and latency over time."""
        query = {"since": since, "until": until, "bucket": bucket}
        return Parts(path={"endpoint_id": endpoint_id}, query=query)

    @stream("/v1/endpoints/{endpoint_id}/stream", StreamOffer)
    def stream(self, endpoint_id: str) -> Parts:
        """A stream endpoint's attempts as they come (`kind="stream"`), until the connection
        ends. Acknowledge each with `acknowledge` within the gateway's delivery timeout, or
        it fails and is retried; whatever was not acknowledged comes again on reconnecting."""
        return Parts(path={"endpoint_id": endpoint_id})

    @operation("POST", "/v1/endpoints/{endpoint_id}/stream/ack", NoContent, body=StreamAck)
    def acknowledge(
        self,
        endpoint_id: str,
        delivery_id: str,
        attempt: int,
        status_code: int | None,
        *,
        body: str | None = None,
        error: str | None = None,
    ) -> Parts:
        """Answer one streamed attempt with what its receiver answered (2xx: delivered;
        `status_code=None` and `error`: no answer)."""
        ack = _set(delivery_id=delivery_id, attempt=attempt, body=body, error=error)
        return Parts(path={"endpoint_id": endpoint_id}, body={**ack, "status_code": status_code})

    @operation("GET", "/v1/endpoints/{endpoint_id}/deliveries", Page[DeliveryOut])
    def deliveries_page(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Parts:
        """One page of the endpoint's deliveries."""
        query = {"status": status, "limit": limit, "cursor": cursor}
        return Parts(path={"endpoint_id": endpoint_id}, query=query)

    deliveries = Pages(deliveries_page)

    @operation("GET", "/v1/endpoints", Page[EndpointOut])
    def list_page(
        self,
        *,
        tenant_id: str | None = None,
        status: Literal["enabled", "disabled"] | None = None,
        failing: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Parts:
        """One page of endpoints."""
        query = {
            "tenant_id": tenant_id,
            "status": status,
            "failing": failing,
            "limit": limit,
            "cursor": cursor,
        }
        return Parts(query=query)

    list = Pages(list_page)


class EventTypes(Resource[M]):
    """The event-type catalogue."""

    @operation("POST", "/v1/event-types", EventTypeOut, body=EventTypeCreate)
    def create(self, /, name: str, **fields: Any) -> Parts:
        """Catalogue a type; `fields` as in `EventTypeCreate` (`schema`, `examples`, ...)."""
        return Parts(body={"name": name, **fields})

    @operation("GET", "/v1/event-types/{name}", EventTypeOut)
    def get(self, name: str) -> Parts:
        return Parts(path={"name": name})

    @operation("PATCH", "/v1/event-types/{name}", EventTypeOut, body=EventTypeUpdate)
    def update(self, /, name: str, **fields: Any) -> Parts:
        """Change the fields given (as in `EventTypeUpdate`)."""
        return Parts(path={"name": name}, body=fields)

    @operation("DELETE", "/v1/event-types/{name}", EventTypeOut)
    def archive(self, name: str) -> Parts:
        """Archive a type (types are never deleted)."""
        return Parts(path={"name": name})

    @operation(
        "POST", "/v1/event-types/import", EventTypesImported, body=OpenAPIDocument, retry_safe=True
    )
    def import_openapi(self, document: Mapping[str, Any]) -> Parts:
        """Create or update a type per webhook of an OpenAPI 3.1 document."""
        return Parts(body=dict(document))

    @operation("GET", "/v1/event-types", Page[EventTypeOut])
    def list_page(
        self,
        *,
        include_archived: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Parts:
        """One page of the catalogue, by name."""
        query = {"include_archived": include_archived, "limit": limit, "cursor": cursor}
        return Parts(query=query)

    list = Pages(list_page)


class Sources(Resource[M]):
    """Providers' webhooks received at `/in/{source_id}`."""

    @operation("POST", "/v1/sources", SourceCreated, body=SourceCreate)
    def create(self, /, name: str, provider: str, secret: str, **fields: Any) -> Parts:
        """Receive a provider's webhooks; `fields` as in `SourceCreate`."""
        return Parts(body={"name": name, "provider": provider, "secret": secret, **fields})

    @operation("GET", "/v1/sources/{source_id}", SourceOut)
    def get(self, source_id: str) -> Parts:
        return Parts(path={"source_id": source_id})

    @operation("PATCH", "/v1/sources/{source_id}", SourceOut, body=SourceUpdate)
    def update(self, /, source_id: str, **fields: Any) -> Parts:
        """Change the fields given (as in `SourceUpdate`)."""
        return Parts(path={"source_id": source_id}, body=fields)

    @operation("DELETE", "/v1/sources/{source_id}", NoContent)
    def delete(self, source_id: str) -> Parts:
        return Parts(path={"source_id": source_id})

    @operation("GET", "/v1/sources/{source_id}/secret", SourceSecretOut)
    def get_secret(self, source_id: str) -> Parts:
        return Parts(path={"source_id": source_id})

    @operation(
        "POST",
        "/v1/sources/{source_id}/transformation/test",
        TransformationTested,
        body=TransformationTest,
        retry_safe=True,
    )
    def test_transformation(self, /, source_id: str, payload: Any, **fields: Any) -> Parts:
        """What the source's transformation (or `code=`) makes of a payload."""
        return Parts(path={"source_id": source_id}, body={"payload": payload, **fields})

    @operation("GET", "/v1/sources/{source_id}/refusals", RefusalList)
    def refusals(self, source_id: str, *, limit: int | None = None) -> Parts:
        """The latest requests the source refused, and why."""
        return Parts(path={"source_id": source_id}, query={"limit": limit})

    @operation("GET", "/v1/sources", Page[SourceOut])
    def list_page(self, *, limit: int | None = None, cursor: str | None = None) -> Parts:
        """One page of sources."""
        return Parts(query={"limit": limit, "cursor": cursor})

    list = Pages(list_page)


class ApiKeys(Resource[M]):
    """API keys, optionally scoped to a tenant."""

    @operation("POST", "/v1/api-keys", ApiKeyCreated, body=ApiKeyCreate)
    def create(
        self, name: str, *, tenant_id: str | None = None, rate_limit: int | None = None
    ) -> Parts:
        """A new key, shown once (`key`)."""
        return Parts(body=_set(name=name, tenant_id=tenant_id, rate_limit=rate_limit))

    @operation("DELETE", "/v1/api-keys/{key_id}", NoContent)
    def revoke(self, key_id: str) -> Parts:
        return Parts(path={"key_id": key_id})

    @operation("GET", "/v1/api-keys", Page[ApiKeyOut])
    def list_page(self, *, limit: int | None = None, cursor: str | None = None) -> Parts:
        """One page of keys."""
        return Parts(query={"limit": limit, "cursor": cursor})

    list = Pages(list_page)


class PortalLinks(Resource[M]):
    """Signed links to the tenant portal."""

    @operation("POST", "/v1/portal-links", PortalLinkOut, body=PortalLinkCreate)
    def create(self, tenant_id: str, *, expires_in: int | None = None) -> Parts:
        """A link that opens the portal for one tenant, for `expires_in` seconds."""
        return Parts(body=_set(tenant_id=tenant_id, expires_in=expires_in))

    @operation(
        "POST", "/v1/portal-links/revoke", NoContent, body=PortalLinksRevoke, retry_safe=True
    )
    def revoke(self, tenant_id: str) -> Parts:
        """Revoke every link issued for a tenant so far."""
        return Parts(body={"tenant_id": tenant_id})


class Root(Resource[M]):
    """The operations at the top: statistics and health."""

    @operation("GET", "/v1/stats", StatsOut)
    def stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: Bucket | None = None,
        tenant_id: str | None = None,
    ) -> Parts:
        """Attempts, success rate and latency over time, for every endpoint."""
        query = {"since": since, "until": until, "bucket": bucket, "tenant_id": tenant_id}
        return Parts(query=query)

    @operation("GET", "/healthz", Health)
    def health(self) -> Parts:
        """Whether the API process answers."""
        return Parts()

    @operation("GET", "/readyz", Readiness, answers=frozenset({503}), retry_safe=False)
    def ready(self) -> Parts:
        """Whether the gateway can serve: its database, schema and queue (`checks`)."""
        return Parts()


RESOURCES: builtins.list[type[Resource[Any]]] = [
    Events,
    Deliveries,
    Endpoints,
    EventTypes,
    Sources,
    ApiKeys,
    PortalLinks,
    Root,
]
