"""Delivery behaviour end to end: retries, timeouts, redirects, manual retry and recovery.

Every test talks to the real gateway processes over HTTP and plays its endpoints
with the receiver, each on its own paths. The gateway runs with the retry schedule
"0.3,0.6,1" (4 attempts, +-20% jitter) and a 2 s delivery timeout (see conftest).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until

SCHEDULE = (0.3, 0.6, 1.0)
JITTER = 0.2
MAX_ATTEMPTS = len(SCHEDULE) + 1
DELIVERY_TIMEOUT = 2.0


# small steps of these tests


def get_delivery(gw: Gateway, delivery_id: str) -> dict[str, Any]:
    response = gw.api.get(f"/v1/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def only_delivery(gw: Gateway, event_id: str) -> dict[str, Any]:
    [delivery] = deliveries_of(gw, event_id)
    return delivery


def wait_attempts(gw: Gateway, delivery_id: str, count: int, timeout: float = 15) -> dict[str, Any]:
    """The delivery once at least `count` attempts are recorded."""

    def check() -> dict[str, Any] | None:
        body = get_delivery(gw, delivery_id)
        return body if len(body["attempts"]) >= count else None

    return wait_until(check, timeout, f"{count} attempts of {delivery_id}")  # type: ignore[no-any-return]


def stays(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `check` for `seconds`; fail as soon as it stops holding."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding"
        time.sleep(0.05)
    assert check(), f"{what} stopped holding"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections: bound (so nobody takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# retries


def test_retries_until_success_with_same_id_and_body_each_signed(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(
        path, Reply(500, b"first failure"), Reply(500, b"second failure"), Reply(200, b"finally")
    )
    endpoint = make_endpoint(gw, receiver.url(path))
    event = publish(gw, "order.created", {"order": 42})
    delivery = only_delivery(gw, event["id"])

    detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=10)
    assert detail["attempt_count"] == 3
    assert detail["next_attempt_at"] is None
    attempts = detail["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["response_body"] for a in attempts] == ["first failure", "second failure", "finally"]
    assert [a["error"] for a in attempts][2] is None
    started = [parse_time(a["started_at"]) for a in attempts]
    assert started == sorted(started)
    for attempt in attempts:
        assert isinstance(attempt["duration_ms"], int)
        assert 0 <= attempt["duration_ms"] < DELIVERY_TIMEOUT * 1000

    requests = receiver.wait_for(path, 3)
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {event["id"]}
    assert len({r.body for r in requests}) == 1
    for request in requests:
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["id"] == event["id"]
        assert payload["data"] == {"order": 42}

    first_gap = requests[1].at - requests[0].at
    second_gap = requests[2].at - requests[1].at
    assert SCHEDULE[0] * (1 - JITTER) <= first_gap <= SCHEDULE[0] * (1 + JITTER) + 1.0
    assert SCHEDULE[1] * (1 - JITTER) <= second_gap <= SCHEDULE[1] * (1 + JITTER) + 1.0


def test_exhausted_schedule_fails_after_exactly_four_attempts(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(503, b"unavailable"))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_delivery(gw, delivery["id"], "failed", timeout=10)
    assert detail["attempt_count"] == MAX_ATTEMPTS
    assert detail["next_attempt_at"] is None
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2, 3, 4]
    assert [a["status_code"] for a in detail["attempts"]] == [503] * MAX_ATTEMPTS
    assert len(receiver.received(path)) == MAX_ATTEMPTS

    # Longer than the largest delay of the schedule (1 s + 20%) plus slack: no 5th attempt.
    def still_four() -> bool:
        body = get_delivery(gw, delivery["id"])
        return (
            body["attempt_count"] == MAX_ATTEMPTS
            and body["status"] == "failed"
            and len(body["attempts"]) == MAX_ATTEMPTS
            and len(receiver.received(path)) == MAX_ATTEMPTS
        )

    stays(still_four, 2.0, "4 attempts and status failed")


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(gw: Gateway, receiver: Receiver, path: str, status: int) -> None:
    receiver.set(path, Reply(status, b"slow down", headers={"Retry-After": "2"}), Reply(200))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    first, second = receiver.wait_for(path, 2, timeout=10)
    # The schedule alone would come back after ~0.3 s.
    assert second.at - first.at >= 1.9
    assert second.at - first.at <= 2.0 + 1.5
    detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=5)
    assert [a["status_code"] for a in detail["attempts"]] == [status, 200]


# what one attempt records


def test_timeout_is_recorded_without_status_code(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(200, delay=5))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_attempts(gw, delivery["id"], 1, timeout=10)
    attempt = detail["attempts"][0]
    assert attempt["status_code"] is None
    assert attempt["error"] is not None
    assert "timed out" in attempt["error"].lower()
    assert 1800 <= attempt["duration_ms"] <= 3000
    assert detail["status"] == "pending"
    assert detail["next_attempt_at"] is not None


def test_redirects_are_not_followed(gw: Gateway, receiver: Receiver, path: str) -> None:
    elsewhere = path + "-elsewhere"
    receiver.set(path, Reply(302, b"", headers={"Location": receiver.url(elsewhere)}))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_attempts(gw, delivery["id"], 1, timeout=10)
    attempt = detail["attempts"][0]
    assert attempt["status_code"] == 302
    assert attempt["error"] is not None
    assert "redirect" in attempt["error"].lower()
    # A followed redirect would have arrived before the attempt was recorded.
    assert receiver.received(elsewhere) == []
    assert detail["status"] == "pending"  # a redirect is not success: it is retried

    detail = wait_delivery(gw, delivery["id"], "failed", timeout=10)
    assert [a["status_code"] for a in detail["attempts"]] == [302] * MAX_ATTEMPTS
    assert receiver.received(elsewhere) == []


def test_response_body_is_capped_at_4_kib(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(200, b"x" * 100_000))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=10)
    [attempt] = detail["attempts"]
    assert attempt["status_code"] == 200
    assert attempt["response_body"] == "x" * 4096


def test_an_answer_with_nul_bytes_is_recorded(gw: Gateway, receiver: Receiver, path: str) -> None:
    """PostgreSQL's text cannot hold NUL: stored as is, the answer failed its record and
    every record written with it, and their deliveries went out again."""
    receiver.set(path, Reply(200, b"ok\x00\x00\xff"))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=10)
    [attempt] = detail["attempts"]
    assert attempt["response_body"] == "ok\ufffd\ufffd\ufffd"
    assert len(receiver.received(path)) == 1


def test_connection_refused_is_recorded_and_fails(gw: Gateway, dead_port: int) -> None:
    make_endpoint(gw, f"http://127.0.0.1:{dead_port}/hook")
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])

    detail = wait_delivery(gw, delivery["id"], "failed", timeout=10)
    assert detail["attempt_count"] == MAX_ATTEMPTS
    for attempt in detail["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"] is not None
        assert "connect" in attempt["error"].lower()


# isolation between endpoints


def test_slow_endpoint_does_not_hold_up_others(gw: Gateway, receiver: Receiver, path: str) -> None:
    slow_path, fast_path = path + "-slow", path + "-fast"
    receiver.set(slow_path, Reply(200, delay=10))
    slow = make_endpoint(gw, receiver.url(slow_path))
    fast = make_endpoint(gw, receiver.url(fast_path))
    events = [publish(gw, data={"n": n}) for n in range(5)]
    assert all(e["deliveries"] == 2 for e in events)

    receiver.wait_for(fast_path, 5, timeout=DELIVERY_TIMEOUT * 0.75)
    # At this moment every slow attempt is still in flight: none has been recorded.
    response = gw.api.get(f"/v1/endpoints/{slow['id']}/deliveries")
    assert response.status_code == 200, response.text
    slow_deliveries = response.json()["data"]
    assert len(slow_deliveries) == 5
    assert [(d["status"], d["attempt_count"]) for d in slow_deliveries] == [("pending", 0)] * 5
    for delivery in slow_deliveries:
        assert get_delivery(gw, delivery["id"])["attempts"] == []
    assert len(receiver.received(fast_path)) == 5
    assert {r.headers["webhook-id"] for r in receiver.received(fast_path)} == {
        e["id"] for e in events
    }

    for event in events:
        [delivery] = [d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == fast["id"]]
        detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=10)
        assert detail["attempt_count"] == 1
        assert detail["attempts"][0]["status_code"] == 200


# manual retry and recovery


def test_manual_retry_after_failure(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(500))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])
    wait_delivery(gw, delivery["id"], "failed", timeout=10)

    receiver.set(path, Reply(200))
    response = gw.api.post(f"/v1/deliveries/{delivery['id']}/retry")
    assert response.status_code == 202, response.text
    detail = wait_delivery(gw, delivery["id"], "succeeded", timeout=10)
    assert detail["attempt_count"] == MAX_ATTEMPTS + 1
    assert detail["next_attempt_at"] is None
    assert [a["status_code"] for a in detail["attempts"]] == [500] * MAX_ATTEMPTS + [200]
    assert len(receiver.received(path)) == MAX_ATTEMPTS + 1

    response = gw.api.post("/v1/deliveries/dlv_01NOSUCHDELIVERY0000000000/retry")
    assert response.status_code == 404, response.text
    assert "detail" in response.json()


def test_recover_requeues_failed_deliveries(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(500))
    endpoint = make_endpoint(gw, receiver.url(path))
    before = rfc3339(datetime.now(UTC) - timedelta(seconds=2))
    events = [publish(gw, data={"n": n}) for n in range(3)]
    deliveries = [only_delivery(gw, e["id"])["id"] for e in events]
    for delivery_id in deliveries:
        wait_delivery(gw, delivery_id, "failed", timeout=10)
    failed = gw.api.get(f"/v1/endpoints/{endpoint['id']}/deliveries", params={"status": "failed"})
    assert {d["id"] for d in failed.json()["data"]} == set(deliveries)

    # Only deliveries created since `since` are re-queued.
    later = rfc3339(datetime.now(UTC) + timedelta(seconds=1))
    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": later})
    assert response.status_code == 200, response.text
    assert response.json() == {"requeued": 0}

    receiver.set(path, Reply(200))
    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": before})
    assert response.status_code == 200, response.text
    assert response.json() == {"requeued": 3}
    for delivery_id in deliveries:
        detail = wait_delivery(gw, delivery_id, "succeeded", timeout=10)
        assert detail["attempt_count"] == MAX_ATTEMPTS + 1
        assert detail["attempts"][-1]["status_code"] == 200

    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": before})
    assert response.status_code == 200, response.text
    assert response.json() == {"requeued": 0}

    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={})
    assert response.status_code == 422, response.text


# endpoint operations that send


def test_test_send_ignores_type_filters(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["invoice.*"])
    # The filter is in force for ordinary events.
    assert publish(gw, "user.created")["deliveries"] == 0

    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/test")
    assert response.status_code == 202, response.text
    sent = response.json()
    assert sent["type"] == "webhook.test"
    assert sent["deliveries"] == 1

    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert payload["id"] == sent["id"] == request.headers["webhook-id"]


def test_rotated_secret_signs_with_old_and_new(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    old_secret = endpoint["secret"]
    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/secret/rotate")
    assert response.status_code == 200, response.text
    new_secret = response.json()["secret"]
    assert new_secret != old_secret

    event = publish(gw)
    [request] = receiver.wait_for(path, 1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    assert Webhook(old_secret).verify(request.body, request.headers)["id"] == event["id"]
    assert Webhook(new_secret).verify(request.body, request.headers)["id"] == event["id"]
    # Each signature is made with exactly one of the two secrets.
    for signature in signatures:
        alone = {**request.headers, "webhook-signature": signature}
        assert verifies(old_secret, request.body, alone) != verifies(
            new_secret, request.body, alone
        )


def test_disabled_endpoint_gets_nothing(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    old = publish(gw)
    old_delivery = only_delivery(gw, old["id"])
    wait_delivery(gw, old_delivery["id"], "succeeded", timeout=10)
    assert len(receiver.received(path)) == 1

    response = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"disabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["disabled"] is True

    event = publish(gw)
    assert event["deliveries"] == 0
    assert deliveries_of(gw, event["id"]) == []

    response = gw.api.post(f"/v1/deliveries/{old_delivery['id']}/retry")
    assert response.status_code == 409, response.text
    assert get_delivery(gw, old_delivery["id"])["attempt_count"] == 1
    assert len(receiver.received(path)) == 1


def test_deleting_endpoint_mid_retry_keeps_gateway_working(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    doomed_path, healthy_path = path + "-doomed", path + "-healthy"
    # The second attempt hangs for a while, so the delete lands while it is in flight.
    receiver.set(doomed_path, Reply(500), Reply(500, delay=1.0), Reply(500))
    doomed = make_endpoint(gw, receiver.url(doomed_path))
    event = publish(gw)
    delivery = only_delivery(gw, event["id"])
    wait_attempts(gw, delivery["id"], 1, timeout=10)
    receiver.wait_for(doomed_path, 2, timeout=10)

    response = gw.api.delete(f"/v1/endpoints/{doomed['id']}")
    assert response.status_code == 204, response.text
    assert gw.api.get(f"/v1/endpoints/{doomed['id']}").status_code == 404
    assert gw.api.get(f"/v1/deliveries/{delivery['id']}").status_code == 404

    # The healthy endpoint answers slowly enough that, once its delivery is recorded,
    # the doomed attempt that was in flight has ended and been handled too.
    receiver.set(healthy_path, Reply(200, delay=1.5))
    healthy = make_endpoint(gw, receiver.url(healthy_path))
    after = publish(gw, data={"after": "delete"})
    assert after["deliveries"] == 1
    [request] = receiver.wait_for(healthy_path, 1)
    assert Webhook(healthy["secret"]).verify(request.body, request.headers)["id"] == after["id"]
    wait_delivery(gw, only_delivery(gw, after["id"])["id"], "succeeded", timeout=10)
    # The in-flight attempt of the deleted delivery ended without bringing anything back.
    assert len(receiver.received(doomed_path)) == 2
    assert gw.api.get(f"/v1/deliveries/{delivery['id']}").status_code == 404
    assert gw.sql(f"SELECT count(*) FROM attempt WHERE delivery_id = '{delivery['id']}'") == [(0,)]


def test_concurrent_rotations_lose_no_secret(gw: Gateway, receiver: Receiver, path: str) -> None:
    """Rotations at the same time come out one after the other: of two at once, the later
    one's secret is current and the earlier one's signs beside it; the original is gone."""
    for round_ in range(5):
        endpoint = make_endpoint(gw, receiver.url(f"{path}/{round_}"))
        rotate = f"/v1/endpoints/{endpoint['id']}/secret/rotate"
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(gw.api.post, [rotate, rotate]))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        rotated = {a.json()["secret"] for a in answers}
        assert len(rotated) == 2 and endpoint["secret"] not in rotated
        assert gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"] in rotated
        assert gw.api.post(f"/v1/endpoints/{endpoint['id']}/test").status_code == 202
        [request] = receiver.wait_for(f"{path}/{round_}", 1)
        for secret in rotated:
            assert verifies(secret, request.body, request.headers), "a returned secret is lost"
        assert not verifies(endpoint["secret"], request.body, request.headers)
