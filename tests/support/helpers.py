"""Small steps most tests take through the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.support.gateway import Gateway
from tests.support.receiver import wait_until


def make_endpoint(gw: Gateway, url: str, **fields: object) -> dict[str, Any]:
    response = gw.api.post("/v1/endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def publish(
    gw: Gateway,
    event_type: str = "user.created",
    data: dict[str, Any] | None = None,
    **fields: object,
) -> dict[str, Any]:
    response = gw.api.post(
        "/v1/events", json={"type": event_type, "data": data or {"n": 1}, **fields}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_delivery(
    gw: Gateway, delivery_id: str, status: str, timeout: float = 20
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = gw.api.get(f"/v1/deliveries/{delivery_id}").json()
        return body if body["status"] == status else None

    return wait_until(check, timeout, f"delivery {delivery_id} to be {status}")  # type: ignore[no-any-return]


def deliveries_of(gw: Gateway, event_id: str) -> list[dict[str, Any]]:
    response = gw.api.get(f"/v1/events/{event_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def create_key(gw: Gateway, **fields: object) -> dict[str, Any]:
    """A created API key (scoped with `tenant_id=`); its `key` is shown only here."""
    response = gw.api.post("/v1/api-keys", json={"name": "test", **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def client_with(gw: Gateway, key: str) -> httpx.Client:
    """An API client of the gateway that authenticates with `key`."""
    return httpx.Client(
        base_url=str(gw.api.base_url), timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


def parse_time(value: str) -> datetime:
    """An RFC 3339 UTC time as the API writes it (`...Z`)."""
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def error_locations(response: httpx.Response) -> list[list[Any]]:
    """Where a 422 says the problems are (`loc` of each)."""
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return [list(item["loc"]) for item in detail]


def assert_422_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert any(field in loc for loc in error_locations(response)), response.text


def post_raw(client: httpx.Client, url: str, raw: str) -> httpx.Response:
    """Send JSON text as written (lone surrogates cannot go through `json=`)."""
    return client.post(url, content=raw.encode(), headers={"Content-Type": "application/json"})


def anonymous_client(gw: Gateway) -> httpx.Client:
    """A client without the API key (what a provider, or a stranger, is)."""
    return httpx.Client(base_url=gw.api.base_url, timeout=30)


def oneshot_client(gw: Gateway) -> httpx.Client:
    """A client that never reuses a connection: a 500 makes uvicorn drop the one it used."""
    return httpx.Client(
        base_url=gw.api.base_url, timeout=30, headers={**gw.api.headers, "Connection": "close"}
    )


def archive_event_types(gw: Gateway) -> None:
    """Archive every event type through the API, after a test that made some: the API
    process then forgets them at once (it keeps what it read of a type for 2 s, and the
    next test's truncation of the tables does not reach its memory)."""
    for event_type in gw.api.get("/v1/event-types", params={"limit": 250}).json()["data"]:
        gw.api.delete(f"/v1/event-types/{event_type['name']}")
