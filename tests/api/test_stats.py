"""`/v1/stats` and `/v1/endpoints/{id}/stats`: figures of real deliveries to a receiver
(succeeding, failing, timing out), read from the database, on both backends."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.gateway import Gateway
from tests.support.helpers import (
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    parse_time,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply

UNKNOWN_ENDPOINT = "ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def _durations(gw: Gateway, delivery_id: str) -> list[int]:
    body = gw.api.get(f"/v1/deliveries/{delivery_id}").json()
    return [attempt["duration_ms"] for attempt in body["attempts"]]


def _deliver(gw: Gateway, receiver: Receiver, name: str) -> dict[str, Any]:
    """Three endpoints (one answering 200, one 500, one too slowly) and one event."""
    ok, failing, slow = f"/stats/{name}/ok", f"/stats/{name}/failing", f"/stats/{name}/slow"
    receiver.set(failing, Reply(500, b"broken"))
    receiver.set(slow, Reply(200, delay=5))  # past GATEWAY_DELIVERY_TIMEOUT (2 s)
    endpoints = {
        "ok": make_endpoint(gw, receiver.url(ok), tenant_id="acme"),
        "failing": make_endpoint(gw, receiver.url(failing), tenant_id="globex"),
        "slow": make_endpoint(gw, receiver.url(slow), tenant_id="acme"),
    }
    # An event of a tenant goes to that tenant's endpoints alone.
    by_endpoint = {
        d["endpoint_id"]: d
        for tenant in ("acme", "globex")
        for d in deliveries_of(gw, publish(gw, tenant_id=tenant)["id"])
    }
    deliveries = {name: by_endpoint[e["id"]] for name, e in endpoints.items()}
    wait_delivery(gw, deliveries["ok"]["id"], "succeeded")
    wait_delivery(gw, deliveries["failing"]["id"], "failed", timeout=40)
    wait_delivery(gw, deliveries["slow"]["id"], "failed", timeout=60)
    return {"endpoints": endpoints, "deliveries": deliveries}


def test_figures_of_real_deliveries(gw: Gateway, receiver: Receiver) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    made = _deliver(gw, receiver, gw.backend)
    durations = {name: _durations(gw, d["id"]) for name, d in made["deliveries"].items()}
    # The retry schedule has three delays: four attempts for each failing delivery.
    assert [len(durations[n]) for n in ("ok", "failing", "slow")] == [1, 4, 4]
    every = [ms for values in durations.values() for ms in values]
    until = datetime.now(UTC) + timedelta(minutes=1)
    params = {"since": _iso(start), "until": _iso(until), "bucket": "minute"}

    response = gw.api.get("/v1/stats", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket"] == "minute"
    assert (body["attempts"], body["succeeded"], body["failed"]) == (9, 1, 8)
    # After each of the first three failures a retry was due; the fourth was the last.
    assert body["retried"] == 6
    assert body["success_rate"] == round(1 / 9, 4)
    assert body["status_classes"] == {
        "1xx": 0,
        "2xx": 1,
        "3xx": 0,
        "4xx": 0,
        "5xx": 4,
        "none": 4,
    }
    # Nearest rank over the attempts as the attempt log shows them, to the millisecond.
    assert body["latency_ms"] == {f"p{p}": _nearest_rank(every, p) for p in (50, 95, 99)}
    assert body["latency_ms"]["p99"] >= 1900  # a timed-out attempt waited ~2 s

    # Every minute of the range, oldest first, summing to the totals.
    starts = [parse_time(b["start"]) for b in body["buckets"]]
    assert starts == sorted(starts)
    assert all(s.second == 0 and s.microsecond == 0 for s in starts)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(starts))
    assert starts[0] <= start < starts[0] + timedelta(minutes=1)
    assert sum(b["attempts"] for b in body["buckets"]) == 9
    assert sum(b["succeeded"] for b in body["buckets"]) == 1
    empty = [b for b in body["buckets"] if b["attempts"] == 0]
    assert empty and all(b["success_rate"] is None for b in empty)
    assert all(b["latency_ms"]["p50"] is None for b in empty)

    # The same attempts by hour: the same totals.
    hourly = gw.api.get("/v1/stats", params={**params, "bucket": "hour"}).json()
    assert (hourly["attempts"], hourly["succeeded"], hourly["retried"]) == (9, 1, 6)
    assert hourly["latency_ms"] == body["latency_ms"]

    # One endpoint's figures.
    failing = made["endpoints"]["failing"]["id"]
    one = gw.api.get(f"/v1/endpoints/{failing}/stats", params=params).json()
    assert (one["attempts"], one["succeeded"], one["failed"]) == (4, 0, 4)
    assert one["success_rate"] == 0.0
    assert one["status_classes"]["5xx"] == 4
    assert one["latency_ms"] == {
        f"p{p}": _nearest_rank(durations["failing"], p) for p in (50, 95, 99)
    }

    # Filtered by tenant: acme holds the succeeding and the slow endpoint.
    acme = gw.api.get("/v1/stats", params={**params, "tenant_id": "acme"}).json()
    assert (acme["attempts"], acme["succeeded"], acme["status_classes"]["none"]) == (5, 1, 4)

    # A range before anything happened: zeros and nulls, not errors.
    before = {
        "since": _iso(start - timedelta(hours=3)),
        "until": _iso(start - timedelta(hours=2)),
    }
    quiet = gw.api.get("/v1/stats", params=before).json()
    assert quiet["attempts"] == 0 and quiet["success_rate"] is None
    assert quiet["latency_ms"] == {"p50": None, "p95": None, "p99": None}


def test_tenant_keys_see_their_tenant_alone(gw: Gateway, receiver: Receiver) -> None:
    ok = make_endpoint(gw, receiver.url("/stats/scope/ok"), tenant_id="acme")
    receiver.set("/stats/scope/other", Reply(500))
    other = make_endpoint(gw, receiver.url("/stats/scope/other"), tenant_id="globex")
    events = [publish(gw, tenant_id=tenant) for tenant in ("acme", "globex")]
    for delivery in [d for e in events for d in deliveries_of(gw, e["id"])]:
        if delivery["endpoint_id"] == ok["id"]:
            wait_delivery(gw, delivery["id"], "succeeded")
        else:
            wait_delivery(gw, delivery["id"], "failed", timeout=40)
    key = create_key(gw, tenant_id="acme")["key"]
    with client_with(gw, key) as acme:
        mine = acme.get("/v1/stats").json()
        assert (mine["attempts"], mine["succeeded"]) == (1, 1)
        # Asking for another tenant's figures shows nothing of theirs.
        asked = acme.get("/v1/stats", params={"tenant_id": "globex"}).json()
        assert asked["attempts"] == 0
        assert acme.get(f"/v1/endpoints/{ok['id']}/stats").json()["attempts"] == 1
        response = acme.get(f"/v1/endpoints/{other['id']}/stats")
        assert response.status_code == 404, response.text
    assert gw.api.get("/v1/stats").json()["attempts"] == 5
    assert gw.api.get(f"/v1/endpoints/{UNKNOWN_ENDPOINT}/stats").status_code == 404


def test_bad_ranges_are_refused_naming_the_limit(gw: Gateway) -> None:
    now = datetime.now(UTC)
    backwards = gw.api.get(
        "/v1/stats", params={"since": _iso(now), "until": _iso(now - timedelta(hours=1))}
    )
    assert backwards.status_code == 422, backwards.text
    assert "until must be after since" in backwards.text
    too_long = gw.api.get(
        "/v1/stats",
        params={"since": _iso(now - timedelta(days=2)), "until": _iso(now), "bucket": "minute"},
    )
    assert too_long.status_code == 422, too_long.text
    assert "at most 1 day with bucket=minute" in too_long.text
    hours = gw.api.get(
        "/v1/stats", params={"since": _iso(now - timedelta(days=40)), "bucket": "hour"}
    )
    assert hours.status_code == 422 and "at most 31 days" in hours.text
    # The same range by day is fine.
    days = gw.api.get(
        "/v1/stats", params={"since": _iso(now - timedelta(days=40)), "bucket": "day"}
    )
    assert days.status_code == 200, days.text
    assert len(days.json()["buckets"]) in (40, 41)
    bad = gw.api.get("/v1/stats", params={"bucket": "week"})
    assert bad.status_code == 422 and "bucket" in bad.text
    garbled = gw.api.get("/v1/stats", params={"since": "yesterday"})
    assert garbled.status_code == 422 and "since" in garbled.text
    anonymous = gw.api.get("/v1/stats", headers={"Authorization": ""})
    assert anonymous.status_code == 401
