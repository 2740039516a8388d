"""Ordered delivery: the deliveries of one ordering key to an ordered endpoint go one at a
time, in their events' sequence (the order the publishes committed, see `fanout.py`).

Nothing is queued per key. A delivery carries its event's key and sequence only when
its endpoint is ordered (NULL otherwise, so nothing else pays), and is claimable only
when the delivery of its key just before it (skipped ones left out) no longer holds it
back: that one is not pending (being tried, or waiting for a retry), nor failed when the
endpoint is strict. So the head of a key is the only one a claim (or the sweeper) takes;
when it ends, `dispatch_successors` hands out the next. Whatever is lost on the way (a
killed worker, a flushed queue) the sweeper finds again: the head is due and unleased.

Only the delivery just before is read (one step down an index), not the key's whole
history: it cannot have ended before the ones before it, which were each its head in
turn. A retry by hand of an earlier delivery, or a recover, sends it at once, beside
the key's head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, bindparam, case, exists, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict
from gateway.outbound.endpoints import get_delivery
from gateway.queue.dispatch import Dispatcher, dispatch_deliveries
from gateway.store.models import Delivery, DeliveryStatus, Endpoint, Ordering, table
from gateway.timeutil import utcnow

if TYPE_CHECKING:  # the CLI's skip needs none of what a delivering process does
    from gateway.outbound.context import DeliveryContext

log = logging.getLogger("gateway.delivery")
# Sends deliveries (by id) in this process: `delivery.deliver_deliveries`, bound.
SendHere = Callable[[list[str]], Awaitable[object]]

_DELIVERY = table(Delivery)
_ENDPOINT = table(Endpoint)


def not_held_back(d: Any) -> ColumnElement[bool]:
    """True for a delivery (the columns `d` of the delivery table) that no earlier
    delivery of its key holds back. Deliveries without a key stop at the first test."""
    earlier = _DELIVERY.alias("earlier")
    status_before = (
        select(earlier.c.status)
        .where(
            earlier.c.endpoint_id == d.endpoint_id,
            earlier.c.ordering_key == d.ordering_key,
            earlier.c.sequence < d.sequence,
            earlier.c.status != DeliveryStatus.SKIPPED,
        )
        .order_by(earlier.c.sequence.desc())
        .limit(1)
        .scalar_subquery()
    )
    strict = exists().where(
        _ENDPOINT.c.id == d.endpoint_id, _ENDPOINT.c.ordering == Ordering.STRICT
    )
    return or_(
        d.ordering_key.is_(None),
        case(
            {DeliveryStatus.PENDING: false(), DeliveryStatus.FAILED: ~strict},
            value=status_before,
            else_=true(),
        ),
    )


def lets_next_go(status: str, ordering: str | None) -> bool:
    """Whether a delivery that ended so lets the next of its key go."""
    return status != DeliveryStatus.PENDING and not (
        status == DeliveryStatus.FAILED and ordering == Ordering.STRICT
    )


_ENDED = _DELIVERY.alias("ended")
_NEXT = _DELIVERY.alias("next")
# The delivery of the key just after each ended one (skipped ones passed over), marked
# dispatched now if it is pending.
_TAKE_SUCCESSORS = (
    update(_DELIVERY)
    .where(
        _DELIVERY.c.id.in_(
            select(
                select(_NEXT.c.id)
                .where(
                    _NEXT.c.endpoint_id == _ENDED.c.endpoint_id,
                    _NEXT.c.ordering_key == _ENDED.c.ordering_key,
                    _NEXT.c.sequence > _ENDED.c.sequence,
                    _NEXT.c.status != DeliveryStatus.SKIPPED,
                )
                .order_by(_NEXT.c.sequence)
                .limit(1)
                .scalar_subquery()
            ).where(
                _ENDED.c.id.in_(bindparam("ended", expanding=True)),
                _ENDED.c.ordering_key.is_not(None),
            )
        ),
        _DELIVERY.c.status == DeliveryStatus.PENDING,
    )
    .values(dispatched_at=bindparam("now"))
    .returning(_DELIVERY.c.id)
)


async def successors(session: AsyncSession, ended: list[str]) -> list[str]:
    """Mark dispatched, and return, the pending deliveries next after the ended ones."""
    if not ended:
        return []
    result = await session.execute(_TAKE_SUCCESSORS, {"ended": ended, "now": utcnow()})
    return list(result.scalars())


async def dispatch_successors(
    ctx: DeliveryContext, ended: list[str], send_here: SendHere | None = None
) -> None:
    """After the ends of these deliveries were committed: send the next of their keys,
    with `send_here` in this process (no queue round trip, which one key pays per
    event), else through the queue. A failure here is only a delay: the sweeper finds
    the new heads (a process that dies sending them leaves leases that lapse)."""
    try:
        async with ctx.sessionmaker() as session, session.begin():
            found = await successors(session, ended)
        if not found:
            return
        if send_here is not None:
            ctx.keep(asyncio.create_task(_sent_here(send_here, found)))
        else:
            await dispatch_deliveries(ctx.dispatcher, found, f"next:{ended[0]}")
    except Exception:
        log.exception("could not dispatch the next deliveries of %d ordering keys", len(ended))


async def _sent_here(send_here: SendHere, delivery_ids: list[str]) -> None:
    try:
        await send_here(delivery_ids)
    except Exception:  # their leases lapse, and the sweeper hands them out again
        log.exception("could not send the next deliveries of %d ordering keys", len(delivery_ids))


async def skip(
    session: AsyncSession, dispatcher: Dispatcher, delivery_id: str, tenant_id: str | None = None
) -> Delivery:
    """Pass over a failed, or pending and not being tried, delivery: it is never sent,
    and the next of its key goes. Committed."""
    delivery = await get_delivery(session, delivery_id, tenant_id)
    now = utcnow()
    if delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.PENDING):
        raise Conflict(
            f"delivery {delivery.id} is {delivery.status}: only a failed or pending "
            "delivery can be skipped"
        )
    d = _DELIVERY.c
    # Only if it is still as read, and not leased (an attempt in flight): atomically.
    skipped = await session.execute(
        update(_DELIVERY)
        .where(
            d.id == delivery.id,
            d.status == delivery.status,
            or_(d.locked_until.is_(None), d.locked_until < now),
        )
        .values(
            status=DeliveryStatus.SKIPPED, next_attempt_at=None, locked_until=None, updated_at=now
        )
    )
    if skipped.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise Conflict(f"delivery {delivery.id} is being attempted right now; try again later")
    found = await successors(session, [delivery.id]) if delivery.ordering_key else []
    await session.commit()
    await session.refresh(delivery)
    await dispatch_deliveries(dispatcher, found, f"next:{delivery.id}")
    return delivery
