"""Request limits: per-key and per-source rate limits with 429 + Retry-After, bounded responses."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import API_KEY, BACKENDS, Gateway, own_gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until

# Low, so that even a loaded machine (the suite runs in parallel) sends failures faster.
FAILURES_PER_SECOND = 2
# Other client addresses on loopback, one per test (the gateway is the module's).
STRANGER, GUESSER = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module", params=BACKENDS)
def strict(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> Iterator[Gateway]:
    """A gateway of its own that limits failed attempts as a production one does."""
    with own_gateway(
        request.param,
        tmp_path_factory.mktemp(f"strict-{request.param}"),
        dns,
        GATEWAY_AUTH_FAILURE_RATE_LIMIT=str(FAILURES_PER_SECOND),
    ) as gateway:
        yield gateway


def _from(gw: Gateway, address: str, key: str | None = API_KEY) -> httpx.Client:
    return httpx.Client(
        base_url=str(gw.api.base_url),
        timeout=30,
        headers={"Authorization": f"Bearer {key}"} if key else {},
        transport=httpx.HTTPTransport(local_address=address),
    )


def _github(secret: str, n: int) -> tuple[bytes, dict[str, str]]:
    body = f'{{"zen": "hi", "n": {n}}}'.encode()
    return body, {
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": f"d{n}",
        "Content-Type": "application/json",
    }


def test_bad_signatures_cannot_spend_a_sources_rate_limit(strict: Gateway) -> None:
    """A stranger who knows the URL is limited on its own failures; the provider's
    correctly signed request still goes through."""
    source = strict.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "right", "rate_limit": 5}
    ).json()
    with _from(strict, STRANGER, key=None) as stranger:
        codes = []
        for n in range(20):
            body, headers = _github("wrong", n)
            codes.append(
                stranger.post(source["ingest_path"], content=body, headers=headers).status_code
            )
        assert codes[:FAILURES_PER_SECOND] == [401] * FAILURES_PER_SECOND
        assert codes[-1] == 429, codes
        # Refused before verifying: a right signature from this address waits its turn too.
        body, headers = _github("right", 99)
        assert (
            stranger.post(source["ingest_path"], content=body, headers=headers).status_code == 429
        )
    body, headers = _github("right", 100)
    with _from(strict, "127.0.0.1", key=None) as provider:
        answer = provider.post(source["ingest_path"], content=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text


def test_failed_api_keys_are_limited_per_address(strict: Gateway) -> None:
    with _from(strict, GUESSER, key="gw_" + "guess" * 9) as guesser:
        codes = [guesser.get("/v1/endpoints").status_code for _ in range(20)]
        assert codes[:FAILURES_PER_SECOND] == [401] * FAILURES_PER_SECOND
        limited = guesser.get("/v1/endpoints")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "invalid API key" in limited.json()["detail"]
    with _from(strict, GUESSER, key=None) as anonymous:
        assert anonymous.get("/v1/endpoints").status_code == 429
    # Others are not affected, and the address may try again once its failures lapse.
    assert strict.api.get("/v1/endpoints").status_code == 200
    with _from(strict, GUESSER) as owner:
        wait_until(
            lambda: owner.get("/v1/endpoints").status_code == 200,
            10,
            "the address to be let in again",
        )


def test_api_key_rate_limit_answers_429_with_retry_after(gw: Gateway) -> None:
    key = gw.api.post("/v1/api-keys", json={"name": "slow", "rate_limit": 2}).json()["key"]
    with httpx.Client(
        base_url=str(gw.api.base_url), headers={"Authorization": f"Bearer {key}"}
    ) as client:
        answers = [client.get("/v1/endpoints") for _ in range(10)]
    codes = [a.status_code for a in answers]
    assert codes[:2] == [200, 200]
    assert 429 in codes
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["detail"]
    # Other keys are not affected.
    assert gw.api.get("/v1/endpoints").status_code == 200


def test_inbound_source_rate_limit_answers_429_to_verified_requests(gw: Gateway) -> None:
    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "s", "rate_limit": 2}
    ).json()
    codes = []
    for i in range(8):
        body, headers = _github("s", i)
        response = gw.api.post(source["ingest_path"], content=body, headers=headers)
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    assert codes[:2] == [200, 200] and 429 in codes
    stored = gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"]
    assert len(stored) == codes.count(200)


def test_endless_response_body_is_cut_at_4_kib(gw: Gateway, receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(200, body=b"x" * (8 * 1024 * 1024)))
    make_endpoint(gw, receiver.url(path))
    event = publish(gw)
    [delivery] = deliveries_of(gw, event["id"])
    detail = wait_delivery(gw, delivery["id"], "succeeded")
    assert len(detail["attempts"][0]["response_body"]) == 4096
