"""Publishing: store an event and one delivery per matching endpoint, commit, then dispatch.

The commit comes first: once it returns, the event will be delivered whatever
happens to the queue, because the sweeper finds pending deliveries in the
database. Dispatch afterwards only makes it fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.errors import Conflict, Invalid
from gateway.ids import new_id
from gateway.outbound.matching import endpoint_matches
from gateway.queue.dispatch import DELIVER_EVENT, Dispatcher
from gateway.store.models import Delivery, DeliveryStatus, Endpoint, Event, table
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.fanout")


@dataclass
class Received:
    """The request an inbound event came in, kept beside it."""

    body: bytes
    headers: dict[str, str]
    verification: str


@dataclass
class Published:
    event: Event
    deliveries: int
    created: bool  # False when an Idempotency-Key repeat returned the first event


def serialize_data(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def publish(
    session: AsyncSession,
    dispatcher: Dispatcher,
    *,
    event_type: str,
    data: dict[str, Any],
    tenant_id: str | None = None,
    endpoint_ids: list[str] | None = None,
    source_id: str | None = None,
    idempotency_key: str | None = None,
    ignore_type_filters: bool = False,
    received: Received | None = None,
) -> Published:
    """Store and fan out one event.

    `idempotency_key` makes a repeat return the first event. A key from the API
    must repeat the same request (409 otherwise); a key from an inbound source
    (a provider's delivery id) answers any repeat with the first event.
    """
    data_text = serialize_data(data)
    request_hash = None
    if idempotency_key is not None:
        if received is None:
            request_hash = hashlib.sha256(
                json.dumps([event_type, data_text, tenant_id, endpoint_ids]).encode()
            ).hexdigest()
        earlier = await _by_idempotency_key(session, idempotency_key, request_hash)
        if earlier is not None:
            return earlier

    candidates = await _candidates(session, tenant_id, endpoint_ids)
    matched = [
        ep.id for ep in candidates
        if (ignore_type_filters and not ep.disabled) or endpoint_matches(ep, event_type, source_id)
    ]
    now = utcnow()
    event = Event(
        id=new_id("evt"), type=event_type, tenant_id=tenant_id, source_id=source_id,
        data=data_text, idempotency_key=idempotency_key, request_hash=request_hash,
        raw_body=received.body if received else None,
        raw_headers=received.headers if received else None,
        verification=received.verification if received else None,
        created_at=now,
    )
    # Core inserts: the ORM's unit of work costs more CPU than the database does here.
    try:
        await session.execute(insert(table(Event)), [event.model_dump()])
        if matched:
            await session.execute(insert(table(Delivery)), [
                {
                    "id": new_id("dlv"), "event_id": event.id, "endpoint_id": endpoint_id,
                    "status": DeliveryStatus.PENDING, "attempt_count": 0,
                    "next_attempt_at": now, "dispatched_at": now,
                    "created_at": now, "updated_at": now,
                }
                for endpoint_id in matched
            ])
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if idempotency_key is None:
            raise
        # Another request with the same key committed first.
        earlier = await _by_idempotency_key(session, idempotency_key, request_hash)
        if earlier is None:
            raise
        return earlier
    if matched:
        await dispatcher.enqueue(DELIVER_EVENT, event.id, job_id=f"evt:{event.id}")
    return Published(event, len(matched), created=True)


async def _candidates(
    session: AsyncSession, tenant_id: str | None, endpoint_ids: list[str] | None
) -> list[Row[str, list[str] | None, list[str] | None, bool]]:
    """The endpoints the event may go to: only the columns that matching reads."""
    query = select(col(Endpoint.id), col(Endpoint.event_types), col(Endpoint.source_ids),
                   col(Endpoint.disabled))
    if tenant_id is not None:
        query = query.where(col(Endpoint.tenant_id) == tenant_id)
    if endpoint_ids is not None:
        wanted = set(endpoint_ids)
        query = query.where(col(Endpoint.id).in_(wanted))
        endpoints = list((await session.execute(query)).all())
        missing = wanted - {ep.id for ep in endpoints}
        if missing:
            scope = f" of tenant {tenant_id!r}" if tenant_id is not None else ""
            raise Invalid(
                f"unknown endpoint_ids{scope}: {', '.join(sorted(missing))}",
                loc=("body", "endpoint_ids"),
            )
        return endpoints
    query = query.where(col(Endpoint.disabled).is_(False))
    return list((await session.execute(query)).all())


async def _by_idempotency_key(
    session: AsyncSession, key: str, request_hash: str | None
) -> Published | None:
    event = (
        await session.scalars(select(Event).where(col(Event.idempotency_key) == key))
    ).one_or_none()
    if event is None:
        return None
    if request_hash is not None and event.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request")
    count = await session.scalar(
        select(func.count()).select_from(Delivery).where(col(Delivery.event_id) == event.id)
    )
    return Published(event, count or 0, created=False)
