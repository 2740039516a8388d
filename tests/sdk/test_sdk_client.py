"""The Python SDK against the gateway as users run it, on both backends: the sync client
publishing and paging, the async one through the rest of the API, and errors as the
exceptions the SDK documents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import hookgate
import pytest
from hookgate import AsyncClient, Client

from tests.support.gateway import API_KEY, Gateway
from tests.support.receiver import Receiver, wait_until


def _client(gw: Gateway) -> Client:
    return Client(str(gw.api.base_url), API_KEY)


def test_sync_client_publishes_once_per_key_and_pages(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    with _client(gw) as client:
        endpoint = client.endpoints.create(receiver.url(path), event_types=["invoice.*"])
        assert endpoint.secret.startswith("whsec_") and endpoint.signature.scheme == "standard"

        event = client.events.publish(
            "invoice.paid", {"amount": 12}, ordering_key="cus_1", idempotency_key="in-12"
        )
        assert event.ordering_key == "cus_1" and event.sequence == 1
        again = client.events.publish(
            "invoice.paid", {"amount": 12}, ordering_key="cus_1", idempotency_key="in-12"
        )
        assert again.id == event.id and event.deliveries == 1
        with pytest.raises(hookgate.ConflictError) as conflict:
            client.events.publish("invoice.paid", {"amount": 13}, idempotency_key="in-12")
        assert conflict.value.status_code == 409 and "Idempotency-Key" in conflict.value.detail

        [delivery] = client.events.deliveries(event.id)
        done = wait_until(
            lambda: (d := client.deliveries.get(delivery.id)).status == "succeeded" and d,
            20,
            "the delivery to succeed",
        )
        assert done.attempts[0].status_code == 200
        with pytest.raises(hookgate.ConflictError):
            client.deliveries.skip(delivery.id)  # delivered: too late to skip
        assert len(receiver.received(path)) == 1
        assert client.events.get(event.id).data == {"amount": 12}

        published = client.events.publish_batch(
            [{"type": "invoice.updated", "data": {"n": n}} for n in range(4)]
        )
        assert all(item.created for item in published.events)
        # Five events, two a page: three pages, every event once, newest first.
        page = client.events.list_page(limit=2)
        assert len(page.data) == 2 and page.next_cursor
        listed = [e.id for e in client.events.list(limit=2)]
        assert listed[-1] == event.id and len(set(listed)) == 5
        assert [e.id for e in client.events.list(type="invoice.paid")] == [event.id]
        assert [e.id for e in client.events.list(ordering_key="cus_1")] == [event.id]

        with pytest.raises(hookgate.NotFoundError) as missing:
            client.events.get("evt_01ZZZZZZZZZZZZZZZZZZZZZZZZ")
        assert missing.value.status_code == 404 and missing.value.detail
        with pytest.raises(hookgate.UnprocessableEntityError) as refused:
            client.endpoints.create("not a url")
        assert refused.value.problems[0].loc[:2] == ["body", "url"]
    with pytest.raises(hookgate.AuthenticationError):
        Client(str(gw.api.base_url), "wrong").events.list_page()


def test_async_client_through_the_rest_of_the_api(
    gw: Gateway, receiver: Receiver, path: str, forget_event_types: None
) -> None:
    asyncio.run(_tour(str(gw.api.base_url), receiver.url(path)))
    receiver.wait_for(path, 2)  # the test event, and its retry


async def _tour(base_url: str, url: str) -> None:
    async with AsyncClient(base_url, API_KEY) as client:
        assert (await client.health()).status == "ok"
        assert (await client.ready()).status == "ready"

        endpoint = await client.endpoints.create(
            url, signature={"scheme": "hmac"}, filter="data.amount > 10"
        )
        assert endpoint.signature.scheme == "hmac" and endpoint.filter == "data.amount > 10"
        updated = await client.endpoints.update(endpoint.id, description="billing", filter=None)
        assert updated.description == "billing" and updated.filter is None
        assert (await client.endpoints.get(endpoint.id)).url == url
        assert [e.id async for e in client.endpoints.list()] == [endpoint.id]
        rotated = await client.endpoints.rotate_secret(endpoint.id, "a-secret-of-our-own")
        assert (await client.endpoints.get_secret(endpoint.id)).secret == rotated.secret
        assert (await client.endpoints.get_auth(endpoint.id)).auth is None
        matched = await client.endpoints.test_filter(
            endpoint.id, "invoice.paid", {"amount": 5}, filter="data.amount > 1"
        )
        assert matched.matches and matched.error is None
        shaped = await client.endpoints.test_transformation(
            endpoint.id,
            {"type": "a", "data": {}},
            code="function handler(w) { w.payload.data.x = 1; return w; }",
        )
        assert shaped.error is None and shaped.result is not None
        test_event = await client.endpoints.test(endpoint.id)
        assert [d.endpoint_id async for d in client.endpoints.deliveries(endpoint.id)] == [
            endpoint.id
        ]
        [delivery] = [d async for d in client.events.deliveries(test_event.id)]
        deadline = asyncio.get_running_loop().time() + 20
        while (await client.deliveries.get(delivery.id)).status != "succeeded":
            assert asyncio.get_running_loop().time() < deadline, "the test event never arrived"
            await asyncio.sleep(0.05)
        assert (await client.deliveries.retry(delivery.id)).status == "pending"
        since = datetime.now(UTC) - timedelta(hours=1)
        assert (await client.endpoints.recover(endpoint.id, since)).requeued == 0
        assert (await client.endpoints.stats(endpoint.id, bucket="minute")).bucket == "minute"
        assert (await client.stats(since=since)).attempts >= 0

        schema = {"type": "object", "required": ["amount"]}
        created = await client.event_types.create(
            "invoice.paid", schema=schema, examples=[{"amount": 1}]
        )
        assert created.data_schema == schema
        with pytest.raises(hookgate.UnprocessableEntityError):
            await client.events.publish("invoice.paid", {"currency": "EUR"})
        changed = await client.event_types.update("invoice.paid", description="Paid.")
        assert changed.description == "Paid."
        imported = await client.event_types.import_openapi(
            {"openapi": "3.1.0", "webhooks": {"invoice.voided": {"post": {}}}}
        )
        assert imported.created == ["invoice.voided"]
        names = [t.name async for t in client.event_types.list(limit=1)]
        assert names == ["invoice.paid", "invoice.voided"]
        assert (await client.event_types.get("invoice.voided")).archived is False
        assert (await client.event_types.archive("invoice.voided")).archived is True

        source = await client.sources.create("github", "github", "a-github-secret-1234")
        assert source.ingest_path.endswith(source.id)
        source = await client.sources.update(source.id, validate=True)
        assert source.validate_data is True
        assert (await client.sources.get_secret(source.id)).secret == "a-github-secret-1234"
        assert [s.id async for s in client.sources.list()] == [source.id]
        assert (await client.sources.refusals(source.id)).data == []
        tested = await client.sources.test_transformation(
            source.id, {"action": "opened"}, code="function handler(w) { return w; }"
        )
        assert tested.error is None and tested.result is not None
        await client.sources.delete(source.id)
        with pytest.raises(hookgate.NotFoundError):
            await client.sources.get(source.id)

        key = await client.api_keys.create("acme", tenant_id="acme")
        assert key.key and key.tenant_id == "acme"
        assert key.id in [k.id async for k in client.api_keys.list()]
        link = await client.portal_links.create("acme", expires_in=60)
        assert "/portal" in link.url
        await client.portal_links.revoke("acme")
        await client.api_keys.revoke(key.id)
        async with AsyncClient(base_url, key.key) as revoked:
            with pytest.raises(hookgate.AuthenticationError):
                await revoked.events.list_page()

        await client.endpoints.delete(endpoint.id)
        with pytest.raises(hookgate.NotFoundError) as gone:
            await client.endpoints.get(endpoint.id)
        assert gone.value.status_code == 404
