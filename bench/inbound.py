"""Ingest: requests per second and latency of `/in/{id}` (Stripe-signed) and of publish,
against Y2, a no-op FastAPI route on the same uvicorn settings, with the same load.

Closed loop: `concurrency` clients send back to back, each request pre-signed so that
the load generator spends its time sending. Every accepted request is verified,
stored and dispatched (one endpoint is subscribed; no worker runs meanwhile, so the
API has the machine to itself).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp
import stripe

from bench.harness import Stack, free_port, wait_http

STRIPE_SECRET = "whsec_bench_secret"


@dataclass
class Load:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


async def _drive(url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int) -> Load:
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one_client() -> None:
            nonlocal errors
            for body, headers in queue:
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return Load(len(bodies) / elapsed, statistics.median(latencies) * 1000,
                latencies[int(len(latencies) * 0.99) - 1] * 1000, errors)


def _stripe_requests(n: int) -> list[tuple[bytes, dict[str, str]]]:
    requests = []
    for i in range(n):
        body = json.dumps({"id": f"evt_bench_{i}", "type": "invoice.paid",
                           "data": {"object": {"id": f"in_{i}", "amount": 1200}}})
        header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)
        requests.append((body.encode(), {"Stripe-Signature": header,
                                         "Content-Type": "application/json"}))
    return requests


def _json_requests(n: int, headers: dict[str, str]) -> list[tuple[bytes, dict[str, str]]]:
    return [(json.dumps({"type": "bench.event", "data": {"i": i}}).encode(),
             {"Content-Type": "application/json", **headers}) for i in range(n)]


def _yardstick(n: int, concurrency: int) -> Load:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.noop_app:app", "--port",
                             str(port), "--loop", "uvloop", "--http", "httptools",
                             "--log-level", "warning", "--no-access-log"])
    try:
        wait_http(f"http://127.0.0.1:{port}/docs")
        return asyncio.run(_drive(f"http://127.0.0.1:{port}/noop",
                                  _json_requests(n, {}), concurrency))
    finally:
        proc.terminate()
        proc.wait(30)


def run(requests: int, concurrency: int) -> dict[str, float]:
    y2 = _yardstick(requests, concurrency)
    with Stack() as stack:
        source = stack.admin("POST", "/v1/sources", json={
            "name": "bench", "provider": "stripe", "secret": STRIPE_SECRET}).json()
        stack.admin("POST", "/v1/endpoints", json={"url": f"{stack.receiver}/in",
                                                   "source_ids": [source["id"]]})
        inbound = asyncio.run(_drive(f"{stack.api}{source['ingest_path']}",
                                     _stripe_requests(requests), concurrency))
        publish = asyncio.run(_drive(
            f"{stack.api}/v1/events",
            _json_requests(requests, {"Authorization": f"Bearer {stack.api_key}"}),
            concurrency))
    rows = [("Y2 no-op FastAPI route", y2), ("POST /in/{id} (Stripe)", inbound),
            ("POST /v1/events", publish)]
    print(f"{'ingest':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'x Y2':>6}   ({requests} requests, concurrency {concurrency})")
    for name, load in rows:
        print(f"{name:<26} {load.rate:>8,.0f} {load.p50_ms:>8.1f} {load.p99_ms:>8.1f} "
              f"{load.errors:>7} {load.rate / y2.rate:>6.2f}")
    return {"y2_per_s": y2.rate, "inbound_per_s": inbound.rate, "inbound_p99_ms": inbound.p99_ms,
            "publish_per_s": publish.rate, "publish_p99_ms": publish.p99_ms}
