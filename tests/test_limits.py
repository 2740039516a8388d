"""Request limits: per-key and per-source rate limits with 429 + Retry-After, bounded responses."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from tests.conftest import Gateway
from tests.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.receiver import Receiver, Reply


def test_api_key_rate_limit_answers_429_with_retry_after(gw: Gateway) -> None:
    key = gw.api.post("/v1/api-keys", json={"name": "slow", "rate_limit": 2}).json()["key"]
    with httpx.Client(base_url=str(gw.api.base_url),
                      headers={"Authorization": f"Bearer {key}"}) as client:
        answers = [client.get("/v1/endpoints") for _ in range(10)]
    codes = [a.status_code for a in answers]
    assert codes[:2] == [200, 200]
    assert 429 in codes
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["detail"]
    # Other keys are not affected.
    assert gw.api.get("/v1/endpoints").status_code == 200


def test_inbound_source_rate_limit_answers_429_before_verifying(gw: Gateway) -> None:
    source = gw.api.post("/v1/sources", json={"name": "gh", "provider": "github",
                                              "secret": "s", "rate_limit": 2}).json()
    body = b'{"zen": "hi"}'
    signature = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    codes = []
    for i in range(8):
        response = gw.api.post(source["ingest_path"], content=body, headers={
            "X-Hub-Signature-256": signature, "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": f"d{i}", "Content-Type": "application/json"})
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    assert codes[:2] == [200, 200] and 429 in codes
    stored = gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"]
    assert len(stored) == codes.count(200)


def test_endless_response_body_is_cut_at_4_kib(gw: Gateway, receiver: Receiver,
                                              path: str) -> None:
    receiver.set(path, Reply(200, body=b"x" * (8 * 1024 * 1024)))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    detail = wait_delivery(gw, delivery["id"], "succeeded")
    assert len(detail["attempts"][0]["response_body"]) == 4096
