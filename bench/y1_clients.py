"""Y1, the client ceiling: a bare asyncio loop posting signed webhooks to the same nginx.

Each request does the gateway's per-attempt work and nothing else: the Standard
Webhooks headers with a fresh HMAC-SHA256 signature over `{id}.{timestamp}.{body}`,
a body of the gateway's shape and size, the answer read. Nothing is stored. Once
with aiohttp (the fastest Python client, on uvloop like the worker) and once with
httpx on its default transport.

Concurrency: every endpoint of the bench is on one host (nginx's port), so a
worker keeps at most `GATEWAY_CONNECTIONS_PER_HOST` (50) connections to it, fewer
than `GATEWAY_DELIVERY_CONCURRENCY` (500): the yardstick gets the same number of
connections and requests in flight, min(the two).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import time
from dataclasses import dataclass

import aiohttp
import httpx

from bench import loadgen
from bench.context import Run
from bench.report import Row
from gateway.settings import Settings


def concurrency() -> int:
    settings = Settings()
    return min(settings.delivery_concurrency, settings.connections_per_host)


@dataclass
class ClientCeiling:
    client: str
    rate: float
    cpu_ms: float  # the bench process's CPU per request
    errors: int
    concurrency: int


def _bodies(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        msg_id = f"evt_y1{i:020d}"
        data = {
            "order": f"ord_{i:08d}",
            "amount": 1200 + i % 100,
            "currency": "eur",
            "customer": "cus_bench",
        }
        out.append(
            (
                msg_id,
                json.dumps(
                    {
                        "id": msg_id,
                        "type": "y1.event",
                        "timestamp": "2026-11-23T10:30:00Z",
                        "data": data,
                    },
                    separators=(",", ":"),
                ).encode(),
            )
        )
    return out


def _headers(key: bytes, msg_id: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "user-agent": "bench-y1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _with_aiohttp(url: str, n: int, c: int) -> tuple[float, float, int]:
    key, bodies = os.urandom(32), _bodies(n)
    todo = iter(bodies)
    errors = 0
    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as client:

        async def sender() -> None:
            nonlocal errors
            for msg_id, body in todo:
                async with client.post(url, data=body, headers=_headers(key, msg_id, body)) as r:
                    await r.read()
                    errors += r.status != 204

        cpu, start = _cpu(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(c)))
        return time.perf_counter() - start, _cpu() - cpu, errors


async def _with_httpx(url: str, n: int, c: int) -> tuple[float, float, int]:
    key, bodies = os.urandom(32), _bodies(n)
    todo = iter(bodies)
    errors = 0
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def sender() -> None:
            nonlocal errors
            for msg_id, body in todo:
                r = await client.post(url, content=body, headers=_headers(key, msg_id, body))
                errors += r.status_code != 204

        cpu, start = _cpu(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(c)))
        return time.perf_counter() - start, _cpu() - cpu, errors


def measure(run: Run, client: str) -> ClientCeiling:
    c = concurrency()
    n = run.sizes.y1_requests if client == "aiohttp" else run.sizes.y1_httpx_requests
    url = run.receiver.url("y1", client, "x")
    go = _with_aiohttp if client == "aiohttp" else _with_httpx
    elapsed, cpu, errors = loadgen.run(go(url, n, c))
    result = ClientCeiling(client, n / elapsed, cpu / n * 1000, errors, c)
    print(
        f"  Y1 {client}: {result.rate:,.0f}/s at concurrency {c}, "
        f"{result.cpu_ms:.3f} ms CPU per request, {errors} errors"
    )
    return result


def aiohttp_ceiling(run: Run) -> ClientCeiling:
    return run.once("y1_aiohttp", lambda: measure(run, "aiohttp"))


def httpx_ceiling(run: Run) -> ClientCeiling:
    return run.once("y1_httpx", lambda: measure(run, "httpx"))


def rows(run: Run) -> list[Row]:
    out = []
    for ceiling in (aiohttp_ceiling(run), httpx_ceiling(run)):
        transport = "aiohttp" if ceiling.client == "aiohttp" else "httpx, default transport"
        out.append(
            Row(
                f"Y1 client ceiling: {transport}, c={ceiling.concurrency}",
                None,
                ceiling.rate,
                note=f"{ceiling.cpu_ms:.3f} ms CPU/request"
                + (f", {ceiling.errors} errors" if ceiling.errors else ""),
                void=ceiling.errors > 0,
                details={"cpu_ms_per_request": ceiling.cpu_ms},
            )
        )
    return out
