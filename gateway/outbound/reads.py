"""What is shown of endpoints, events and deliveries: the API's routes, the CLI's commands
and the console's pages call these, so that each shows the same thing the same way.

`scope` is the caller's tenant (a tenant-scoped key's), or None for the operator:
another tenant's rows are not found, never forbidden, so that existence does not leak.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from gateway.crypto import SecretBox
from gateway.errors import Invalid
from gateway.outbound import endpoint_auth
from gateway.outbound.endpoints import SECRET, get_delivery, get_endpoint, shown_ordering
from gateway.outbound.signatures import shown
from gateway.store.models import Attempt, Delivery, Endpoint, EndpointKind, Event
from gateway.store.queries import Page, get_or_404, page
from gateway.timeutil import as_utc

if TYPE_CHECKING:  # publishing's module loads metrics and tracing, which reads do not need
    from gateway.outbound.fanout import NewEvent, Published


def endpoint_out(
    endpoint: Endpoint, box: SecretBox, with_secret: bool = False
) -> dict[str, object]:
    """The endpoint with its header values opened; its secret only when asked for."""
    out = endpoint.model_dump(exclude={"secret", "previous_secret"})
    out["headers"] = box.open_headers(endpoint.headers)
    out["signature"] = shown(endpoint.signature)
    out["auth"] = endpoint_auth.masked(endpoint.auth, box)
    out["ordered"] = shown_ordering(endpoint.ordering)
    if endpoint.kind == EndpointKind.STREAM:
        out["url"] = None  # stored as "": it has none
    if with_secret:
        out["secret"] = box.open(endpoint.secret, SECRET)
    return out


def event_out(event: Event | NewEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "data": json.loads(event.data),
        "previous_data": (
            json.loads(event.previous_data) if event.previous_data is not None else None
        ),
        "tenant_id": event.tenant_id,
        "source_id": event.source_id,
        "ordering_key": event.ordering_key,
        "sequence": event.sequence,
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


@dataclass(frozen=True)
class EventFilter:
    """Which events a list shows (and a bulk retry acts on); None leaves a field open.

    `since` is inclusive and `until` exclusive, on when the event was stored;
    `delivery_status` keeps the events with at least one delivery in that state.
    """

    event_type: str | None = None
    tenant_id: str | None = None
    source_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    delivery_status: str | None = None

    def conditions(self, scope: str | None = None) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.event_type is not None:
            where.append(col(Event.type) == self.event_type)
        for tenant in {self.tenant_id, scope} - {None}:
            where.append(col(Event.tenant_id) == tenant)
        if self.source_id is not None:
            where.append(col(Event.source_id) == self.source_id)
        if self.since is not None:
            where.append(col(Event.created_at) >= as_utc(self.since))
        if self.until is not None:
            where.append(col(Event.created_at) < as_utc(self.until))
        if self.delivery_status is not None and self.event_type is not None:
            # Straight to the deliveries of that status and type (their own index): a
            # scan of the type's events would read them all when few or none match.
            where.append(
                col(Event.id).in_(
                    select(col(Delivery.event_id)).where(
                        col(Delivery.status) == self.delivery_status,
                        col(Delivery.event_type) == self.event_type,
                    )
                )
            )
        elif self.delivery_status is not None:
            # EXISTS through the delivery's event_id index: no join that repeats events.
            where.append(
                exists()
                .where(
                    col(Delivery.event_id) == col(Event.id),
                    col(Delivery.status) == self.delivery_status,
                )
                .correlate(Event)
            )
        return where


async def list_events(
    session: AsyncSession,
    *,
    event_type: str | None = None,
    tenant_id: str | None = None,
    source_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    delivery_status: str | None = None,
    ordering_key: str | None = None,
    scope: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[dict[str, object]]:
    """Events, newest first; those of one `ordering_key` in their key's order (the order
    ordered endpoints receive them in), oldest first, the cursor being a sequence."""
    found = EventFilter(event_type, tenant_id, source_id, since, until, delivery_status)
    query = select(Event).where(*found.conditions(scope))
    if ordering_key is None:
        return (await page(session, query, Event.id, limit, cursor)).map(event_out)
    query = query.where(col(Event.ordering_key) == ordering_key)
    if cursor:
        if not cursor.isdigit() or len(cursor) > 18:  # a sequence, within a BIGINT
            raise Invalid(
                "cursor must be the next_cursor of a page of this ordering_key",
                loc=("query", "cursor"),
            )
        query = query.where(col(Event.sequence) > int(cursor))
    rows = list((await session.scalars(query.order_by(col(Event.sequence)).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([event_out(e) for e in rows], str(rows[-1].sequence) if more else None)


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
    if scope is not None and endpoint_id is None:
        # A tenant sees the deliveries to its own endpoints, those it can open and retry,
        # even of its own events (an endpoint may have moved to another tenant since).
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


async def event_deliveries(
    session: AsyncSession, event_id: str, scope: str | None = None, limit: int = 100
) -> list[dict[str, object]]:
    """The event's deliveries, newest first, each with its attempt log (oldest attempt
    first), in two queries. For a tenant, only those to its own endpoints: the ones
    `get_delivery` would show it, and so the ones it can open and retry."""
    await get_or_404(session, Event, event_id, "event", scope)
    query = select(Delivery).where(col(Delivery.event_id) == event_id)
    if scope is not None:
        query = query.where(
            col(Delivery.endpoint_id).in_(
                select(col(Endpoint.id)).where(col(Endpoint.tenant_id) == scope)
            )
        )
    deliveries = list(
        (await session.scalars(query.order_by(col(Delivery.id).desc()).limit(limit))).all()
    )
    attempts: dict[str, list[Attempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in await session.scalars(
            select(Attempt)
            .where(col(Attempt.delivery_id).in_(list(attempts)))
            .order_by(col(Attempt.delivery_id), col(Attempt.attempt))
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [{**d.model_dump(), "attempts": attempts[d.id]} for d in deliveries]


async def tenant_event_types(session: AsyncSession, tenant_id: str, limit: int = 500) -> list[str]:
    """The event types a tenant's endpoints can subscribe to, as far as the gateway has
    seen them (there is no catalogue of types): those of the tenant's own events, and of
    the operator's events delivered to its endpoints. Sorted; at most `limit`."""
    own = select(col(Event.type)).where(col(Event.tenant_id) == tenant_id).distinct().limit(limit)
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
