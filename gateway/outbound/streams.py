"""Stream endpoints: deliveries read by a client over `GET /v1/endpoints/{id}/stream`
instead of pushed to a URL (what `gateway listen` reads).

A stream endpoint's deliveries are claimed, signed, retried and recorded by the
workers exactly like an HTTP endpoint's (`delivery.py`); only the transport of an
attempt differs. The worker offers the signed request on the endpoint's channel and
waits, up to the delivery timeout, for the client's acknowledgement of that
delivery and attempt, which carries what the client's local receiver answered.
With no client connected the attempt fails at once ("no listener connected"), and
is retried on the schedule like any other failure.

Two hubs with one interface: `RedisHub` (Pub/Sub), where the worker and the API
process that holds the client's connection are different processes, and
`MemoryHub`, for embedded mode, where they are one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Unavailable
from gateway.queue.dispatch import Dispatcher, dispatch_deliveries
from gateway.store.models import Delivery, DeliveryStatus, Endpoint, table
from gateway.timeutil import utcnow

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Offers a client's connection may have waiting to be written; past that, an offer is
# dropped for that client (its attempt times out and is retried, as any unanswered one).
QUEUE_LIMIT = 1000
# How long Redis may take to confirm a subscription before the attempt gives up.
CONFIRM_WITHIN = 5.0


class StreamError(Exception):
    """An offer that reached no client; the message says why, for the attempt log."""


class NoListener(StreamError):
    def __init__(self) -> None:
        super().__init__("no listener connected")


@dataclass(frozen=True)
class Offer:
    """One attempt as the client receives it: the signed request, to forward as it is."""

    delivery_id: str
    attempt: int
    event_id: str
    event_type: str
    method: str
    headers: dict[str, str]
    body: str
    body_encoding: str  # "utf-8", or "base64" for a body that is not UTF-8 text

    @classmethod
    def of(
        cls,
        delivery_id: str,
        attempt: int,
        event_id: str,
        event_type: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Offer:
        try:
            text, encoding = body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(body).decode("ascii"), "base64"
        return cls(delivery_id, attempt, event_id, event_type, method, headers, text, encoding)

    def json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Ack:
    """What the client's local receiver answered to one attempt (no status: no answer)."""

    delivery_id: str
    attempt: int
    status_code: int | None
    body: str = ""
    error: str | None = None

    def json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | bytes) -> Ack:
        return cls(**json.loads(text))


class Listening(Protocol):
    async def next(self, within: float) -> str | None:
        """The next offer (as JSON text), or None if none came `within` seconds."""


class StreamHub(Protocol):
    async def offer(self, endpoint_id: str, offer: Offer, within: float) -> Ack | None:
        """Hand the offer to the endpoint's clients and wait for its acknowledgement;
        None when none came `within` seconds. Raises NoListener when no client is there."""

    def listen(self, endpoint_id: str) -> contextlib.AbstractAsyncContextManager[Listening]:
        """The offers for the endpoint while the block runs (a client's connection)."""

    async def acknowledge(self, ack: Ack) -> bool:
        """Pass the acknowledgement to the attempt waiting for it; False if none is."""


class _QueueListening:
    def __init__(self, queue: asyncio.Queue[str]) -> None:
        self._queue = queue

    async def next(self, within: float) -> str | None:
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            return None


class MemoryHub:
    """Embedded mode: the API process delivers too, so the hub is in memory."""

    def __init__(self) -> None:
        self._clients: dict[str, set[asyncio.Queue[str]]] = {}
        self._waiting: dict[tuple[str, int], asyncio.Future[Ack]] = {}

    async def offer(self, endpoint_id: str, offer: Offer, within: float) -> Ack | None:
        clients = self._clients.get(endpoint_id)
        if not clients:
            raise NoListener
        key = (offer.delivery_id, offer.attempt)
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        text = offer.json()
        try:
            for queue in clients:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(text)
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]

    @contextlib.asynccontextmanager
    async def listen(self, endpoint_id: str) -> AsyncIterator[Listening]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._clients.setdefault(endpoint_id, set()).add(queue)
        try:
            yield _QueueListening(queue)
        finally:
            clients = self._clients.get(endpoint_id, set())
            clients.discard(queue)
            if not clients:
                self._clients.pop(endpoint_id, None)

    async def acknowledge(self, ack: Ack) -> bool:
        future = self._waiting.get((ack.delivery_id, ack.attempt))
        if future is None or future.done():
            return False
        future.set_result(ack)
        return True


def _text(value: bytes | str) -> str:
    """A Pub/Sub field as text (the client may be made to decode, or not)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _PubSubListening:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, within: float) -> str | None:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None and message["type"] == "message":
                return _text(message["data"])
        return None


class _Acknowledgements:
    """The acknowledgements one process waits for, on one Pub/Sub connection of its own:
    each attempt's channel is subscribed while it waits, and one reader hands what
    comes to the attempt. (A connection of its own per attempt in flight made a worker
    sending to stream endpoints hold as many Redis connections as attempts.)"""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribing = asyncio.Lock()
        # By channel: Redis has confirmed the subscription; the acknowledgement came.
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._acks: dict[str, asyncio.Future[str]] = {}

    @contextlib.asynccontextmanager
    async def waiting(self, channel: str) -> AsyncIterator[asyncio.Future[str]]:
        """Subscribed to `channel` while the block runs; the future is its message."""
        from redis.exceptions import RedisError

        loop = asyncio.get_running_loop()
        confirmed = self._confirmed[channel] = loop.create_future()
        ack = self._acks[channel] = loop.create_future()
        try:
            # One at a time: attempts subscribing together made a connection each (the
            # Pub/Sub object connects on its first command), all but one lost.
            async with self._subscribing:
                if self._pubsub is None:
                    self._pubsub = self._redis.pubsub()
                await self._pubsub.subscribe(channel)
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read(self._pubsub))
            # Subscribed once Redis confirms it: a message published before that is lost.
            try:
                await asyncio.wait_for(confirmed, CONFIRM_WITHIN)
            except TimeoutError:
                raise StreamError("stream unavailable: Redis did not confirm") from None
            yield ack
        finally:
            self._confirmed.pop(channel, None)
            self._acks.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: Any) -> None:
        """Hand out confirmations and acknowledgements while any attempt waits."""
        from redis.exceptions import RedisError

        try:
            while self._acks:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                channel = _text(message["channel"])
                if message["type"] == "subscribe":
                    _settle(self._confirmed.get(channel), None)
                elif message["type"] == "message":
                    _settle(self._acks.get(channel), _text(message["data"]))
        except (RedisError, OSError) as exc:
            # Every attempt waiting fails now (and is retried); the next one reconnects.
            failure = StreamError(f"stream unavailable: Redis: {type(exc).__name__}")
            waiting: list[asyncio.Future[Any]] = [*self._confirmed.values(), *self._acks.values()]
            for future in waiting:
                if not future.done():
                    future.set_exception(failure)
            if self._pubsub is pubsub:
                self._pubsub = None
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()


def _settle(future: asyncio.Future[Any] | None, value: Any) -> None:
    if future is not None and not future.done():
        future.set_result(value)


class RedisHub:
    """Workers and API processes apart: offers and acknowledgements go through Redis
    Pub/Sub. An offer goes to the endpoint's channel, which every API process holding
    one of its clients subscribes to; PUBLISH answers how many heard it, so no client
    is told at once. The acknowledgement goes to a channel of that delivery and
    attempt, which the waiting worker subscribed to before it offered."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self._redis = redis
        self._prefix = f"{queue_name}:stream"
        self._acks = _Acknowledgements(redis)

    def _channel(self, endpoint_id: str) -> str:
        return f"{self._prefix}:{endpoint_id}"

    def _ack_channel(self, delivery_id: str, attempt: int) -> str:
        return f"{self._prefix}:ack:{delivery_id}:{attempt}"

    async def offer(self, endpoint_id: str, offer: Offer, within: float) -> Ack | None:
        from redis.exceptions import RedisError

        try:
            async with self._acks.waiting(
                self._ack_channel(offer.delivery_id, offer.attempt)
            ) as ack:
                if await self._redis.publish(self._channel(endpoint_id), offer.json()) == 0:
                    raise NoListener
                try:
                    text = await asyncio.wait_for(ack, within)
                except TimeoutError:
                    return None
        except (RedisError, OSError) as exc:
            raise StreamError(f"stream unavailable: Redis: {type(exc).__name__}") from None
        return Ack.parse(text)

    def listen(self, endpoint_id: str) -> contextlib.AbstractAsyncContextManager[Listening]:
        return self._subscribed(self._channel(endpoint_id))

    @contextlib.asynccontextmanager
    async def _subscribed(self, channel: str) -> AsyncIterator[Listening]:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            # Subscribed once Redis confirms it: a message published before that is lost.
            while True:
                message = await pubsub.get_message(timeout=5)
                if message is None:
                    raise TimeoutError(f"Redis did not confirm the subscription to {channel}")
                if message["type"] == "subscribe":
                    break
            yield _PubSubListening(pubsub)
        finally:
            await pubsub.aclose()

    async def acknowledge(self, ack: Ack) -> bool:
        from redis.exceptions import RedisError

        try:
            channel = self._ack_channel(ack.delivery_id, ack.attempt)
            return bool(await self._redis.publish(channel, ack.json()))
        except (RedisError, OSError) as exc:
            raise Unavailable(
                f"the stream hub (Redis) does not answer ({type(exc).__name__}); try again"
            ) from None


async def check_acknowledgeable(session: AsyncSession, endpoint_id: str, delivery_id: str) -> bool:
    """Whether the delivery is one of the endpoint's (whose tenant the caller has checked)."""
    c = table(Delivery).c
    found = await session.scalar(
        select(c.id).where(c.id == delivery_id, c.endpoint_id == endpoint_id)
    )
    return found is not None


async def resume(session: AsyncSession, dispatcher: Dispatcher, endpoint_id: str) -> int:
    """A client has connected: the endpoint is back. Its breaker closes and its pending
    deliveries, waiting for a retry, become due now, as a retry by hand would make
    them; those failed for good stay so (`recover` brings them back). Committed, then
    dispatched; the number brought forward. Nothing for a disabled endpoint, whose
    deliveries would only fail."""
    now = utcnow()
    e = table(Endpoint).c
    reopened = await session.execute(
        update(table(Endpoint))
        .where(e.id == endpoint_id, e.disabled.is_(False))
        .values(circuit_open_until=None, consecutive_failures=0)
    )
    if reopened.rowcount == 0:  # type: ignore[attr-defined]
        await session.rollback()
        return 0
    d = table(Delivery).c
    ids = list(
        (
            await session.execute(
                update(table(Delivery))
                .where(
                    d.endpoint_id == endpoint_id,
                    d.status == DeliveryStatus.PENDING,
                    d.next_attempt_at > now,
                )
                .values(next_attempt_at=now, dispatched_at=now, rate_slot_at=None)
                .returning(d.id)
            )
        ).scalars()
    )
    await session.commit()
    await dispatch_deliveries(dispatcher, ids, f"stream:{int(now.timestamp() * 1000)}")
    return len(ids)
