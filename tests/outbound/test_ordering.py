"""Ordered delivery (docs/ordering.md): an ordered endpoint receives the events of one
ordering key one at a time, in publish order; other keys and other endpoints go as fast
as ever. On both backends, over real HTTP."""

from __future__ import annotations

import itertools
import json
from typing import Any

import stripe

from tests.support.gateway import Gateway
from tests.support.helpers import assert_422_naming, make_endpoint, wait_delivery
from tests.support.receiver import Receiver, Reply

# Three retries, a tenth of a second apart: a head fails for good within half a second.
QUICK_RETRIES = {"schedule": [0.1, 0.1, 0.1]}


def _publish_batch(gw: Gateway, keys: list[str | None]) -> list[dict[str, Any]]:
    response = gw.api.post(
        "/v1/events/batch",
        json={
            "events": [
                {"type": "order.updated", "data": {"i": i}, "ordering_key": key}
                if key is not None
                else {"type": "order.updated", "data": {"i": i}}
                for i, key in enumerate(keys)
            ]
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


def _ids_of_key(gw: Gateway, key: str) -> list[str]:
    """The key's events as `GET /v1/events?ordering_key=` lists them, page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"ordering_key": key, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = gw.api.get("/v1/events", params=params).json()
        ids += [e["id"] for e in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def _delivery_of(gw: Gateway, event_id: str, endpoint_id: str) -> dict[str, Any]:
    [delivery] = [
        d
        for d in gw.api.get(f"/v1/events/{event_id}/deliveries").json()["data"]
        if d["endpoint_id"] == endpoint_id
    ]
    return delivery  # type: ignore[no-any-return]


def test_each_key_arrives_in_order_one_at_a_time_and_keys_do_not_wait_for_each_other(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    ordered, unordered = f"{path}/ordered", f"{path}/unordered"
    receiver.set(ordered, Reply(200, delay=0.05))
    endpoint = make_endpoint(gw, receiver.url(ordered), ordered=True)
    assert endpoint["ordered"] is True
    make_endpoint(gw, receiver.url(unordered))
    events = _publish_batch(gw, ["a", "b", None] * 6)
    assert [e["sequence"] for e in events[:6]] == [1, 1, None, 2, 2, None]
    assert {e["ordering_key"] for e in events} == {"a", "b", None}
    receiver.wait_for(ordered, 18)
    receiver.wait_for(unordered, 18)
    got = receiver.received(ordered)
    for key in ("a", "b"):
        listed = _ids_of_key(gw, key)
        assert listed == [e["id"] for e in events if e["ordering_key"] == key]
        arrivals = [r for r in got if r.headers["webhook-id"] in listed]
        assert [r.headers["webhook-id"] for r in arrivals] == listed
        # One at a time: each sent only after the one before was answered.
        assert all(
            later.at - earlier.at >= 0.045 for earlier, later in itertools.pairwise(arrivals)
        ), [r.at for r in arrivals]
        delivery = _delivery_of(gw, listed[-1], endpoint["id"])
        assert (delivery["ordering_key"], delivery["sequence"]) == (key, 6)
    # The two keys went side by side, and events without a key did not wait at all.
    first_b = min(r.at for r in got if r.headers["webhook-id"] in _ids_of_key(gw, "b"))
    last_a = max(r.at for r in got if r.headers["webhook-id"] in _ids_of_key(gw, "a"))
    assert first_b < last_a
    # Deliveries to unordered endpoints carry no key: nothing holds them back.
    assert gw.sql("SELECT count(*) FROM delivery WHERE ordering_key IS NOT NULL") == [(12,)]


def test_a_head_that_finally_fails_lets_its_key_move_on(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    # Four attempts (three quick retries), all refused.
    receiver.set(path, *[Reply(503)] * 4, Reply(200))
    endpoint = make_endpoint(gw, receiver.url(path), ordered=True, retry_policy=QUICK_RETRIES)
    events = _publish_batch(gw, ["k", "k", "k"])
    receiver.wait_for(path, 6)
    assert [r.headers["webhook-id"] for r in receiver.received(path)] == [events[0]["id"]] * 4 + [
        events[1]["id"],
        events[2]["id"],
    ]
    head = _delivery_of(gw, events[0]["id"], endpoint["id"])
    assert (head["status"], head["attempt_count"]) == ("failed", 4)


def test_a_strict_key_waits_for_its_failed_head_to_be_skipped(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    # Both heads are refused all four attempts; then everything is answered 200.
    receiver.set(path, *[Reply(503)] * 8, Reply(200))
    endpoint = make_endpoint(gw, receiver.url(path), ordered="strict", retry_policy=QUICK_RETRIES)
    assert endpoint["ordered"] == "strict"
    a1, c1, a2, c2 = _publish_batch(gw, ["a", "c", "a", "c"])
    heads = [_delivery_of(gw, e["id"], endpoint["id"]) for e in (a1, c1)]
    for head in heads:
        wait_delivery(gw, head["id"], "failed")
    # Another key still goes; both failed heads hold theirs.
    [later] = _publish_batch(gw, ["other"])
    receiver.wait_for(path, 9)
    assert receiver.received(path)[-1].headers["webhook-id"] == later["id"]
    assert _delivery_of(gw, a2["id"], endpoint["id"])["status"] == "pending"

    # Skipped by hand, the failed head lets its key go; the skip is shown.
    skipped = gw.api.post(f"/v1/deliveries/{heads[0]['id']}/skip")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["status"] == "skipped"
    receiver.wait_for(path, 10)
    assert receiver.received(path)[-1].headers["webhook-id"] == a2["id"]
    # What cannot be skipped, said so.
    again = gw.api.post(f"/v1/deliveries/{heads[0]['id']}/skip")
    assert again.status_code == 409 and "skipped" in again.json()["detail"], again.text
    done = _delivery_of(gw, a2["id"], endpoint["id"])
    assert gw.api.post(f"/v1/deliveries/{done['id']}/skip").status_code == 409
    # The command line's skip is the same service: the same refusal, said on stderr.
    cli = gw.run_cli("deliveries", "skip", done["id"])
    assert cli.returncode == 1 and "succeeded" in cli.stderr, cli.stderr
    assert gw.api.post("/v1/deliveries/dlv_nope/skip").status_code == 404
    listed = gw.api.get(
        f"/v1/endpoints/{endpoint['id']}/deliveries", params={"status": "skipped"}
    ).json()["data"]
    assert [d["id"] for d in listed] == [heads[0]["id"]]
    # All this while, the sweeper (every 1 s, after 2 s of grace) left the held
    # delivery alone: it was dispatched once, when published.
    [(dispatched, created)] = gw.sql(
        f"SELECT dispatched_at, created_at FROM delivery WHERE event_id = '{c2['id']}'"
    )
    assert dispatched == created

    # Made merely ordered, the endpoint lets the key of the other failed head go at once.
    response = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"ordered": True})
    assert response.status_code == 200 and response.json()["ordered"] is True
    receiver.wait_for(path, 11)
    assert receiver.received(path)[-1].headers["webhook-id"] == c2["id"]
    assert _delivery_of(gw, c1["id"], endpoint["id"])["status"] == "failed"


def test_made_unordered_an_endpoint_sends_what_its_keys_held_back(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(503), Reply(200))
    endpoint = make_endpoint(gw, receiver.url(path), ordered=True, retry_policy={"schedule": [60]})
    first, second = _publish_batch(gw, ["k", "k"])
    # The head was refused and waits a minute for its retry; the next waits behind it.
    receiver.wait_for(path, 1)
    response = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"ordered": False})
    assert response.status_code == 200 and response.json()["ordered"] is False
    receiver.wait_for(path, 2)
    assert receiver.received(path)[-1].headers["webhook-id"] == second["id"]
    assert _delivery_of(gw, first["id"], endpoint["id"])["status"] == "pending"


def test_ordering_fields_are_checked(gw: Gateway, receiver: Receiver, path: str) -> None:
    for key in ("", "k" * 201):
        response = gw.api.post("/v1/events", json={"type": "a.b", "data": {}, "ordering_key": key})
        assert_422_naming(response, "ordering_key")
    response = gw.api.post(
        "/v1/events/batch",
        json={"events": [{"type": "a.b", "data": {}, "ordering_key": "\x00"}]},
    )
    assert_422_naming(response, "ordering_key")
    response = gw.api.post("/v1/endpoints", json={"url": receiver.url(path), "ordered": "yes"})
    assert_422_naming(response, "ordered")
    endpoint = make_endpoint(gw, receiver.url(path))
    assert endpoint["ordered"] is False
    response = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"ordered": None})
    assert_422_naming(response, "ordered")
    # The command line publishes with a key too, one event or a batch.
    published = gw.run_cli(
        "events", "publish", "a.b", "--data", "{}", "--ordering-key", "cli", "--json"
    )
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["sequence"] == 1
    created = gw.run_cli("endpoints", "create", receiver.url(path), "--ordered", "strict", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["ordered"] == "strict"
    for cursor in ("evt_x", "9" * 30):
        response = gw.api.get("/v1/events", params={"ordering_key": "k", "cursor": cursor})
        assert_422_naming(response, "cursor")


def test_a_source_takes_the_ordering_key_from_a_field_of_what_it_receives(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secret = "whsec_test_stripe_ordering"
    refused = gw.api.post(
        "/v1/sources",
        json={
            "name": "stripe",
            "provider": "stripe",
            "secret": secret,
            "options": {"ordering_key_field": "data..customer"},
        },
    )
    assert_422_naming(refused, "options")
    created = gw.api.post(
        "/v1/sources",
        json={
            "name": "stripe",
            "provider": "stripe",
            "secret": secret,
            "options": {"ordering_key_field": "data.object.customer"},
        },
    )
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["options"] == {"ordering_key_field": "data.object.customer"}
    make_endpoint(gw, receiver.url(path), source_ids=[source["id"]], ordered=True)
    ids = []
    for i, customer in enumerate(["cus_1", "cus_1", None]):
        body = json.dumps(
            {"id": f"evt_{i}", "type": "invoice.paid", "data": {"object": {"customer": customer}}}
        )
        header = stripe.WebhookSignature.generate_signature_header(body, secret)
        response = gw.api.post(
            source["ingest_path"],
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["event_id"])
    shown = [gw.api.get(f"/v1/events/{i}").json() for i in ids]
    assert [(e["ordering_key"], e["sequence"]) for e in shown] == [
        ("cus_1", 1),
        ("cus_1", 2),
        (None, None),
    ]
    receiver.wait_for(path, 3)
    assert _ids_of_key(gw, "cus_1") == ids[:2]
