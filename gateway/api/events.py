"""`/v1/events`: publish, and read what was published or received."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from sqlalchemy import select
from sqlmodel import col

from gateway.api.deps import (
    Cursor,
    IdPath,
    Limit,
    PrincipalDep,
    SessionDep,
    StatusFilter,
    TextFilter,
)
from gateway.api.schemas import (
    DeliveryOut,
    EventCreate,
    EventDetail,
    EventOut,
    EventPublished,
    Page,
)
from gateway.auth import Principal, scoped_tenant
from gateway.outbound.batcher import PublishBatcher
from gateway.outbound.fanout import Publish, Published
from gateway.store.models import Event
from gateway.store.queries import deliveries_page, get_or_404, page
from gateway.tracing import span

router = APIRouter(prefix="/v1/events", tags=["events"])


def event_out(event: Event) -> dict[str, object]:
    return {
        "id": event.id, "type": event.type, "data": json.loads(event.data),
        "tenant_id": event.tenant_id, "source_id": event.source_id,
        "created_at": event.created_at,
    }


def published_out(published: Published) -> dict[str, object]:
    return {**event_out(published.event), "deliveries": published.deliveries}


def _scoped_idempotency_key(principal: Principal, key: str) -> str:
    """The key in its caller's namespace: a tenant's keys (all its API keys share it), or
    one unscoped API key's, so that no caller can collide with, or probe, another's
    keys. Hashed to a fixed length (tenant ids run to 255 characters), and prefixed
    apart from the delivery ids of inbound sources, which share the column."""
    owner = (f"tenant:{principal.tenant_id}" if principal.tenant_id is not None
             else f"key:{principal.key_id or 'bootstrap'}")
    return f"api:{hashlib.sha256(owner.encode()).hexdigest()[:24]}:{key}"


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=EventPublished,
    responses={200: {"model": EventPublished,
                     "description": "A repeat of an earlier Idempotency-Key: the first event"}},
)
async def publish_event(
    body: EventCreate,
    request: Request,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> dict[str, object]:
    """Store the event and its deliveries durably, then fan it out; 202 means it will arrive."""
    batcher: PublishBatcher = request.app.state.batcher
    with span("webhook.publish", **{"gateway.type": body.type}):
        published = await batcher.publish(Publish(
            body.type, body.data,
            tenant_id=scoped_tenant(principal, body.tenant_id),
            endpoint_ids=body.endpoint_ids,
            idempotency_key=(_scoped_idempotency_key(principal, idempotency_key)
                             if idempotency_key is not None else None),
            by_operator=principal.is_admin,
        ))
    if not published.created:
        response.status_code = status.HTTP_200_OK
    return published_out(published)


@router.get("", response_model=Page[EventOut])
async def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    type: TextFilter = None,
    tenant_id: TextFilter = None,
    source_id: TextFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, object]:
    query = select(Event)
    if type is not None:
        query = query.where(col(Event.type) == type)
    for tenant in {tenant_id, principal.tenant_id} - {None}:
        query = query.where(col(Event.tenant_id) == tenant)
    if source_id is not None:
        query = query.where(col(Event.source_id) == source_id)
    rows, next_cursor = await page(session, query, Event.id, limit, cursor)
    return {"data": [event_out(e) for e in rows], "next_cursor": next_cursor}


@router.get("/{event_id}", response_model=EventDetail)
async def get_event(
    event_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    """The event; one received through a source also shows the request as it came in."""
    event = await get_or_404(session, Event, event_id, "event", principal.tenant_id)
    detail = event_out(event)
    if event.raw_body is not None:
        try:
            body, encoding = event.raw_body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(event.raw_body).decode(), "base64"
        detail.update(headers=event.raw_headers, body=body, body_encoding=encoding,
                      verification=event.verification)
    return detail


@router.get("/{event_id}/deliveries", response_model=Page[DeliveryOut])
async def list_event_deliveries(
    event_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    status_filter: StatusFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, object]:
    await get_or_404(session, Event, event_id, "event", principal.tenant_id)
    rows, next_cursor = await deliveries_page(session, event_id=event_id, status=status_filter,
                                              limit=limit, cursor=cursor)
    return {"data": rows, "next_cursor": next_cursor}
