"""Endpoint health: 410 disables at once, long failure disables, success resets, the breaker
spaces out attempts to a failing endpoint, and each disable is announced as an event."""

from __future__ import annotations

import json

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until


def _endpoint(gw: Gateway, endpoint_id: str) -> dict[str, object]:
    return gw.api.get(f"/v1/endpoints/{endpoint_id}").json()  # type: ignore[no-any-return]


def test_410_gone_disables_the_endpoint_and_announces_it(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/gone", Reply(410))
    gone = make_endpoint(gw, receiver.url(f"{path}/gone"), tenant_id="acme")
    watcher = make_endpoint(
        gw, receiver.url(f"{path}/ops"), tenant_id="acme", event_types=["endpoint.disabled"]
    )
    event = publish(gw, "order.created", tenant_id="acme")
    wait_until(lambda: _endpoint(gw, gone["id"])["disabled"], 15, "the endpoint disabled")
    shown = _endpoint(gw, gone["id"])
    assert "410" in str(shown["disabled_reason"])
    delivery = next(d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == gone["id"])
    detail = wait_delivery(gw, delivery["id"], "failed")
    assert detail["attempt_count"] == 1  # no retries to a gone endpoint
    # The disable is announced once, to the endpoints that subscribed to it.
    [notice] = receiver.wait_for(f"{path}/ops", 1)
    payload = json.loads(notice.body)
    assert payload["type"] == "endpoint.disabled"
    assert payload["data"]["endpoint_id"] == gone["id"]
    assert "410" in payload["data"]["reason"]
    assert len(receiver.received(f"{path}/gone")) == 1
    assert watcher["id"] != gone["id"]


def test_failing_for_too_long_disables_and_success_resets(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(500))
    endpoint = make_endpoint(gw, receiver.url(path))
    publish(gw)
    wait_until(lambda: _endpoint(gw, endpoint["id"])["failing_since"], 15, "failing_since set")
    # It has been failing for six days (GATEWAY_DISABLE_AFTER is five by default).
    gw.sql(
        f"UPDATE endpoint SET failing_since = '2000-01-01 00:00:00' WHERE id = '{endpoint['id']}'"
    )
    publish(gw)
    wait_until(lambda: _endpoint(gw, endpoint["id"])["disabled"], 15, "the endpoint disabled")
    assert "failed since" in str(_endpoint(gw, endpoint["id"])["disabled_reason"])
    # Re-enabled by hand and answering again: healthy.
    receiver.set(path, Reply(200))
    gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"disabled": False})
    shown = _endpoint(gw, endpoint["id"])
    assert shown["disabled_reason"] is None and shown["failing_since"] is None
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")


def test_success_clears_failing_since(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(503), Reply(200))
    endpoint = make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    wait_until(lambda: _endpoint(gw, endpoint["id"])["failing_since"] is None, 10, "reset")


def test_breaker_spaces_out_attempts_to_a_failing_endpoint(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/down", Reply(503))
    down = make_endpoint(gw, receiver.url(f"{path}/down"))
    make_endpoint(gw, receiver.url(f"{path}/up"))
    events = [publish(gw, "tick", {"i": i}) for i in range(20)]
    # The healthy endpoint gets everything at full speed...
    receiver.wait_for(f"{path}/up", 20)
    # ...while the failing one sees the breaker open after 5 failures in a row: of the
    # 20 first attempts (and their retries), most are put off rather than sent.
    wait_until(
        lambda: (
            gw.sql(
                "SELECT count(*) FROM endpoint WHERE circuit_open_until "
                f"IS NOT NULL AND id = '{down['id']}'"
            )[0][0]
            == 1
        ),
        15,
        "the breaker open",
    )
    sent = len(receiver.received(f"{path}/down"))
    assert sent < 20, sent
    pending = [
        d
        for e in events
        for d in deliveries_of(gw, e["id"])
        if d["endpoint_id"] == down["id"] and d["status"] == "pending"
    ]
    assert pending, "deliveries to the failing endpoint wait for the breaker"
    # Put off by the breaker is not an attempt: some have fewer attempts than sends.
    assert sum(d["attempt_count"] for d in pending) < 4 * len(pending)


def test_enabling_an_enabled_endpoint_leaves_its_breaker_alone(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    """Else its owner could keep a failing endpoint's attempts coming by re-enabling it."""
    receiver.set(path, Reply(503))
    down = make_endpoint(gw, receiver.url(path))
    for i in range(8):
        publish(gw, "tick", {"i": i})
    health = (
        "SELECT consecutive_failures, circuit_open_until, failing_since FROM endpoint "
        f"WHERE id = '{down['id']}'"
    )
    wait_until(lambda: gw.sql(health)[0][1] is not None, 15, "the breaker open")
    before = gw.sql(health)[0]
    response = gw.api.patch(f"/v1/endpoints/{down['id']}", json={"disabled": False})
    assert response.status_code == 200, response.text
    after = gw.sql(health)[0]
    assert after[1] is not None and after[2] is not None  # still open, still failing
    assert after[0] >= before[0]  # the count goes on from where it was, never back to 0
    assert response.json()["failing_since"] is not None
