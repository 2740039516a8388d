"""The gateway under test, all on loopback: `gateway serve` plus N `gateway worker`
processes on a fresh PostgreSQL database and the bench's Redis database, or
`gateway serve` alone on SQLite (embedded mode).

Everything a Stack starts it stops, the database it creates it drops, and the
Redis keys its gateway made it deletes. Redis database 14 is the benchmark's
(GATEWAY_BENCH_REDIS_URL to change it), but another benchmark may be running
there at the same time, so a key is taken as this stack's only if it appeared
while the stack ran and names its queue, a job in its queue, or an event or
delivery in its database (arq's job keys are not named after their queue).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis
from sqlalchemy.engine import make_url

from bench.procs import Proc, stop_many
from bench.receivers import free_port, wait_http
from gateway.crypto import generate_key

PG_URL = os.environ.get(
    "GATEWAY_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Workers finish attempts in flight on SIGTERM (GATEWAY_DELIVERY_TIMEOUT + 5 s at most).
STOP_TIMEOUT = 30.0


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(PG_URL))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


_IDS = re.compile(rb"(?:evt|dlv)_[0-9A-Za-z]{20,32}")


async def _existing_ids(db_url: str, ids: list[str]) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        rows = await conn.fetch(
            "SELECT id FROM event WHERE id = ANY($1::text[]) UNION ALL "
            "SELECT id FROM delivery WHERE id = ANY($1::text[])",
            ids,
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def redis_keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


class Stack:
    """`with Stack(run_dir, name) as stack:` a gateway, up and migrated; workers on demand."""

    def __init__(
        self,
        run_dir: Path,
        name: str,
        *,
        embedded: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.embedded = embedded
        self.dir = run_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.api_key = "bench-" + uuid.uuid4().hex
        self.db = f"gateway_bench_{uuid.uuid4().hex[:8]}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") or k.startswith("GATEWAY_BENCH_")
        }
        env.update(
            {
                "GATEWAY_API_KEY": self.api_key,
                "GATEWAY_SECRET_KEY": generate_key(),
                # The bench measures the gateway, not its rate limits.
                "GATEWAY_API_RATE_LIMIT": "1000000",
                "GATEWAY_INBOUND_RATE_LIMIT": "1000000",
                "GATEWAY_ALLOWED_NETWORKS": "127.0.0.0/8",
                "GATEWAY_LOG_LEVEL": "WARNING",
            }
        )
        if embedded:
            self.db_url = f"sqlite+aiosqlite:///{self.dir}/gateway.db"
        else:
            self.db_url = (
                make_url(PG_URL).set(database=self.db).render_as_string(hide_password=False)
            )
            self.queue = f"bench:{self.db}"
            env["GATEWAY_REDIS_URL"] = REDIS_URL
            env["GATEWAY_QUEUE_NAME"] = self.queue
        env["GATEWAY_DATABASE_URL"] = self.db_url
        env.update(settings or {})  # a workload's own GATEWAY_* settings
        self.env = env
        self.api = f"http://127.0.0.1:{free_port()}"
        self.server: Proc | None = None
        self.workers: list[Proc] = []
        self._db_created = False
        self._keys_before: set[bytes] = set()
        self._worker_count = 0

    def __enter__(self) -> Stack:
        try:
            if not self.embedded:
                self._keys_before = redis_keys(redis_client())
                asyncio.run(_pg(f'CREATE DATABASE "{self.db}"'))
                self._db_created = True
                subprocess.run(
                    [sys.executable, "-m", "gateway.cli", "migrate"],
                    env=self.env,
                    check=True,
                    capture_output=True,
                    timeout=120,
                    cwd=self.dir,
                )
            # Embedded `serve` migrates its SQLite database itself.
            self.server = self._spawn("serve", "serve", "--port", self.api.rsplit(":", 1)[1])
            wait_http(f"{self.api}/healthz", timeout=60, proc=self.server)
            print(
                f"  [{self.name}: gateway at {self.api} on "
                + ("SQLite" if self.embedded else f"{self.db}, queue {self.queue}")
                + "]"
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        started = time.monotonic()
        try:
            self.stop_workers()
            if self.server is not None:
                self.server.stop(STOP_TIMEOUT)
        finally:
            if not self.embedded:
                self.clean_redis()
            if self._db_created:
                asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))
                self._db_created = False
            print(
                f"  [{self.name}: stopped in {time.monotonic() - started:.1f}s"
                + ("" if self.embedded else f", {self.db} dropped")
                + "]"
            )

    def _spawn(self, name: str, *args: str) -> Proc:
        return Proc(
            name,
            [sys.executable, "-m", "gateway.cli", *args],
            log_dir=self.dir,
            env=self.env,
            cwd=self.dir,
        )

    # workers

    def start_workers(self, n: int, wait: bool = False) -> list[Proc]:
        """Start n workers; with `wait`, return once one polls the queue (arq's
        health-check key) and the others have had a moment to start too."""
        if self.embedded:
            raise RuntimeError("embedded mode has no workers")
        client = redis_client()
        health = f"{self.queue}:health-check"
        client.delete(health)
        started = []
        for _ in range(n):
            self._worker_count += 1
            started.append(self._spawn(f"worker{self._worker_count}", "worker"))
        self.workers.extend(started)
        if wait:
            deadline = time.monotonic() + 60
            while not client.exists(health):
                if time.monotonic() > deadline:
                    raise RuntimeError("no worker polled the queue within 60 s")
                for proc in started:
                    proc.check_alive()
                time.sleep(0.05)
            time.sleep(0.5 if n == 1 else 1.5)
        return started

    def stop_workers(self) -> None:
        stop_many(self.workers, STOP_TIMEOUT)
        self.workers = []

    def check_alive(self) -> None:
        for proc in [*self.workers, *([self.server] if self.server else [])]:
            proc.check_alive()

    # the API

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.api}{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {self.api_key}"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def endpoints(self, urls: list[str], event_type: str) -> list[str]:
        """Subscribe each URL to `event_type` (a `prefix.*` pattern or an exact type)."""
        return [
            self.admin("POST", "/v1/endpoints", json={"url": url, "event_types": [event_type]})[
                "id"
            ]
            for url in urls
        ]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    # Redis

    def our_redis_keys(self) -> set[bytes]:
        """The keys this stack's gateway made that are still there (see the docstring)."""
        client = redis_client()
        new = redis_keys(client) - self._keys_before
        queue = self.queue.encode()
        jobs = set(client.zrange(self.queue, 0, -1))  # type: ignore[arg-type]
        ids = {m.decode() for key in new for m in _IDS.findall(key)}
        ours = (
            asyncio.run(_existing_ids(self.db_url, sorted(ids)))
            if ids and self._db_created
            else set()
        )
        return {
            key
            for key in new
            if queue in key
            or key.split(b":", 2)[-1] in jobs
            or any(m.decode() in ours for m in _IDS.findall(key))
        }

    def clean_redis(self) -> None:
        keys = self.our_redis_keys()
        if keys:
            redis_client().delete(*keys)
