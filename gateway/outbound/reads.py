"""What is shown of endpoints, events and deliveries: the API's routes, the CLI's commands
and the console's pages call these, so that each shows the same thing the same way.

`scope` is the caller's tenant (a tenant-scoped key's), or None for the operator:
another tenant's rows are not found, never forbidden, so that existence does not leak.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.crypto import SecretBox
from gateway.outbound.endpoints import SECRET, get_delivery, get_endpoint
from gateway.store.models import Attempt, Delivery, Endpoint, Event
from gateway.store.queries import Page, get_or_404, page

if TYPE_CHECKING:  # publishing's module loads metrics and tracing, which reads do not need
    from gateway.outbound.fanout import Published


def endpoint_out(
    endpoint: Endpoint, box: SecretBox, with_secret: bool = False
) -> dict[str, object]:
    """The endpoint with its header values opened; its secret only when asked for."""
    out = endpoint.model_dump(exclude={"secret", "previous_secret"})
    out["headers"] = box.open_headers(endpoint.headers)
    if with_secret:
        out["secret"] = box.open(endpoint.secret, SECRET)
    return out


def event_out(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "data": json.loads(event.data),
        "tenant_id": event.tenant_id,
        "source_id": event.source_id,
        "created_at": event.created_at,
    }


def published_out(published: Published) -> dict[str, object]:
    return {**event_out(published.event), "deliveries": published.deliveries}


async def list_endpoints(
    session: AsyncSession,
    box: SecretBox,
    *,
    tenant_id: str | None = None,
    disabled: bool | None = None,
    failing: bool | None = None,
    scope: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[dict[str, object]]:
    """Endpoints, newest first; `disabled` and `failing` (every attempt failing since
    some time) filter when given, either way."""
    query = select(Endpoint)
    for tenant in {tenant_id, scope} - {None}:
        query = query.where(col(Endpoint.tenant_id) == tenant)
    if disabled is not None:
        query = query.where(col(Endpoint.disabled) == disabled)
    if failing is not None:
        since = col(Endpoint.failing_since)
        query = query.where(since.is_not(None) if failing else since.is_(None))
    found = await page(session, query, Endpoint.id, limit, cursor)
    return found.map(lambda endpoint: endpoint_out(endpoint, box))


async def list_events(
    session: AsyncSession,
    *,
    event_type: str | None = None,
    tenant_id: str | None = None,
    source_id: str | None = None,
    scope: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[dict[str, object]]:
    query = select(Event)
    if event_type is not None:
        query = query.where(col(Event.type) == event_type)
    for tenant in {tenant_id, scope} - {None}:
        query = query.where(col(Event.tenant_id) == tenant)
    if source_id is not None:
        query = query.where(col(Event.source_id) == source_id)
    return (await page(session, query, Event.id, limit, cursor)).map(event_out)


async def get_event_detail(
    session: AsyncSession, event_id: str, scope: str | None = None
) -> dict[str, object]:
    """The event; one received through a source also shows the request as it came in."""
    event = await get_or_404(session, Event, event_id, "event", scope)
    detail = event_out(event)
    if event.raw_body is not None:
        try:
            body, encoding = event.raw_body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(event.raw_body).decode(), "base64"
        detail.update(
            headers=event.raw_headers,
            body=body,
            body_encoding=encoding,
            verification=event.verification,
        )
    return detail


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    scope: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Delivery]:
    """Deliveries of an endpoint and/or an event, newest first; an unknown (or another
    tenant's) endpoint or event is a 404, not an empty page."""
    query = select(Delivery)
    if endpoint_id is not None:
        await get_endpoint(session, endpoint_id, scope)
        query = query.where(col(Delivery.endpoint_id) == endpoint_id)
    if event_id is not None:
        await get_or_404(session, Event, event_id, "event", scope)
        query = query.where(col(Delivery.event_id) == event_id)
    if scope is not None and endpoint_id is None and event_id is None:
        query = query.where(
            col(Delivery.endpoint_id).in_(
                select(col(Endpoint.id)).where(col(Endpoint.tenant_id) == scope)
            )
        )
    if status is not None:
        query = query.where(col(Delivery.status) == status)
    return await page(session, query, Delivery.id, limit, cursor)


async def get_delivery_with_attempts(
    session: AsyncSession, delivery_id: str, scope: str | None = None
) -> dict[str, object]:
    """The delivery with its attempt log, oldest attempt first."""
    delivery = await get_delivery(session, delivery_id, scope)
    attempts = await session.scalars(
        select(Attempt)
        .where(col(Attempt.delivery_id) == delivery_id)
        .order_by(col(Attempt.attempt))
    )
    return {**delivery.model_dump(), "attempts": list(attempts)}


async def tenant_event_types(session: AsyncSession, tenant_id: str, limit: int = 500) -> list[str]:
    """The event types a tenant's endpoints can subscribe to, as far as the gateway has
    seen them (there is no catalogue of types): those of the tenant's own events, and of
    the operator's events delivered to its endpoints. Sorted; at most `limit`."""
    own = (
        select(col(Event.type)).where(col(Event.tenant_id) == tenant_id).distinct().limit(limit)
    )
    delivered = (
        select(col(Event.type))
        .join(Delivery, col(Delivery.event_id) == col(Event.id))
        .join(Endpoint, col(Endpoint.id) == col(Delivery.endpoint_id))
        .where(col(Endpoint.tenant_id) == tenant_id, col(Event.tenant_id).is_(None))
        .distinct()
        .limit(limit)
    )
    found = set(await session.scalars(own)) | set(await session.scalars(delivered))
    return sorted(found)[:limit]
