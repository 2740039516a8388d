"""The stack a benchmark runs against, all on loopback: a fresh PostgreSQL database,
Redis, a counting receiver, `gateway serve` and N `gateway worker` processes.

Everything it starts it stops, and the database it creates it drops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

import httpx
from sqlalchemy.engine import make_url

from gateway.crypto import generate_key

PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
RECEIVER = str(Path(__file__).with_name("receiver.py"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
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

    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Stack:
    def __init__(self) -> None:
        self.db = f"gateway_bench_{uuid.uuid4().hex[:8]}"
        self.api_key = "bench-" + uuid.uuid4().hex
        self.env = {
            **os.environ,
            "GATEWAY_DATABASE_URL": make_url(PG_URL).set(database=self.db).render_as_string(
                hide_password=False),
            "GATEWAY_REDIS_URL": REDIS_URL,
            "GATEWAY_QUEUE_NAME": f"bench:{self.db}",
            "GATEWAY_API_KEY": self.api_key,
            "GATEWAY_SECRET_KEY": generate_key(),
            "GATEWAY_API_RATE_LIMIT": "1000000",
            "GATEWAY_INBOUND_RATE_LIMIT": "1000000",
            "GATEWAY_ALLOWED_NETWORKS": "127.0.0.0/8",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        self.receiver = f"http://127.0.0.1:{free_port()}"
        self.api = f"http://127.0.0.1:{free_port()}"
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Stack:
        asyncio.run(_pg(f'CREATE DATABASE "{self.db}"'))
        try:
            self._spawn([sys.executable, RECEIVER, self.receiver.rsplit(":", 1)[1]])
            wait_http(f"{self.receiver}/count")
            subprocess.run([sys.executable, "-m", "gateway.cli", "migrate"], env=self.env,
                           check=True, capture_output=True)
            self._spawn([sys.executable, "-m", "gateway.cli", "serve", "--port",
                         self.api.rsplit(":", 1)[1]])
            wait_http(f"{self.api}/healthz")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in reversed(self._procs):
            proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=self.env)
        self._procs.append(proc)
        return proc

    def start_workers(self, n: int) -> None:
        for _ in range(n):
            self._spawn([sys.executable, "-m", "gateway.cli", "worker"])

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(method, f"{self.api}{path}",
                                 headers={"Authorization": f"Bearer {self.api_key}"},
                                 timeout=30, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response

    def received(self) -> int:
        return int(httpx.get(f"{self.receiver}/count", timeout=5).text)
