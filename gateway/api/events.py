"""`/v1/events`: publish, and read what was published or received."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AfterValidator

from gateway.api.deps import (
    JSON_BODY,
    BatcherDep,
    DispatcherDep,
    IdPath,
    PagingDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    SourceFilter,
    StatusFilter,
    TenantFilter,
    TypeFilter,
)
from gateway.api.publish_route import IDEMPOTENCY_KEY, PublishRoute
from gateway.api.schemas import Page, error_responses
from gateway.auth import Principal, scoped_tenant
from gateway.errors import GatewayError
from gateway.outbound import reads
from gateway.outbound.fanout import Publish, at_index, publish_all
from gateway.outbound.schemas import (
    DeliveryOut,
    EventBatch,
    EventBatchPublished,
    EventCreate,
    EventDetail,
    EventOut,
    EventPublished,
)
from gateway.outbound.schemas import _in_utc as in_utc
from gateway.tracing import span
from gateway.validation import Text

router = APIRouter(prefix="/v1/events", tags=["events"])


def _scoped_idempotency_key(principal: Principal, key: str) -> str:
    """The key in its caller's namespace: a tenant's keys (all its API keys share it), or
    one unscoped API key's, so that no caller can collide with, or probe, another's
    keys. Hashed to a fixed length (tenant ids run to 255 characters), and prefixed
    apart from the delivery ids of inbound sources, which share the column."""
    owner = (
        f"tenant:{principal.tenant_id}"
        if principal.tenant_id is not None
        else f"key:{principal.key_id or 'bootstrap'}"
    )
    return f"api:{hashlib.sha256(owner.encode()).hexdigest()[:24]}:{key}"


async def publish_event(
    body: EventCreate,
    batcher: BatcherDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> dict[str, object]:
    """Store the event and its deliveries durably, then fan it out; 202 means it will arrive.

    Data of a type in the event-type catalogue must meet its schema: otherwise 422 naming
    the path and the rule, and nothing is stored. With GATEWAY_EVENT_TYPES=strict, a
    type not in the catalogue is a 422 too."""
    with span("webhook.publish", **{"gateway.type": body.type}):
        published = await batcher.publish(
            Publish(
                body.type,
                body.data,
                tenant_id=scoped_tenant(principal, body.tenant_id),
                endpoint_ids=body.endpoint_ids,
                idempotency_key=(
                    _scoped_idempotency_key(principal, idempotency_key)
                    if idempotency_key is not None
                    else None
                ),
                by_operator=principal.is_admin,
                schema_check=settings.event_types,
                previous_data=body.previous_data,
                ordering_key=body.ordering_key,
            )
        )
    if not published.created:
        response.status_code = status.HTTP_200_OK
    return reads.published_out(published)


# Its parameters are resolved by `PublishRoute`, not by FastAPI: see publish_route.py.
router.add_api_route(
    "",
    publish_event,
    methods=["POST"],
    route_class_override=PublishRoute,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventPublished,
    dependencies=JSON_BODY,
    responses={
        200: {
            "model": EventPublished,
            "description": "A repeat of an earlier Idempotency-Key: the first event",
        },
        **error_responses(409, 413, 415),
    },
    response_description="Stored with its deliveries: it will arrive",
)


@router.post(
    "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventBatchPublished,
    dependencies=JSON_BODY,
    responses={
        200: {
            "model": EventBatchPublished,
            "description": "Every event repeated an earlier idempotency_key: the first events",
        },
        **error_responses(409, 413, 415),
    },
    response_description="All stored with their deliveries: they will arrive",
)
async def publish_events(
    body: EventBatch,
    session: SessionDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, object]:
    """Publish up to 500 events in one transaction: all stored, or none.

    Each event is checked as `POST /v1/events` checks it (the catalogue's schema, strict
    mode, a tenant key's scope, `endpoint_ids`); the first refused one is answered, a 422
    whose `loc` names its index (`["body", "events", 3, "data", ...]`), and nothing is
    stored. Each item's `idempotency_key` works as the `Idempotency-Key` header of a
    single publish, in the same namespace. The request body limit applies to the whole
    batch."""
    items = []
    for i, event in enumerate(body.events):
        try:
            tenant_id = scoped_tenant(principal, event.tenant_id)
        except GatewayError as exc:
            raise at_index(exc, i) from None
        items.append(
            Publish(
                event.type,
                event.data,
                tenant_id=tenant_id,
                endpoint_ids=event.endpoint_ids,
                idempotency_key=(
                    _scoped_idempotency_key(principal, event.idempotency_key)
                    if event.idempotency_key is not None
                    else None
                ),
                by_operator=principal.is_admin,
                schema_check=settings.event_types,
                previous_data=event.previous_data,
                ordering_key=event.ordering_key,
            )
        )
    with span("webhook.publish_batch", **{"gateway.events": len(items)}):
        published = await publish_all(session, dispatcher, items)
    if not any(p.created for p in published):
        response.status_code = status.HTTP_200_OK
    return {"events": [{**reads.published_out(p), "created": p.created} for p in published]}


@router.get(
    "",
    response_model=Page[EventOut],
    response_description="A page of events, newest first (with `ordering_key`: in that "
    "key's order, oldest first)",
)
async def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    paging: PagingDep,
    type: TypeFilter = None,
    tenant_id: TenantFilter = None,
    source_id: SourceFilter = None,
    since: Annotated[
        datetime | None,
        Query(
            description="Only events stored at or after this time (RFC 3339; without an "
            "offset, UTC)",
            examples=["2026-01-15T09:00:00Z"],
        ),
        AfterValidator(in_utc),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(
            description="Only events stored before this time (RFC 3339; without an offset, UTC)",
            examples=["2026-01-15T11:00:00Z"],
        ),
        AfterValidator(in_utc),
    ] = None,
    delivery_status: Annotated[
        str | None,
        Query(
            pattern="^(pending|succeeded|failed|cancelled|skipped)$",
            description="Only events with at least one delivery in this state (`failed`: "
            "those worth a retry)",
        ),
    ] = None,
    ordering_key: Annotated[
        Text | None,
        Query(
            min_length=1,
            max_length=200,
            description="Only the events of this ordering key, in its order (`sequence`, "
            "oldest first): the order in which ordered endpoints receive them",
        ),
    ] = None,
) -> dict[str, object]:
    found = await reads.list_events(
        session,
        event_type=type,
        tenant_id=tenant_id,
        source_id=source_id,
        since=since,
        until=until,
        delivery_status=delivery_status,
        ordering_key=ordering_key,
        scope=principal.tenant_id,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    return found.body()


@router.get(
    "/{event_id}",
    response_model=EventDetail,
    responses=error_responses(404),
    response_description="The event (with the request as received, for a received one)",
)
async def get_event(
    event_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    """The event; one received through a source also shows the request as it came in."""
    return await reads.get_event_detail(session, event_id, principal.tenant_id)


@router.get(
    "/{event_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=error_responses(404),
    response_description="A page of the event's deliveries, newest first",
)
async def list_event_deliveries(
    event_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    paging: PagingDep,
    status_filter: StatusFilter = None,
) -> dict[str, object]:
    found = await reads.list_deliveries(
        session,
        event_id=event_id,
        status=status_filter,
        scope=principal.tenant_id,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    return found.body()
