"""Retrying the failed deliveries of many events at once: what a list of events shows
(`reads.EventFilter`), counted first, then re-queued in bounded batches.

One request re-queues at most `MAX_PER_REQUEST` deliveries, in batches of `BATCH`
(each its own UPDATE and commit), so that a filter matching millions of rows can
neither hold one long transaction nor flood the queue at once; what is left is
retried by asking again. Deliveries to disabled endpoints are left alone (counted
apart), as a single retry refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from gateway.outbound.endpoints import requeue
from gateway.outbound.reads import EventFilter
from gateway.queue.dispatch import Dispatcher
from gateway.store.models import Delivery, DeliveryStatus, Endpoint, Event
from gateway.timeutil import as_utc, utcnow

BATCH = 500
MAX_PER_REQUEST = 5000


@dataclass(frozen=True)
class FailedCount:
    """What a bulk retry would do now. Counts stop at `limit + 1`: past the limit, the
    exact number does not change what one request does, and counting on would not be
    bounded."""

    retryable: int  # failed, to an enabled endpoint
    to_disabled: int  # failed, to a disabled endpoint: left alone
    limit: int = MAX_PER_REQUEST

    @property
    def over_limit(self) -> bool:
        return self.retryable > self.limit


@dataclass(frozen=True)
class BulkRetried:
    requeued: int
    more_left: bool  # the limit was reached with failed deliveries still matching
    at: datetime  # when it started: the progress counts what changed since


@dataclass(frozen=True)
class BulkProgress:
    """The deliveries a bulk retry re-queued, by state now (they are the ones of the
    filter's events that changed since the retry began)."""

    pending: int
    succeeded: int
    failed: int
    cancelled: int = 0  # skipped by its endpoint's transformation when tried again
    skipped: int = 0  # passed over by hand since (`POST /v1/deliveries/{id}/skip`)

    @property
    def done(self) -> bool:
        return self.pending == 0


def _of_events(events: EventFilter, scope: str | None) -> list[ColumnElement[bool]]:
    """Deliveries of the filter's events; for a tenant, only to its own endpoints, as
    a single retry (`get_delivery`) allows."""
    where: list[ColumnElement[bool]] = []
    if events.event_type is not None:
        # Said of the delivery too (it holds its event's type): the index on (status,
        # event_type) then finds them without reading the type's events.
        where.append(col(Delivery.event_type) == events.event_type)
    conditions = events.conditions(scope)
    if conditions:  # none: every event, and the planner need not read the events at all
        where.append(col(Delivery.event_id).in_(select(col(Event.id)).where(*conditions)))
    if scope is not None:
        where.append(
            col(Delivery.endpoint_id).in_(
                select(col(Endpoint.id)).where(col(Endpoint.tenant_id) == scope)
            )
        )
    return where


def _failed(events: EventFilter, scope: str | None, disabled: bool) -> list[ColumnElement[bool]]:
    return [
        col(Delivery.status) == DeliveryStatus.FAILED,
        *_of_events(events, scope),
        col(Delivery.endpoint_id).in_(
            select(col(Endpoint.id)).where(col(Endpoint.disabled) == disabled)
        ),
    ]


async def _bounded_count(
    session: AsyncSession, where: list[ColumnElement[bool]], limit: int
) -> int:
    capped = select(col(Delivery.id)).where(*where).limit(limit + 1).subquery()
    return int(await session.scalar(select(func.count()).select_from(capped)) or 0)


async def count_failed(
    session: AsyncSession,
    events: EventFilter,
    scope: str | None = None,
    limit: int = MAX_PER_REQUEST,
) -> FailedCount:
    """How many failed deliveries of the filter's events a retry would re-queue; changes
    nothing."""
    return FailedCount(
        retryable=await _bounded_count(session, _failed(events, scope, False), limit),
        to_disabled=await _bounded_count(session, _failed(events, scope, True), limit),
        limit=limit,
    )


async def retry_failed(
    session: AsyncSession,
    dispatcher: Dispatcher,
    events: EventFilter,
    scope: str | None = None,
    limit: int = MAX_PER_REQUEST,
) -> BulkRetried:
    """Re-queue (due now) the failed deliveries of the filter's events to enabled
    endpoints, oldest first, at most `limit`; each batch is committed and dispatched
    before the next is read. Their endpoints' breakers close, as for a single retry."""
    started = utcnow()
    where = _failed(events, scope, False)
    requeued, after = 0, ""
    while requeued < limit:
        ids = list(
            (
                await session.scalars(
                    select(col(Delivery.id))
                    .where(*where, col(Delivery.id) > after)
                    .order_by(col(Delivery.id))
                    .limit(min(BATCH, limit - requeued))
                )
            ).all()
        )
        if not ids:
            break
        # Keyset on the id: a delivery that fails again while this runs (delivered
        # in-process) is not taken twice.
        after = ids[-1]
        await session.execute(
            update(Endpoint)
            .where(
                col(Endpoint.id).in_(
                    select(col(Delivery.endpoint_id)).where(col(Delivery.id).in_(ids))
                )
            )
            .values(circuit_open_until=None, consecutive_failures=0)
        )
        requeued += await requeue(session, dispatcher, [col(Delivery.id).in_(ids)])
    more_left = (
        requeued >= limit
        and (await _bounded_count(session, [*where, col(Delivery.id) > after], 0)) > 0
    )
    return BulkRetried(requeued, more_left, started)


async def retry_progress(
    session: AsyncSession,
    events: EventFilter,
    since: datetime,
    scope: str | None = None,
) -> BulkProgress:
    """Where the deliveries a bulk retry started at `since` stand: those of the filter's
    events (stored before then) that changed since, by state. Nothing records which
    rows one retry took, so a delivery of those events that changed since for another
    reason (its own scheduled attempt) is counted too. The filter's delivery state is
    left out: the retry itself changed it."""
    until = since if events.until is None else min(as_utc(events.until), as_utc(since))
    scoped = EventFilter(events.event_type, events.tenant_id, events.source_id, events.since, until)
    rows = await session.execute(
        select(col(Delivery.status), func.count())
        .where(*_of_events(scoped, scope), col(Delivery.updated_at) >= as_utc(since))
        .group_by(col(Delivery.status))
    )
    counts = {status: int(n) for status, n in rows.all()}
    return BulkProgress(
        pending=counts.get(DeliveryStatus.PENDING, 0),
        succeeded=counts.get(DeliveryStatus.SUCCEEDED, 0),
        failed=counts.get(DeliveryStatus.FAILED, 0),
        cancelled=counts.get(DeliveryStatus.CANCELLED, 0),
        skipped=counts.get(DeliveryStatus.SKIPPED, 0),
    )
