"""Stream endpoints through the SDK, on both backends: attempts read from
`endpoints.stream` (async and sync), verified with `verify`, acknowledged with
`endpoints.acknowledge`, and delivered."""

from __future__ import annotations

import asyncio
import contextlib

from hookgate import AsyncClient, Client, verify

from tests.support.gateway import API_KEY, Gateway
from tests.support.receiver import wait_until


async def _listen_once(base_url: str) -> tuple[str, str]:
    async with AsyncClient(base_url, API_KEY) as client:
        endpoint = await client.endpoints.create(kind="stream")
        assert endpoint.kind == "stream" and endpoint.url is None
        event = await client.events.publish("invoice.paid", {"amount": 12})
        async with contextlib.aclosing(client.endpoints.stream(endpoint.id)) as offers:
            async for offer in offers:
                assert offer.event_id == event.id and offer.event_type == "invoice.paid"
                assert verify(offer.content, offer.headers, endpoint.secret)["id"] == event.id
                await client.endpoints.acknowledge(
                    endpoint.id, offer.delivery_id, offer.attempt, 200, body="ok"
                )
                return endpoint.id, offer.delivery_id
    raise AssertionError("the stream ended before its delivery")


def test_a_stream_endpoints_attempts_are_read_verified_and_acknowledged(gw: Gateway) -> None:
    base_url = str(gw.api.base_url)
    endpoint_id, delivery_id = asyncio.run(_listen_once(base_url))
    with Client(base_url, API_KEY) as client:
        done = wait_until(
            lambda: (d := client.deliveries.get(delivery_id)).status == "succeeded" and d,
            20,
            "the acknowledged delivery to succeed",
        )
        assert done.attempts[-1].status_code == 200
        # The sync client reads the same way.
        event = client.events.publish("invoice.paid", {"amount": 13})
        offers = client.endpoints.stream(endpoint_id)
        offer = next(offers)
        assert offer.event_id == event.id and offer.content.startswith(b"{")
        client.endpoints.acknowledge(endpoint_id, offer.delivery_id, offer.attempt, 200)
        offers.close()
        wait_until(
            lambda: client.deliveries.get(offer.delivery_id).status == "succeeded",
            20,
            "the second delivery to succeed",
        )
