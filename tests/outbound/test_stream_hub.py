"""The Redis stream hub a worker offers stream attempts through, against the suite's
Redis: the attempts waiting for acknowledgements share one Pub/Sub connection (it
was one connection per attempt in flight), and each gets its own acknowledgement."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from redis.asyncio import Redis

from gateway.outbound.streams import Ack, NoListener, Offer, RedisHub
from tests.support.gateway import PG_MISSING, REDIS_URL

ATTEMPTS = 20

pytestmark = pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")


def _hub(queue: str, name: str | None = None) -> RedisHub:
    """A hub as a worker or an API process makes one; `name` names its connections."""
    return RedisHub(Redis.from_url(REDIS_URL, client_name=name, socket_timeout=5), queue)


def _offer(delivery_id: str) -> Offer:
    return Offer.of(delivery_id, 1, "evt_1", "order.created", "POST", {}, b"{}")


async def _subscriptions(admin: Redis, name: str) -> list[int]:
    """Channels subscribed per Pub/Sub connection that holds one of ours (by name)."""
    counts = []
    for client in await admin.client_list(_type="pubsub"):
        if int(client.get("sub", 0)) > 0 and client.get("name") == name:
            counts.append(int(client["sub"]))
    return counts


def test_waiting_attempts_share_one_connection_and_get_their_own_ack() -> None:
    queue = f"hubtest:{uuid.uuid4().hex[:8]}"

    async def go() -> list[Ack | None]:
        # The worker's connections carry a name, so that the count is of ours alone.
        worker, api = _hub(queue, name=queue), _hub(queue)
        admin = Redis.from_url(REDIS_URL)
        try:
            async with api.listen("ep_1") as listening:
                offers = [
                    asyncio.create_task(worker.offer("ep_1", _offer(f"dlv_{i}"), 10))
                    for i in range(ATTEMPTS)
                ]
                received = []
                for _ in range(ATTEMPTS):
                    text = await listening.next(5)
                    assert text is not None
                    received.append(json.loads(text))
                # Every attempt is offered, so subscribed: all on one connection.
                assert await _subscriptions(admin, queue) == [ATTEMPTS]
                for offer in reversed(received):
                    ack = Ack(offer["delivery_id"], offer["attempt"], 200, offer["delivery_id"])
                    assert await api.acknowledge(ack)
                acks = await asyncio.gather(*offers)
            # Nothing left subscribed once the attempts are over.
            assert await _subscriptions(admin, queue) == []
            return acks
        finally:
            await admin.aclose()

    acks = asyncio.run(go())
    assert [(a.delivery_id, a.body) if a else None for a in acks] == [
        (f"dlv_{i}", f"dlv_{i}") for i in range(ATTEMPTS)
    ]


def test_an_offer_nobody_hears_or_answers_ends_and_unsubscribes() -> None:
    queue = f"hubtest:{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        worker, api = _hub(queue, name=queue), _hub(queue)
        admin = Redis.from_url(REDIS_URL)
        try:
            with pytest.raises(NoListener):
                await worker.offer("ep_1", _offer("dlv_nobody"), 5)
            async with api.listen("ep_1"):
                assert await worker.offer("ep_1", _offer("dlv_silent"), 0.3) is None
                # A late acknowledgement finds no attempt waiting.
                assert not await api.acknowledge(Ack("dlv_silent", 1, 200))
            assert await _subscriptions(admin, queue) == []
        finally:
            await admin.aclose()

    asyncio.run(go())
