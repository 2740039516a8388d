"""The job functions, shared by arq workers and the embedded dispatcher.

Thin wrappers: the work is in `gateway.outbound`, which takes its context as an
argument and is tested directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.outbound import delivery, retention, sweeper
from gateway.outbound.context import DeliveryContext
from gateway.queue.dispatch import DELIVER_DELIVERIES, DELIVER_EVENT, DELIVER_EVENTS, JobFunction

CTX_KEY = "gateway"


def _gw(ctx: dict[str, Any]) -> DeliveryContext:
    return ctx[CTX_KEY]  # type: ignore[no-any-return]


async def deliver_event(ctx: dict[str, Any], event_id: str) -> int:
    return await delivery.deliver_events(_gw(ctx), [event_id])


async def deliver_events(ctx: dict[str, Any], event_ids: Sequence[str]) -> int:
    return await delivery.deliver_events(_gw(ctx), event_ids)


async def deliver_deliveries(ctx: dict[str, Any], delivery_ids: Sequence[str]) -> int:
    return await delivery.deliver_deliveries(_gw(ctx), delivery_ids)


async def sweep(ctx: dict[str, Any]) -> int:
    return await sweeper.sweep(_gw(ctx))


async def purge_expired(ctx: dict[str, Any]) -> int:
    gw = _gw(ctx)
    return await retention.purge(gw.sessionmaker, gw.settings.retention_days)


FUNCTIONS: dict[str, JobFunction] = {
    DELIVER_EVENT: deliver_event,
    DELIVER_EVENTS: deliver_events,
    DELIVER_DELIVERIES: deliver_deliveries,
}
