"""Publishing events and reading them back (the OpenAPI document's events routes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import (
    assert_422_naming,
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    oneshot_client,
    parse_time,
    post_raw,
    publish,
)
from tests.support.receiver import Receiver, wait_until

MIB = 1024 * 1024
UNKNOWN_EVENT = "evt_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
UNKNOWN_DELIVERY = "dlv_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
UNKNOWN_ENDPOINT = "ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"


def _all_succeeded(gw: Gateway, event_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the event has `count` deliveries, every one succeeded."""

    def check() -> list[dict[str, Any]] | None:
        found = deliveries_of(gw, event_id)
        done = len(found) == count and all(d["status"] == "succeeded" for d in found)
        return found if done else None

    return wait_until(check, 20, f"{count} succeeded deliveries of {event_id}")  # type: ignore[no-any-return]


def _assert_no_events(gw: Gateway) -> None:
    response = gw.api.get("/v1/events")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


# which endpoints an event goes to


def test_type_and_source_filters_pick_the_endpoints(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "a-github-secret"}
    ).json()
    specs: dict[str, dict[str, Any]] = {
        "prefix": {"event_types": ["invoice.*"]},
        "exact": {"event_types": ["invoice.paid"]},
        "star": {"event_types": ["*"]},
        "absent": {},
        "other": {"event_types": ["user.created"]},
        "disabled": {"disabled": True},
        "t1": {"tenant_id": "t1"},
        "t2": {"tenant_id": "t2"},
        "source": {"source_ids": [source["id"]]},
    }
    ids = {
        name: make_endpoint(gw, receiver.url(f"{path}/{name}"), **fields)["id"]
        for name, fields in specs.items()
    }
    by_id = {v: k for k, v in ids.items()}

    # Without a tenant: not the tenants' endpoints (the tenant rule, test_tenant_routing).
    event = publish(gw, "invoice.paid", {"amount": 5})
    expected = {"prefix", "exact", "star", "absent"}
    assert event["deliveries"] == len(expected)
    for name in expected:
        [request] = receiver.wait_for(f"{path}/{name}", 1)
        assert json.loads(request.body)["id"] == event["id"]
    delivered = _all_succeeded(gw, event["id"], len(expected))
    assert {by_id[d["endpoint_id"]] for d in delivered} == expected
    assert all(d["event_id"] == event["id"] for d in delivered)
    for name in set(specs) - expected:
        assert receiver.received(f"{path}/{name}") == [], name

    # A type none of the invoice filters match.
    second = publish(gw, "user.created")
    expected_second = {"star", "absent", "other"}
    assert second["deliveries"] == len(expected_second)
    delivered = _all_succeeded(gw, second["id"], len(expected_second))
    assert {by_id[d["endpoint_id"]] for d in delivered} == expected_second
    for name in expected_second:
        receiver.wait_for(f"{path}/{name}", 1 + int(name in expected))
    for name in specs:
        count = int(name in expected) + int(name in expected_second)
        assert len(receiver.received(f"{path}/{name}")) == count, name


def test_prefix_filter_needs_the_dot(gw: Gateway, receiver: Receiver, path: str) -> None:
    make_endpoint(gw, receiver.url(path), event_types=["invoice.*"])
    assert publish(gw, "invoices.paid")["deliveries"] == 0
    assert publish(gw, "invoiceX")["deliveries"] == 0
    nested = publish(gw, "invoice.line.added")
    assert nested["deliveries"] == 1
    receiver.wait_for(path, 1)
    _all_succeeded(gw, nested["id"], 1)
    assert len(receiver.received(path)) == 1


def test_publish_with_no_matching_endpoint_is_stored_with_zero_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path), event_types=["order.created"])
    event = publish(gw, "user.created", {"x": 1})
    assert event["deliveries"] == 0
    assert deliveries_of(gw, event["id"]) == []
    assert gw.api.get(f"/v1/events/{event['id']}").status_code == 200


def test_tenant_id_restricts_to_that_tenants_endpoints(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    a = make_endpoint(gw, receiver.url(f"{path}/t1a"), tenant_id="t1")
    b = make_endpoint(gw, receiver.url(f"{path}/t1b"), tenant_id="t1", event_types=["invoice.*"])
    make_endpoint(gw, receiver.url(f"{path}/t1off"), tenant_id="t1", disabled=True)
    make_endpoint(gw, receiver.url(f"{path}/t1other"), tenant_id="t1", event_types=["user.*"])
    make_endpoint(gw, receiver.url(f"{path}/t2"), tenant_id="t2")
    make_endpoint(gw, receiver.url(f"{path}/none"))

    event = publish(gw, "invoice.paid", tenant_id="t1")
    assert event["deliveries"] == 2
    assert event["tenant_id"] == "t1"
    receiver.wait_for(f"{path}/t1a", 1)
    receiver.wait_for(f"{path}/t1b", 1)
    delivered = _all_succeeded(gw, event["id"], 2)
    assert {d["endpoint_id"] for d in delivered} == {a["id"], b["id"]}
    for name in ("t1off", "t1other", "t2", "none"):
        assert receiver.received(f"{path}/{name}") == [], name


def test_tenant_without_endpoints_gets_zero_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path), tenant_id="t1")
    event = publish(gw, "invoice.paid", tenant_id="nobody")
    assert event["deliveries"] == 0
    assert deliveries_of(gw, event["id"]) == []


def test_endpoint_ids_restrict_to_those_endpoints(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    a = make_endpoint(gw, receiver.url(f"{path}/a"))
    make_endpoint(gw, receiver.url(f"{path}/b"))
    c = make_endpoint(gw, receiver.url(f"{path}/c"), tenant_id="t1")

    event = publish(gw, "invoice.paid", endpoint_ids=[a["id"], c["id"]])
    assert event["deliveries"] == 2
    receiver.wait_for(f"{path}/a", 1)
    receiver.wait_for(f"{path}/c", 1)
    delivered = _all_succeeded(gw, event["id"], 2)
    assert {d["endpoint_id"] for d in delivered} == {a["id"], c["id"]}
    assert receiver.received(f"{path}/b") == []


@pytest.mark.parametrize("known_too", [False, True], ids=["only-unknown", "with-a-known-one"])
def test_unknown_endpoint_id_is_422_and_nothing_is_written(
    gw: Gateway, receiver: Receiver, path: str, known_too: bool
) -> None:
    known = make_endpoint(gw, receiver.url(path))
    wanted = [known["id"], UNKNOWN_ENDPOINT] if known_too else [UNKNOWN_ENDPOINT]
    response = gw.api.post(
        "/v1/events",
        json={
            "type": "invoice.paid",
            "data": {"n": 1},
            "endpoint_ids": wanted,
        },
    )
    assert_422_naming(response, "endpoint_ids")
    _assert_no_events(gw)
    assert gw.api.get(f"/v1/endpoints/{known['id']}/deliveries").json()["data"] == []


# what a publish request must look like


@pytest.mark.parametrize(
    "body",
    [
        {"type": "a.b", "data": [1, 2]},
        {"type": "a.b", "data": "text"},
        {"type": "a.b", "data": 3},
        {"type": "a.b", "data": None},
        {"type": "a.b"},
    ],
    ids=["list", "string", "number", "null", "missing"],
)
def test_data_must_be_an_object(gw: Gateway, body: dict[str, Any]) -> None:
    assert_422_naming(gw.api.post("/v1/events", json=body), "data")
    _assert_no_events(gw)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "", "data": {}},
        {"data": {}},
        {"type": "user created", "data": {}},
        {"type": "user/created", "data": {}},
        {"type": None, "data": {}},
        {"type": 5, "data": {}},
        {"type": "x" * 256, "data": {}},
    ],
    ids=["empty", "missing", "space", "slash", "null", "number", "too-long"],
)
def test_type_must_be_a_valid_name(gw: Gateway, body: dict[str, Any]) -> None:
    assert_422_naming(gw.api.post("/v1/events", json=body), "type")
    _assert_no_events(gw)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "a.b", "data": {}, "tenant_id": ""},
        {"type": "a.b", "data": {}, "endpoint_ids": "ep_1"},
        {"type": "a.b", "data": {}, "extra": 1},
    ],
    ids=["empty-tenant", "endpoint-ids-not-list", "extra-field"],
)
def test_other_invalid_publish_fields(gw: Gateway, body: dict[str, Any]) -> None:
    [field] = set(body) - {"type", "data"}
    assert_422_naming(gw.api.post("/v1/events", json=body), field)
    _assert_no_events(gw)


@pytest.mark.parametrize(
    "raw",
    [b'{"type": "a.b", "data": {', b"not json", b"", b"[]"],
    ids=["truncated", "not-json", "empty", "array"],
)
def test_malformed_json_is_422(gw: Gateway, raw: bytes) -> None:
    response = gw.api.post("/v1/events", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    _assert_no_events(gw)


def test_valid_type_characters_are_accepted(gw: Gateway) -> None:
    event = publish(gw, "Order_Item-v2.created.0", {"a": {"b": [1, None, "c"]}})
    assert event["type"] == "Order_Item-v2.created.0"


# body size limit


def _big_body(size: int) -> bytes:
    """A valid publish body of exactly `size` bytes."""
    head = b'{"type":"big.event","data":{"pad":"'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_over_1_mib_is_413(gw: Gateway) -> None:
    body = _big_body(MIB + 1)
    response = gw.api.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "detail" in response.json()
    _assert_no_events(gw)


def test_chunked_body_over_1_mib_is_413(gw: Gateway) -> None:
    body = _big_body(MIB + 64 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    request = gw.api.build_request(
        "POST", "/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = gw.api.send(request)
    assert response.status_code == 413, response.text
    _assert_no_events(gw)


def test_body_just_under_1_mib_is_accepted(gw: Gateway) -> None:
    body = _big_body(MIB - 16)
    response = gw.api.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    stored = gw.api.get(f"/v1/events/{response.json()['id']}").json()
    assert len(stored["data"]["pad"]) == len(json.loads(body)["data"]["pad"])


# Idempotency-Key


def test_idempotency_key_repeat_returns_the_first_event(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path))
    key = uuid.uuid4().hex
    body = {"type": "invoice.paid", "data": {"amount": 7}}
    first = gw.api.post("/v1/events", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    assert first.json()["deliveries"] == 1
    receiver.wait_for(path, 1)

    second = gw.api.post("/v1/events", json=body, headers={"Idempotency-Key": key})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["deliveries"] == first.json()["deliveries"]
    assert second.json()["data"] == first.json()["data"]
    assert second.json()["created_at"] == first.json()["created_at"]

    _all_succeeded(gw, first.json()["id"], 1)
    assert len(receiver.received(path)) == 1
    assert [e["id"] for e in gw.api.get("/v1/events").json()["data"]] == [first.json()["id"]]


def test_idempotency_key_with_a_different_body_is_409(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path))
    key = uuid.uuid4().hex
    first = gw.api.post(
        "/v1/events",
        json={"type": "invoice.paid", "data": {"amount": 7}},
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == 202, first.text
    for other in (
        {"type": "invoice.paid", "data": {"amount": 8}},
        {"type": "invoice.void", "data": {"amount": 7}},
        {"type": "invoice.paid", "data": {"amount": 7}, "tenant_id": "t1"},
    ):
        response = gw.api.post("/v1/events", json=other, headers={"Idempotency-Key": key})
        assert response.status_code == 409, (other, response.text)
        assert isinstance(response.json()["detail"], str)
    _all_succeeded(gw, first.json()["id"], 1)
    assert len(gw.api.get("/v1/events").json()["data"]) == 1
    assert len(receiver.received(path)) == 1


def test_different_idempotency_keys_make_different_events(gw: Gateway) -> None:
    body = {"type": "invoice.paid", "data": {"amount": 7}}
    first = gw.api.post("/v1/events", json=body, headers={"Idempotency-Key": "k-1"})
    second = gw.api.post("/v1/events", json=body, headers={"Idempotency-Key": "k-2"})
    third = gw.api.post("/v1/events", json=body)
    assert [r.status_code for r in (first, second, third)] == [202, 202, 202]
    assert len({r.json()["id"] for r in (first, second, third)}) == 3


def test_idempotency_keys_are_scoped_per_tenant_and_per_unscoped_key(gw: Gateway) -> None:
    """Another caller's use of a key neither blocks it nor tells that it is in use."""
    body = {"type": "order.placed", "data": {"order": 42}}
    key = {"Idempotency-Key": "order-42"}
    tenant_a = [str(create_key(gw, tenant_id="tenantA")["key"]) for _ in range(2)]
    tenant_b = str(create_key(gw, tenant_id="tenantB")["key"])
    admin = str(create_key(gw)["key"])
    with (
        client_with(gw, tenant_b) as b,
        client_with(gw, tenant_a[0]) as a,
        client_with(gw, tenant_a[1]) as a_again,
        client_with(gw, admin) as other_admin,
    ):
        first_b = b.post("/v1/events", json=body, headers=key)
        first_a = a.post("/v1/events", json={**body, "data": {"order": "a"}}, headers=key)
        bootstrap = gw.api.post("/v1/events", json=body, headers=key)
        second_admin = other_admin.post("/v1/events", json=body, headers=key)
        assert [r.status_code for r in (first_b, first_a, bootstrap, second_admin)] == [
            202,
            202,
            202,
            202,
        ]
        # Within one tenant (any of its keys), the key is the same key.
        repeat = a_again.post("/v1/events", json={**body, "data": {"order": "a"}}, headers=key)
        assert repeat.status_code == 200 and repeat.json()["id"] == first_a.json()["id"]
        assert b.post("/v1/events", json=body, headers=key).json()["id"] == first_b.json()["id"]
    assert gw.api.post("/v1/events", json=body, headers=key).status_code == 200
    assert len({r.json()["id"] for r in (first_b, first_a, bootstrap, second_admin)}) == 4


# reading events


def test_publish_answer_has_the_contract_fields(gw: Gateway) -> None:
    before = datetime.now(UTC)
    response = gw.api.post("/v1/events", json={"type": "user.created", "data": {"id": 1}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {"id", "type", "data", "created_at", "deliveries"}
    assert body["id"].startswith("evt_")
    assert body["type"] == "user.created"
    assert body["data"] == {"id": 1}
    assert body["deliveries"] == 0
    created = parse_time(body["created_at"])
    assert before - timedelta(minutes=1) < created < datetime.now(UTC) + timedelta(minutes=1)


def test_list_events_newest_first_with_filters_and_pages(gw: Gateway) -> None:
    e1 = publish(gw, "invoice.paid", {"i": 1})
    e2 = publish(gw, "user.created", {"i": 2}, tenant_id="t1")
    e3 = publish(gw, "invoice.paid", {"i": 3}, tenant_id="t1")
    e4 = publish(gw, "invoice.paid", {"i": 4}, tenant_id="t2")
    e5 = publish(gw, "order.created", {"i": 5})

    everything = gw.api.get("/v1/events")
    assert everything.status_code == 200, everything.text
    assert [e["id"] for e in everything.json()["data"]] == [e["id"] for e in (e5, e4, e3, e2, e1)]
    assert everything.json()["next_cursor"] is None
    assert everything.json()["data"][1]["data"] == {"i": 4}
    assert everything.json()["data"][1]["tenant_id"] == "t2"

    by_type = gw.api.get("/v1/events", params={"type": "invoice.paid"}).json()
    assert [e["id"] for e in by_type["data"]] == [e4["id"], e3["id"], e1["id"]]

    by_tenant = gw.api.get("/v1/events", params={"tenant_id": "t1"}).json()
    assert [e["id"] for e in by_tenant["data"]] == [e3["id"], e2["id"]]

    both = gw.api.get("/v1/events", params={"type": "invoice.paid", "tenant_id": "t1"}).json()
    assert [e["id"] for e in both["data"]] == [e3["id"]]

    assert gw.api.get("/v1/events", params={"type": "nope"}).json() == {
        "data": [],
        "next_cursor": None,
    }

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = gw.api.get("/v1/events", params=params).json()
        sizes.append(len(page["data"]))
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == [e["id"] for e in (e5, e4, e3, e2, e1)]

    typed_page = gw.api.get("/v1/events", params={"type": "invoice.paid", "limit": 2}).json()
    assert [e["id"] for e in typed_page["data"]] == [e4["id"], e3["id"]]
    rest = gw.api.get(
        "/v1/events",
        params={"type": "invoice.paid", "limit": 2, "cursor": typed_page["next_cursor"]},
    ).json()
    assert [e["id"] for e in rest["data"]] == [e1["id"]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "251"])
def test_list_events_rejects_bad_limit(gw: Gateway, limit: str) -> None:
    assert_422_naming(gw.api.get("/v1/events", params={"limit": limit}), "limit")


def test_get_event_returns_data_as_an_object(gw: Gateway) -> None:
    data = {
        "amount": 1200,
        "currency": "EUR",
        "nested": {"list": [1, "two", None, 3.5]},
        "text": "caf\u00e9 \u2603",
        "flag": True,
    }
    event = publish(gw, "invoice.paid", data, tenant_id="t1")
    response = gw.api.get(f"/v1/events/{event['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == event["id"]
    assert body["type"] == "invoice.paid"
    assert body["data"] == data
    assert isinstance(body["data"], dict)
    assert body["tenant_id"] == "t1"
    assert body["created_at"] == event["created_at"]


@pytest.mark.parametrize("suffix", ["", "/deliveries"])
def test_unknown_event_is_404(gw: Gateway, suffix: str) -> None:
    response = gw.api.get(f"/v1/events/{UNKNOWN_EVENT}{suffix}")
    assert response.status_code == 404, response.text
    assert isinstance(response.json()["detail"], str)


def test_event_deliveries_one_per_matched_endpoint(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoints = [make_endpoint(gw, receiver.url(f"{path}/{i}")) for i in range(3)]
    make_endpoint(gw, receiver.url(f"{path}/off"), disabled=True)
    event = publish(gw, "invoice.paid")
    assert event["deliveries"] == 3

    listed = deliveries_of(gw, event["id"])
    assert len(listed) == 3
    assert {d["endpoint_id"] for d in listed} == {e["id"] for e in endpoints}
    assert len({d["id"] for d in listed}) == 3
    for delivery in listed:
        assert delivery["id"].startswith("dlv_")
        assert delivery["event_id"] == event["id"]
        assert delivery["status"] in ("pending", "succeeded", "failed")

    for i in range(3):
        receiver.wait_for(f"{path}/{i}", 1)
    done = _all_succeeded(gw, event["id"], 3)
    for delivery in done:
        assert delivery["attempt_count"] == 1
        assert delivery["next_attempt_at"] is None
    assert receiver.received(f"{path}/off") == []

    succeeded = gw.api.get(
        f"/v1/events/{event['id']}/deliveries", params={"status": "succeeded"}
    ).json()
    assert len(succeeded["data"]) == 3
    failed = gw.api.get(f"/v1/events/{event['id']}/deliveries", params={"status": "failed"}).json()
    assert failed == {"data": [], "next_cursor": None}

    paged = gw.api.get(f"/v1/events/{event['id']}/deliveries", params={"limit": 2}).json()
    assert len(paged["data"]) == 2
    assert paged["next_cursor"] is not None


@pytest.mark.parametrize("suffix", ["", "/retry"])
def test_unknown_delivery_is_404(gw: Gateway, suffix: str) -> None:
    method = "POST" if suffix else "GET"
    response = gw.api.request(method, f"/v1/deliveries/{UNKNOWN_DELIVERY}{suffix}")
    assert response.status_code == 404, response.text
    assert isinstance(response.json()["detail"], str)


# more Idempotency-Key and endpoint_ids cases


def test_concurrent_repeats_of_one_idempotency_key_make_one_event(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path))
    key = uuid.uuid4().hex
    body = {"type": "invoice.paid", "data": {"amount": 9}}
    headers = {**gw.api.headers, "Idempotency-Key": key}

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=gw.api.base_url, headers=headers, timeout=30) as client:
            return client.post("/v1/events", json=body)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [202], [r.text for r in responses]
    [event_id] = {r.json()["id"] for r in responses}
    assert {r.json()["deliveries"] for r in responses} == {1}

    receiver.wait_for(path, 1)
    _all_succeeded(gw, event_id, 1)
    assert len(receiver.received(path)) == 1
    assert [e["id"] for e in gw.api.get("/v1/events").json()["data"]] == [event_id]


def test_idempotency_key_of_a_refused_request_is_not_used_up(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    key = uuid.uuid4().hex
    refused = gw.api.post(
        "/v1/events",
        json={
            "type": "invoice.paid",
            "data": {},
            "endpoint_ids": [UNKNOWN_ENDPOINT],
        },
        headers={"Idempotency-Key": key},
    )
    assert_422_naming(refused, "endpoint_ids")
    accepted = gw.api.post(
        "/v1/events",
        json={
            "type": "invoice.paid",
            "data": {},
            "endpoint_ids": [endpoint["id"]],
        },
        headers={"Idempotency-Key": key},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["deliveries"] == 1
    receiver.wait_for(path, 1)


def test_repeated_endpoint_id_gets_one_delivery(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    event = publish(gw, "invoice.paid", endpoint_ids=[endpoint["id"], endpoint["id"]])
    assert event["deliveries"] == 1
    receiver.wait_for(path, 1)
    _all_succeeded(gw, event["id"], 1)
    assert len(receiver.received(path)) == 1


# odd input: refused before anything is stored, never a 500


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_422(gw: Gateway, receiver: Receiver, path: str, number: str) -> None:
    make_endpoint(gw, receiver.url(path))
    with oneshot_client(gw) as client:
        response = post_raw(client, "/v1/events", f'{{"type": "a.b", "data": {{"n": {number}}}}}')
        assert response.status_code == 422, response.text
        _assert_no_events(gw)


def test_deeply_nested_data_is_refused_or_readable(gw: Gateway) -> None:
    depth = 300
    raw = '{"type": "deep.event", "data": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    with oneshot_client(gw) as client:
        response = post_raw(client, "/v1/events", raw)
        assert response.status_code in (202, 413, 422), response.text
        listed = client.get("/v1/events")
        assert listed.status_code == 200, listed.text
        if response.status_code == 202:
            assert client.get(f"/v1/events/{response.json()['id']}").status_code == 200
        else:
            assert listed.json()["data"] == []


@pytest.mark.parametrize(
    "fields",
    [
        '"type": "a.b", "data": {"s": "\\ud800"}',
        '"type": "a.b", "data": {"\\udc00": 1}',
        '"type": "a.b", "data": {}, "tenant_id": "\\udfff"',
    ],
    ids=["data-value", "data-key", "tenant_id"],
)
def test_lone_surrogate_is_422(gw: Gateway, fields: str) -> None:
    with oneshot_client(gw) as client:
        response = post_raw(client, "/v1/events", f"{{{fields}}}")
        assert response.status_code == 422, response.text
        assert client.get("/v1/events").json()["data"] == []


def test_nul_in_tenant_id_is_stored_or_refused(request: pytest.FixtureRequest, gw: Gateway) -> None:
    with oneshot_client(gw) as client:
        response = client.post(
            "/v1/events", json={"type": "a.b", "data": {}, "tenant_id": "a\u0000b"}
        )
        assert response.status_code in (202, 422), response.text


def test_nul_in_endpoint_ids_is_422(request: pytest.FixtureRequest, gw: Gateway) -> None:
    with oneshot_client(gw) as client:
        response = client.post(
            "/v1/events", json={"type": "a.b", "data": {}, "endpoint_ids": ["ep_\u0000"]}
        )
        assert_422_naming(response, "endpoint_ids")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/events/%00",
        "/v1/events/%00/deliveries",
        "/v1/deliveries/%00",
        "/v1/events?tenant_id=%00",
        "/v1/events?type=%00",
        "/v1/events?cursor=%00",
    ],
    ids=["event", "event-deliveries", "delivery", "tenant-filter", "type-filter", "cursor"],
)
def test_nul_in_the_request_line_is_not_a_500(
    request: pytest.FixtureRequest, gw: Gateway, url: str
) -> None:
    with oneshot_client(gw) as client:
        response = client.get(url)
    expected = (404,) if "?" not in url else (200, 422)
    assert response.status_code in expected, response.text
