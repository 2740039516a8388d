"""Publishing while the endpoints it matches are deleted: an endpoint that vanishes
between matching and insert does not match, no publish answers 500, and every
event answered with an error was not stored (a client's retry makes no duplicate)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver

ENDPOINTS = 40
PUBLISHES = 240


def test_publishing_while_endpoints_are_deleted_never_fails_or_duplicates(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    ids = [
        make_endpoint(gw, receiver.url(f"{path}/{i}"), tenant_id="churn")["id"]
        for i in range(ENDPOINTS)
    ]
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def publish(n: int) -> None:
        with httpx.Client(
            base_url=str(gw.api.base_url), headers=gw.api.headers, timeout=30
        ) as client:
            for i in range(n, PUBLISHES, 8):
                response = client.post(
                    "/v1/events",
                    json={"type": "order.created", "data": {"i": i}, "tenant_id": "churn"},
                )
                with lock:
                    answers.append(response)

    def delete_all() -> None:
        with httpx.Client(
            base_url=str(gw.api.base_url), headers=gw.api.headers, timeout=30
        ) as client:
            for endpoint_id in ids:
                assert client.delete(f"/v1/endpoints/{endpoint_id}").status_code == 204

    with ThreadPoolExecutor(9) as pool:
        publishers = [pool.submit(publish, n) for n in range(8)]
        pool.submit(delete_all).result()
        for future in publishers:
            future.result()

    statuses = sorted({r.status_code for r in answers})
    assert statuses == [202], [r.text for r in answers if r.status_code != 202][:5]
    # Every answer is an event that exists, and no event exists that was not answered.
    answered = {r.json()["id"] for r in answers}
    stored = {row[0] for row in gw.sql("SELECT id FROM event")}
    assert stored == answered
    # Whatever was matched before its endpoint went was deleted with it.
    assert gw.sql("SELECT COUNT(*) FROM delivery")[0][0] == 0


def test_a_test_send_racing_a_delete_answers_202_or_404(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    ids = [make_endpoint(gw, receiver.url(path))["id"] for _ in range(20)]

    def send(endpoint_id: str) -> int:
        return gw.api.post(f"/v1/endpoints/{endpoint_id}/test").status_code

    def delete(endpoint_id: str) -> int:
        return gw.api.delete(f"/v1/endpoints/{endpoint_id}").status_code

    with ThreadPoolExecutor(8) as pool:
        sends, deletes = [], []
        for endpoint_id in ids:  # each send beside the delete of its endpoint
            sends.append(pool.submit(send, endpoint_id))
            deletes.append(pool.submit(delete, endpoint_id))
        assert {f.result() for f in deletes} == {204}
        assert {f.result() for f in sends} <= {202, 404}
