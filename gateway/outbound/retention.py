"""Retention: events older than `GATEWAY_RETENTION_DAYS` go, with their deliveries and attempts.

Purged in small batches, each its own short transaction, so no long lock is held
and a purge can be interrupted at any point. Deliveries still pending are kept
whatever their age: nothing that may yet be sent is thrown away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, exists, select

from gateway.db import SessionMaker
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Event, table
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.retention")

BATCH = 500
_EVENT, _DELIVERY, _ATTEMPT = table(Event), table(Delivery), table(Attempt)


async def purge(
    sessionmaker: SessionMaker,
    retention_days: float,
    progress: Callable[[int], None] = lambda n: None,
    max_batches: int = 1000,
) -> int:
    """Delete expired events (and what hangs off them); returns how many events."""
    cutoff = utcnow() - timedelta(days=retention_days)
    total = 0
    for _ in range(max_batches):
        async with sessionmaker() as session, session.begin():
            still_pending = exists().where(
                _DELIVERY.c.event_id == _EVENT.c.id,
                _DELIVERY.c.status == DeliveryStatus.PENDING,
            )
            ids = list(
                (
                    await session.execute(
                        select(_EVENT.c.id)
                        .where(_EVENT.c.created_at < cutoff, ~still_pending)
                        .order_by(_EVENT.c.id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
            if not ids:
                break
            deliveries = select(_DELIVERY.c.id).where(_DELIVERY.c.event_id.in_(ids))
            await session.execute(delete(_ATTEMPT).where(_ATTEMPT.c.delivery_id.in_(deliveries)))
            await session.execute(delete(_DELIVERY).where(_DELIVERY.c.event_id.in_(ids)))
            await session.execute(delete(_EVENT).where(_EVENT.c.id.in_(ids)))
        total += len(ids)
        progress(len(ids))
    if total:
        log.info("retention: purged %d events older than %g days", total, retention_days)
    return total
