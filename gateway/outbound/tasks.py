"""The delivery jobs, run by arq workers and by the embedded dispatcher alike, and the
one place their context is built.

Thin wrappers: the work is in `delivery.py`, `sweeper.py` and `retention.py`, which
take their context as an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.crypto import SecretBox
from gateway.db import SessionMaker
from gateway.outbound import delivery, retention, sweeper
from gateway.outbound.client import create_delivery_client
from gateway.outbound.context import DeliveryContext
from gateway.outbound.ratelimit import MemoryRateLimiter, RedisRateLimiter
from gateway.outbound.streams import MemoryHub, RedisHub
from gateway.queue.dispatch import (
    DELIVER_DELIVERIES,
    DELIVER_EVENT,
    DELIVER_EVENTS,
    DELIVER_LEASED,
    ArqDispatcher,
    Dispatcher,
    JobFunction,
)
from gateway.settings import Settings

# Where the job functions find their DeliveryContext in the job context.
CTX_KEY = "gateway"


def build_delivery_context(
    settings: Settings, sessionmaker: SessionMaker, dispatcher: Dispatcher, box: SecretBox
) -> DeliveryContext:
    """The context of a delivering process (a worker, or `serve` in embedded mode): its
    HTTP client, and endpoint rate limits and stream offers shared through Redis when
    there is one. Made inside the running loop, as aiohttp requires."""
    redis = dispatcher.redis if isinstance(dispatcher, ArqDispatcher) else None
    return DeliveryContext(
        settings,
        sessionmaker,
        create_delivery_client(settings),
        dispatcher,
        box,
        limiter=MemoryRateLimiter()
        if redis is None
        else RedisRateLimiter(redis, settings.queue_name),
        streams=MemoryHub() if redis is None else RedisHub(redis, settings.queue_name),
    )


def _gw(ctx: dict[str, Any]) -> DeliveryContext:
    return ctx[CTX_KEY]  # type: ignore[no-any-return]


async def deliver_event(ctx: dict[str, Any], event_id: str) -> int:
    return await delivery.deliver_events(_gw(ctx), [event_id])


async def deliver_events(ctx: dict[str, Any], event_ids: Sequence[str]) -> int:
    return await delivery.deliver_events(_gw(ctx), event_ids)


async def deliver_deliveries(ctx: dict[str, Any], delivery_ids: Sequence[str]) -> int:
    return await delivery.deliver_deliveries(_gw(ctx), delivery_ids)


async def deliver_leased(ctx: dict[str, Any], lease: datetime, delivery_ids: Sequence[str]) -> int:
    return await delivery.deliver_leased(_gw(ctx), lease, delivery_ids)


async def sweep(ctx: dict[str, Any]) -> int:
    return await sweeper.sweep(_gw(ctx))


async def purge_expired(ctx: dict[str, Any]) -> int:
    gw = _gw(ctx)
    return await retention.purge(gw.sessionmaker, gw.settings.retention_days)


FUNCTIONS: dict[str, JobFunction] = {
    DELIVER_EVENT: deliver_event,
    DELIVER_EVENTS: deliver_events,
    DELIVER_DELIVERIES: deliver_deliveries,
    DELIVER_LEASED: deliver_leased,
}
