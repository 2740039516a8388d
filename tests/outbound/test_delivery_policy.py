"""An endpoint's retry policy over real HTTP, on both backends: its own schedule, final
statuses, max_duration, disabling after failed deliveries in a row, and the warnings
(`endpoint.failing`, `endpoint.disabled`, `endpoint.recovered`) an operator's endpoint
receives."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.support.gateway import Gateway
from tests.support.helpers import (
    assert_422_naming,
    deliveries_of,
    make_endpoint,
    parse_time,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply, wait_until


def _endpoint(gw: Gateway, endpoint_id: str) -> dict[str, Any]:
    return gw.api.get(f"/v1/endpoints/{endpoint_id}").json()  # type: ignore[no-any-return]


def _only_delivery(gw: Gateway, event: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    return next(d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == endpoint_id)


def _notices(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received(path)]


def test_policy_is_validated_stored_shown_and_changed(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    url = receiver.url(path)
    for bad, field in [
        ({"schedule": [5, -1]}, "schedule"),
        ({"schedule": "5,10"}, "schedule"),
        ({"final_statuses": [204]}, "final_statuses"),
        ({"max_duration": 10**9}, "max_duration"),
        ({"disable_after_failures": -3}, "disable_after_failures"),
        ({"tries": 3}, "tries"),
    ]:
        response = gw.api.post("/v1/endpoints", json={"url": url, "retry_policy": bad})
        assert_422_naming(response, field)
        assert "retry_policy" in str(response.json()["detail"])
    assert_422_naming(
        gw.api.post("/v1/endpoints", json={"url": url, "contact_email": "not an email"}),
        "contact_email",
    )
    assert gw.api.get("/v1/endpoints").json()["data"] == []  # nothing half-written

    plain = make_endpoint(gw, url)
    assert plain["retry_policy"] is None and plain["contact_email"] is None
    assert plain["warned_percent"] == 0 and plain["failed_deliveries_in_row"] == 0
    policy = {"schedule": [1, 60], "final_statuses": [404, 400], "max_duration": 3600}
    endpoint = make_endpoint(gw, url, retry_policy=policy, contact_email="ops@example.com")
    # Shown with every field: null is the gateway's setting.
    assert endpoint["retry_policy"] == {
        **policy,
        "final_statuses": [400, 404],
        "disable_after_failures": None,
    }
    assert _endpoint(gw, endpoint["id"])["contact_email"] == "ops@example.com"
    changed = gw.api.patch(
        f"/v1/endpoints/{endpoint['id']}", json={"retry_policy": {"disable_after_failures": 3}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["retry_policy"] == {
        "schedule": None,
        "max_duration": None,
        "final_statuses": None,
        "disable_after_failures": 3,
    }
    bad = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"retry_policy": {"schedule": [-1]}})
    assert_422_naming(bad, "schedule")
    cleared = gw.api.patch(
        f"/v1/endpoints/{endpoint['id']}", json={"retry_policy": None, "contact_email": None}
    ).json()
    assert cleared["retry_policy"] is None and cleared["contact_email"] is None


def test_the_endpoints_own_schedule_is_used(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(500))
    # The tests' GATEWAY_RETRY_SCHEDULE is 0.3,0.6,1 (four attempts); this one's is two
    # waits of 1.5 s (three attempts, never sooner than 1.2 s apart with the jitter).
    endpoint = make_endpoint(gw, receiver.url(path), retry_policy={"schedule": [1.5, 1.5]})
    event = publish(gw)
    detail = wait_delivery(gw, _only_delivery(gw, event, endpoint["id"])["id"], "failed")
    assert detail["attempt_count"] == 3
    times = [parse_time(a["started_at"]) for a in detail["attempts"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.2 for gap in gaps), gaps
    assert len(receiver.received(path)) == 3


def test_final_statuses_end_a_delivery_without_retrying(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/final", Reply(404))
    receiver.set(f"{path}/other", Reply(409), Reply(200))
    final = make_endpoint(
        gw, receiver.url(f"{path}/final"), retry_policy={"final_statuses": [400, 404]}
    )
    other = make_endpoint(
        gw, receiver.url(f"{path}/other"), retry_policy={"final_statuses": [400, 404]}
    )
    event = publish(gw)
    detail = wait_delivery(gw, _only_delivery(gw, event, final["id"])["id"], "failed")
    assert detail["attempt_count"] == 1 and detail["last_status_code"] == 404
    # A status not listed is retried as before.
    retried = wait_delivery(gw, _only_delivery(gw, event, other["id"])["id"], "succeeded")
    assert retried["attempt_count"] == 2
    assert len(receiver.received(f"{path}/final")) == 1


def test_max_duration_keeps_retrying_at_the_last_interval(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    # A 400 (a quick refusal) keeps the breaker shut: every retry is an attempt.
    receiver.set(path, Reply(400))
    endpoint = make_endpoint(
        gw, receiver.url(path), retry_policy={"schedule": [0.3], "max_duration": 3}
    )
    event = publish(gw)
    detail = wait_delivery(gw, _only_delivery(gw, event, endpoint["id"])["id"], "failed", 30)
    # The schedule alone allows two attempts; max_duration adds more at 0.3 s...
    assert detail["attempt_count"] > 2
    # ...until 3 s after the first one have passed, and none after that.
    times = [parse_time(a["started_at"]) for a in detail["attempts"]]
    assert (times[-1] - times[0]).total_seconds() >= 3 - 0.5
    assert (times[-2] - times[0]).total_seconds() < 3.1


def test_failed_deliveries_in_a_row_warn_then_disable(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/down", Reply(422))
    down = make_endpoint(
        gw,
        receiver.url(f"{path}/down"),
        event_types=["order.*"],
        retry_policy={"final_statuses": [422], "disable_after_failures": 10},
    )
    make_endpoint(gw, receiver.url(f"{path}/ops"), event_types=["endpoint.*"])
    # One after the other: failures recorded together count together, and a burst that
    # reaches the threshold at once disables without the warnings it jumped over.
    for i in range(10):
        event = publish(gw, "order.created", {"i": i})
        wait_delivery(gw, _only_delivery(gw, event, down["id"])["id"], "failed")
    wait_until(lambda: _endpoint(gw, down["id"])["disabled"], 20, "the endpoint disabled")
    shown = _endpoint(gw, down["id"])
    assert "10 deliveries in a row failed" in shown["disabled_reason"]
    assert shown["failed_deliveries_in_row"] == 10
    notices = receiver.wait_for(f"{path}/ops", 4)
    assert len(notices) == 4
    by_type = sorted(
        (n["type"], n["data"].get("percent")) for n in _notices(receiver, f"{path}/ops")
    )
    assert by_type == [
        ("endpoint.disabled", None),
        ("endpoint.failing", 50),
        ("endpoint.failing", 70),
        ("endpoint.failing", 90),
    ]
    for notice in _notices(receiver, f"{path}/ops"):
        assert notice["data"]["endpoint_id"] == down["id"]
        if notice["type"] == "endpoint.failing":
            assert notice["data"]["rule"] == "count"
            assert notice["data"]["disable_after_failures"] == 10
    assert len(receiver.received(f"{path}/down")) == 10


def test_a_warned_endpoint_that_succeeds_again_is_announced_recovered(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/flaky", Reply(422))
    flaky = make_endpoint(
        gw,
        receiver.url(f"{path}/flaky"),
        tenant_id="acme",
        event_types=["order.*"],
        retry_policy={"schedule": [], "disable_after_failures": 4},
    )
    # The operator of tenant acme's endpoints: the warnings carry the endpoint's tenant.
    make_endpoint(gw, receiver.url(f"{path}/ops"), tenant_id="acme", event_types=["endpoint.*"])
    make_endpoint(gw, receiver.url(f"{path}/other-tenant"), event_types=["endpoint.*"])
    for i in range(2):
        event = publish(gw, "order.created", {"i": i}, tenant_id="acme")
        wait_delivery(gw, _only_delivery(gw, event, flaky["id"])["id"], "failed")
    [warning] = receiver.wait_for(f"{path}/ops", 1)
    assert json.loads(warning.body)["data"]["percent"] == 50
    assert _endpoint(gw, flaky["id"])["warned_percent"] == 50
    receiver.set(f"{path}/flaky", Reply(200))
    publish(gw, "order.created", {"i": 2}, tenant_id="acme")
    receiver.wait_for(f"{path}/ops", 2)
    types = [n["type"] for n in _notices(receiver, f"{path}/ops")]
    assert types == ["endpoint.failing", "endpoint.recovered"]
    shown = _endpoint(gw, flaky["id"])
    assert shown["warned_percent"] == 0 and shown["failed_deliveries_in_row"] == 0
    assert shown["failing_since"] is None
    # Another success says nothing more; another tenant's operator heard nothing.
    event = publish(gw, "order.created", {"i": 3}, tenant_id="acme")
    wait_delivery(gw, _only_delivery(gw, event, flaky["id"])["id"], "succeeded")
    assert len(receiver.received(f"{path}/ops")) == 2
    assert receiver.received(f"{path}/other-tenant") == []


def test_time_rule_warns_as_its_period_passes(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(f"{path}/down", Reply(422))
    down = make_endpoint(gw, receiver.url(f"{path}/down"), event_types=["order.*"])
    make_endpoint(gw, receiver.url(f"{path}/ops"), event_types=["endpoint.*"])
    event = publish(gw, "order.created")
    wait_until(lambda: _endpoint(gw, down["id"])["failing_since"], 15, "failing_since set")
    wait_delivery(gw, _only_delivery(gw, event, down["id"])["id"], "failed")
    # Failing for three of GATEWAY_DISABLE_AFTER's five days: 60%, so the 50% warning.
    gw.sql(
        "UPDATE endpoint SET failing_since = "
        + (
            "datetime('now', '-3 days')"
            if gw.backend == "sqlite"
            else "now() AT TIME ZONE 'utc' - interval '3 days'"
        )
        + f" WHERE id = '{down['id']}'"
    )
    publish(gw, "order.created")
    [notice] = receiver.wait_for(f"{path}/ops", 1)
    data = json.loads(notice.body)["data"]
    assert data["percent"] == 50 and data["rule"] == "time"
    assert not _endpoint(gw, down["id"])["disabled"]


def test_a_warning_is_not_sent_to_the_failing_endpoint_itself(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    """An endpoint of every type would get its own warnings, and failing them, count
    them: each warning would bring the next, and the disable, on by itself."""
    receiver.set(path, Reply(422))
    down = make_endpoint(
        gw, receiver.url(path), retry_policy={"schedule": [], "disable_after_failures": 4}
    )
    make_endpoint(gw, receiver.url(f"{path}/ops"), event_types=["endpoint.*"])
    for i in range(2):
        event = publish(gw, "order.created", {"i": i})
        wait_delivery(gw, _only_delivery(gw, event, down["id"])["id"], "failed")
    [warning] = receiver.wait_for(f"{path}/ops", 1)
    event = publish(gw, "order.created", {"i": 2})  # a third failure: 75%, the 70% warning
    wait_delivery(gw, _only_delivery(gw, event, down["id"])["id"], "failed")
    receiver.wait_for(f"{path}/ops", 2)
    shown = _endpoint(gw, down["id"])
    assert shown["failed_deliveries_in_row"] == 3 and not shown["disabled"]
    assert [json.loads(r.body)["type"] for r in receiver.received(path)] == ["order.created"] * 3
    assert json.loads(warning.body)["data"]["percent"] == 50


def test_the_console_shows_the_warning_level_and_the_policy(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    from contextlib import closing

    from tests.support.console import signed_in_client

    receiver.set(path, Reply(422))
    down = make_endpoint(
        gw,
        receiver.url(path),
        contact_email="oncall@example.com",
        retry_policy={"schedule": [], "disable_after_failures": 4, "final_statuses": [422]},
    )
    for i in range(2):
        event = publish(gw, "order.created", {"i": i})
        wait_delivery(gw, _only_delivery(gw, event, down["id"])["id"], "failed")
    wait_until(lambda: _endpoint(gw, down["id"])["warned_percent"] == 50, 10, "the warning")
    client, _ = signed_in_client(gw)
    with closing(client):
        answer = client.get(f"/console/endpoints/{down['id']}")
        page = answer.text
        assert answer.status_code == 200, page[-3000:]
        assert "endpoint.failing: 50% of the way to disabled" in page
        assert "2 deliveries in a row failed" in page
        assert "disabled after 4 failed deliveries in a row" in page
        assert "oncall@example.com" in page and "endpoint.recovered" in page
        overview = client.get("/console").text
        assert "warned at 50% of the way to disabled" in overview
