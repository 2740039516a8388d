"""Quick throughput measurement: fan-out deliveries per second on PostgreSQL + Redis.

    python -m bench [--events 2000] [--endpoints 10] [--workers 1]

Starts, on loopback only, a receiver process and `gateway serve` against a fresh
PostgreSQL database, publishes a bounded number of events with no worker running,
then starts N `gateway worker` processes and times how fast the receiver gets the
backlog. Beside it, in the same run,
the yardstick: a bare aiohttp client posting the same bodies to the same
receiver at the same concurrency. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import httpx

PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
API_KEY = "bench-" + uuid.uuid4().hex
RECEIVER = str(Path(__file__).with_name("receiver.py"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _pg(statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _yardstick(url: str, total: int, concurrency: int) -> float:
    body = json.dumps({"id": "evt_x", "type": "bench", "timestamp": "t", "data": {"i": 1}})
    connector = aiohttp.TCPConnector(limit=concurrency)
    sent = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one_worker() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                async with session.post(url, data=body,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()
        start = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


async def _publish(base: str, events: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=30) as client:
        queue = iter(range(events))

        async def one_worker() -> None:
            for i in queue:
                r = await client.post("/v1/events", json={"type": "bench.event",
                                                          "data": {"i": i}})
                r.raise_for_status()
        start = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - start)


def _count(receiver: str) -> int:
    return int(httpx.get(f"{receiver}/count", timeout=5).text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300, help="give up after this long")
    args = parser.parse_args()

    db = f"gateway_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg(f'CREATE DATABASE "{db}"'))
    from sqlalchemy.engine import make_url

    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": make_url(PG_URL).set(database=db).render_as_string(
            hide_password=False),
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_QUEUE_NAME": f"bench:{db}",
        "GATEWAY_API_KEY": API_KEY,
        "GATEWAY_ALLOWED_NETWORKS": "127.0.0.0/8",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    recv_port, api_port = _port(), _port()
    receiver = f"http://127.0.0.1:{recv_port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([sys.executable, RECEIVER, str(recv_port)]))
        _wait_http(f"{receiver}/count")
        yard = asyncio.run(_yardstick(f"{receiver}/y", 20000, 100))

        subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env=env, check=True,
                       capture_output=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port",
                                       str(api_port)], env=env))
        base = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{base}/healthz")
        for i in range(args.endpoints):
            httpx.post(f"{base}/v1/endpoints", json={"url": f"{receiver}/ep{i}"},
                       headers={"Authorization": f"Bearer {API_KEY}"}).raise_for_status()
        # Phase 1: publish with no worker running, so the API has the machine to itself.
        publish_rate = asyncio.run(_publish(base, args.events, 20))
        # Phase 2: start the workers and time how fast they drain the backlog.
        before = _count(receiver)
        expected = before + args.events * args.endpoints
        for _ in range(args.workers):
            procs.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"],
                                          env=env))
        deadline = time.perf_counter() + args.timeout
        while (got := _count(receiver)) == before and time.perf_counter() < deadline:
            time.sleep(0.01)
        start, first = time.perf_counter(), got
        while (got := _count(receiver)) < expected and time.perf_counter() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        delivered = got - before
        rate = (got - first) / elapsed
        print(f"publish:               {args.events} events, {publish_rate:,.0f}/s "
              f"(httpx client, concurrency 20, no worker running)")
        print(f"deliveries:            {delivered} of {args.events * args.endpoints} "
              f"to {args.endpoints} endpoints, {args.workers} worker(s)")
        print(f"gateway deliveries/s:  {rate:,.0f} (draining the published backlog)")
        print(f"Y1 aiohttp client/s:   {yard:,.0f} (bare client, same receiver, concurrency 100)")
        print(f"ratio:                 {rate / yard:.2f}")
        if delivered < args.events * args.endpoints:
            sys.exit("not every delivery arrived before the timeout")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
