"""`/metrics`: Prometheus text with the series operators need, moving as the gateway works."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dns import ScriptedDNS
from tests.support.gateway import API_KEY, BACKENDS, Gateway, own_gateway
from tests.support.helpers import (
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver


def _samples(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = gw.api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


def test_metrics_count_events_attempts_and_inbound_refusals(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    before = _samples(gw)
    make_endpoint(gw, receiver.url(path))
    event = publish(gw, "metric.test")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "s"}
    ).json()
    body = b'{"zen": "x"}'
    gw.api.post(
        source["ingest_path"], content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    good = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    gw.api.post(
        source["ingest_path"],
        content=body,
        headers={"X-Hub-Signature-256": good, "X-GitHub-Event": "ping", "X-GitHub-Delivery": "m1"},
    )
    after = _samples(gw)

    def grew(name: str, **labels: str) -> bool:
        return _value(after, name, **labels) - _value(before, name, **labels) >= 1

    assert grew("gateway_events_total", origin="api", type="metric.test")
    assert grew("gateway_events_total", origin="inbound", type="ping")
    assert grew("gateway_inbound_requests_total", provider="github", outcome="refused")
    assert grew("gateway_inbound_requests_total", provider="github", outcome="accepted")
    assert grew(
        "gateway_inbound_verification_failures_total", provider="github", reason="bad_signature"
    )
    assert ("gateway_deliveries_pending", ()) in after
    assert ("gateway_oldest_due_delivery_seconds", ()) in after
    if gw.backend == "sqlite":  # embedded: this process also delivered
        assert grew("gateway_delivery_attempts_total", outcome="success", status_class="2xx")
        assert grew("gateway_deliveries_finished_total", status="succeeded")
        assert _value(after, "gateway_delivery_attempt_seconds_count") >= 1


def test_worker_serves_its_own_metrics(gw: Gateway, receiver: Receiver, path: str) -> None:
    import socket
    import subprocess
    import sys

    from tests.support.receiver import wait_until

    if gw.backend != "postgres":
        return  # embedded mode has no worker: the API's /metrics covers delivery
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for worker in list(gw.workers):
        gw.kill(worker)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "worker",
            "--concurrency",
            "50",
            "--metrics-port",
            str(port),
        ],
        env=gw.env,
        cwd=gw.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        make_endpoint(gw, receiver.url(path))
        event = publish(gw, "worker.metrics")
        [delivery] = deliveries_of(gw, event["id"])
        wait_delivery(gw, delivery["id"], "succeeded")

        def scraped() -> str | None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            return text if 'outcome="success"' in text else None

        text = wait_until(scraped, 10, "the worker's metrics")
        assert "gateway_delivery_attempts_total" in text
        assert "gateway_delivery_attempt_seconds_bucket" in text
    finally:
        proc.terminate()
        proc.wait(30)


METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module", params=BACKENDS)
def bounded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> Iterator[Gateway]:
    """A gateway of its own: three event types as labels, and /metrics behind a token."""
    with own_gateway(
        request.param,
        tmp_path_factory.mktemp(f"metrics-{request.param}"),
        dns,
        GATEWAY_METRICS_EVENT_TYPES="3",
        GATEWAY_METRICS_TOKEN=METRICS_TOKEN,
    ) as gateway:
        yield gateway


def _scrape(gw: Gateway) -> str:
    response = httpx.get(
        f"http://127.0.0.1:{gw.port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_metrics_can_be_kept_behind_a_token(bounded: Gateway) -> None:
    url = f"http://127.0.0.1:{bounded.port}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {API_KEY}"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401 and "gateway_" not in refused.text
    assert "gateway_events_total" in _scrape(bounded)


def test_event_types_as_labels_are_bounded_and_tenants_add_none(bounded: Gateway) -> None:
    before = len(_scrape(bounded))
    with client_with(bounded, str(create_key(bounded, tenant_id="t1")["key"])) as tenant:
        for n in range(200):
            answer = tenant.post("/v1/events", json={"type": f"secret.tenant.type{n}", "data": {}})
            assert answer.status_code == 202
    for n in range(5):
        publish(bounded, f"operator.type{n}")
    text = _scrape(bounded)
    assert "secret.tenant" not in text
    named = set(re.findall(r'gateway_events_total\{origin="api",type="([^"]+)"', text))
    assert named == {"operator.type0", "operator.type1", "operator.type2", "other"}, named
    other = re.search(r'gateway_events_total\{origin="api",type="other"\} (\S+)', text)
    assert other is not None and float(other.group(1)) == 202
    assert len(text) - before < 2000  # a handful of series, not one per type
