"""The sweeper: re-dispatches deliveries that are due but that no job is working on.

This is what makes a 202 a promise. Whatever was lost (a Redis flush, a dead
worker, a dispatch that failed after commit), the database still says the
delivery is pending, and once it is overdue by `sweep_grace` with no live lease
it is dispatched again. `dispatched_at` is bumped as it goes, so each delivery
is re-dispatched at most once per grace period: no storm of duplicates.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlmodel import col

from gateway.outbound.alerts import mail_unsent
from gateway.outbound.context import DeliveryContext
from gateway.outbound.ordering import not_held_back
from gateway.queue.dispatch import dispatch_deliveries
from gateway.store.models import Delivery, DeliveryStatus, table
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.sweeper")

MAX_BATCHES = 20  # per sweep, so one sweep stays short however large the backlog


async def sweep(ctx: DeliveryContext) -> int:
    """Re-dispatch stale due deliveries; returns how many."""
    settings = ctx.settings
    total = 0
    for _ in range(MAX_BATCHES):
        now = utcnow()
        stale = now - timedelta(seconds=settings.sweep_grace)
        async with ctx.sessionmaker() as session, session.begin():
            due = (
                select(col(Delivery.id))
                .where(
                    col(Delivery.status) == DeliveryStatus.PENDING,
                    col(Delivery.next_attempt_at) <= stale,
                    or_(
                        col(Delivery.dispatched_at).is_(None), col(Delivery.dispatched_at) <= stale
                    ),
                    or_(col(Delivery.locked_until).is_(None), col(Delivery.locked_until) < now),
                    # Not one that waits for the delivery before it of its ordering key:
                    # that one's end dispatches it.
                    not_held_back(table(Delivery).c),
                )
                .order_by(col(Delivery.next_attempt_at))
                .limit(settings.sweep_batch)
            )
            if (await session.connection()).dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            ids = list(
                (
                    await session.execute(
                        update(Delivery)
                        .where(col(Delivery.id).in_(due.scalar_subquery()))
                        .values(dispatched_at=now)
                        .returning(col(Delivery.id))
                    )
                ).scalars()
            )
        if not ids:
            break
        await dispatch_deliveries(ctx.dispatcher, ids, f"sweep:{int(now.timestamp())}")
        total += len(ids)
        if len(ids) < settings.sweep_batch:
            break
    if total:
        log.info("sweeper re-dispatched %d overdue deliveries", total)
    try:
        await mail_unsent(ctx)
    except Exception:  # a mail's trouble never stops the sweep
        log.exception("could not send the unsent warning emails")
    return total
