"""The gateway as users run it, for the tests: its processes on one backend (SQLite with
in-process delivery, or PostgreSQL + Redis with an arq worker), an API client, and
direct reads of its database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from sqlalchemy.engine import make_url

from gateway.crypto import generate_key
from tests.support.dns import ScriptedDNS
from tests.support.receiver import wait_until

API_KEY = "test-key-" + uuid.uuid4().hex
SECRET_KEY = generate_key()
TABLES = (
    "attempt",
    "delivery",
    "event",
    "endpoint",
    "source_refusal",
    "source",
    "console_session",
    "api_key",
    "portal_revocation",
    "event_type",
    "ordering_key",
)
# Small numbers so that whole retry schedules run in seconds.
TEST_ENV = {
    "GATEWAY_API_KEY": API_KEY,
    "GATEWAY_SECRET_KEY": SECRET_KEY,
    # Limits are tested with keys and sources of their own; the suite itself is not limited.
    "GATEWAY_API_RATE_LIMIT": "1000000",
    "GATEWAY_INBOUND_RATE_LIMIT": "1000000",
    "GATEWAY_AUTH_FAILURE_RATE_LIMIT": "1000000",
    # Tests assert on the types they publish; the bound has a test of its own.
    "GATEWAY_METRICS_EVENT_TYPES": "10000",
    # Only the receiver's address: the rest of 127/8 plays the private networks.
    "GATEWAY_ALLOWED_NETWORKS": "127.0.0.1/32,::1/128",
    "GATEWAY_RETRY_SCHEDULE": "0.3,0.6,1",
    "GATEWAY_DELIVERY_TIMEOUT": "2",
    "GATEWAY_SWEEP_INTERVAL": "1",
    "GATEWAY_SWEEP_GRACE": "2",
    "GATEWAY_BREAKER_BASE_OPEN": "0.3",
    "GATEWAY_BREAKER_MAX_OPEN": "1",
    "GATEWAY_LOG_LEVEL": "INFO",
    # Requests that trickle in are cut off this soon (tests/api/test_http_limits.py).
    "GATEWAY_REQUEST_TIMEOUT": "4",
}
# Rows `Gateway.reset` deletes before it truncates instead, which leaves no dead rows.
DEAD_ROWS_BEFORE_TRUNCATE = 20_000
PG_URL = os.environ.get(
    "GATEWAY_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


PG_MISSING: str | None = None
if not _answers(PG_URL, 5432):
    PG_MISSING = f"PostgreSQL does not answer at {make_url(PG_URL).render_as_string()}"
elif not _answers(REDIS_URL, 6379):
    PG_MISSING = f"Redis does not answer at {REDIS_URL}"


def redis_client(url: str) -> redis.Redis:
    """A client of the Redis a URL names, the plain form or Sentinel's master."""
    from redis.sentinel import Sentinel

    from gateway.redisurl import parse_sentinel

    target = parse_sentinel(url)
    if target is None:
        return redis.Redis.from_url(url)
    return Sentinel(target.sentinels, socket_timeout=5).master_for(
        target.master, db=target.db, password=target.password, socket_timeout=5
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """The gateway's processes for one backend, and an API client for them."""

    def __init__(
        self, backend: str, workdir: Path, dns: ScriptedDNS, redis_url: str = REDIS_URL
    ) -> None:
        self.backend = backend
        self.workdir = workdir
        self.dns = dns
        self.env = {**os.environ, **TEST_ENV, "GATEWAY_DNS_SERVERS": dns.address}
        for name in ("GATEWAY_REDIS_URL", "GATEWAY_DATABASE_URL", "COLUMNS", "LINES"):
            self.env.pop(name, None)
        if backend == "sqlite":
            self.database_url = f"sqlite+aiosqlite:///{workdir}/gateway.db"
            self.redis_url: str | None = None
        else:
            self.database_url = _create_pg_database()
            self.redis_url = redis_url
            self.queue = f"gwtest:{uuid.uuid4().hex[:8]}"
            self.env["GATEWAY_REDIS_URL"] = self.redis_url
            self.env["GATEWAY_QUEUE_NAME"] = self.queue
        self.env["GATEWAY_DATABASE_URL"] = self.database_url
        self.port = free_port()
        self._dead_rows = 0  # rows `reset` deleted since it last truncated
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )

    # processes

    def _spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A management command (`gateway ARGS`) with this gateway's environment.

        Run in this process with typer's runner: a Python process per command, most
        of it spent importing, was most of the CLI tests' time. `gateway serve` and
        `gateway worker` still run as processes (`_spawn`), and so does every command
        of `run_cli_process`. An exception the command lets out shows in stderr as a
        traceback, as it would in a terminal."""
        from typer.testing import CliRunner

        from gateway.cli import app

        # The command sees exactly this gateway's environment, nothing of the tests'.
        env: dict[str, str | None] = {
            name: None for name in os.environ if name.startswith("GATEWAY_")
        }
        env.update(self.env)
        before = os.getcwd()
        os.chdir(self.workdir)
        try:
            result = CliRunner().invoke(app, list(args), env=env)
        finally:
            os.chdir(before)
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(result.exception))
        return subprocess.CompletedProcess(
            ["gateway", *args], result.exit_code, result.stdout, stderr
        )

    def run_cli_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command as its own process, exactly as users run it."""
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_server(self) -> None:
        self.server = self._spawn("serve", "--port", str(self.port), name="server")
        self._wait_server()

    def _wait_server(self) -> None:
        wait_until(self._healthy, 30, "the gateway to answer /healthz")

    def _healthy(self) -> bool:
        assert self.server is not None
        if self.server.poll() is not None:
            raise AssertionError(f"gateway serve exited: {self.log_tail('server')}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc, wait = self._spawn_worker()
        wait()
        return proc

    def _spawn_worker(self) -> tuple[subprocess.Popen[bytes], Callable[[], None]]:
        """A worker started, and what waits until it polls the queue."""
        assert self.redis_url is not None
        client = redis_client(self.redis_url)
        client.delete(f"{self.queue}:health-check")
        proc = self._spawn("worker", name=f"worker{len(self.workers)}")
        self.workers.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gateway worker exited: {self.log_tail('worker0')}")
            return bool(client.exists(f"{self.queue}:health-check"))

        return proc, lambda: wait_until(ready, 30, "the worker to start")

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        proc.send_signal(sig)
        proc.wait(30)
        if proc in self.workers:
            self.workers.remove(proc)

    def kill_server(self, sig: int = signal.SIGKILL) -> None:
        assert self.server is not None
        self.server.send_signal(sig)
        self.server.wait(30)

    def start(self) -> None:
        if self.backend == "postgres":
            result = self.run_cli("migrate")
            assert result.returncode == 0, result.stderr
        # The API and the worker start side by side (each is mostly imports).
        self.server = self._spawn("serve", "--port", str(self.port), name="server")
        worker_ready = self._spawn_worker()[1] if self.backend == "postgres" else None
        self._wait_server()
        if worker_ready is not None:
            worker_ready()

    @contextmanager
    def running(self) -> Iterator[Gateway]:
        """Started for the block, and stopped (its database dropped) however it ends."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        for proc in [*self.workers, self.server]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.server]:
            if proc is not None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.api.close()
        if self.backend == "postgres":
            _drop_pg_database(self.database_url)

    def leaked_secrets(self) -> list[str]:
        """Log lines of this gateway's processes that carry a secret, key or signature."""
        pattern = re.compile(
            re.escape(API_KEY)
            + "|"
            + re.escape(SECRET_KEY)
            + r"|whsec_[A-Za-z0-9+/]{8}|gw_[A-Za-z0-9_\-]{16}|Bearer [^\s\[]"
        )
        return [
            f"{log.name}: {line[:200]}"
            for log in self.workdir.glob("*.log")
            for line in log.read_text(errors="replace").splitlines()
            if pattern.search(line)
        ]

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # state

    def reset(self) -> None:
        """Empty every table: each test starts from nothing."""
        if self.backend == "sqlite":
            path = make_url(self.database_url).database
            with sqlite3.connect(str(path), timeout=30) as conn:
                for table in TABLES:
                    conn.execute(f"DELETE FROM {table}")
        else:
            # Redis is left alone: jobs of earlier tests name rows that are gone now,
            # so they do nothing. DELETE, children first, in one transaction: a few ms
            # on the few rows a test leaves, where TRUNCATE (new files for every table,
            # partition and index) took 0.2 to 0.7 s per test. The test server runs
            # without autovacuum, so once the dead rows add up a TRUNCATE clears them.
            truncate = self._dead_rows >= DEAD_ROWS_BEFORE_TRUNCATE
            deleted = asyncio.run(_pg_empty(self.database_url, truncate=truncate))
            self._dead_rows = 0 if truncate else self._dead_rows + deleted

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """Read the database directly (for checks the API does not expose)."""
        [rows] = self.sql_each(statement)
        return rows

    def sql_each(self, *statements: str) -> list[list[tuple[object, ...]]]:
        """`sql` of several statements, over one connection."""
        if self.backend == "sqlite":
            with sqlite3.connect(str(make_url(self.database_url).database), timeout=30) as conn:
                return [list(conn.execute(statement).fetchall()) for statement in statements]
        return asyncio.run(_pg_fetch_each(self.database_url, statements))


def asyncpg_dsn(url: str) -> str:
    """A gateway database URL as asyncpg's own `connect` takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _pg_empty(url: str, truncate: bool) -> int:
    """Empty the gateway's tables; the number of rows deleted (0 when truncated)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if truncate:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
            return 0
        for tries_left in (2, 1, 0):
            deleted = 0
            try:
                async with conn.transaction():
                    for table in TABLES:
                        status = await conn.execute(f"DELETE FROM {table}")  # "DELETE <n>"
                        deleted += int(status.split()[-1])
            except asyncpg.DeadlockDetectedError:
                # Against a transaction of the gateway's still at an earlier test's rows.
                if not tries_left:
                    raise
            else:
                return deleted
        raise AssertionError("unreachable")
    finally:
        await conn.close()


async def _pg_fetch_each(url: str, statements: tuple[str, ...]) -> list[list[tuple[object, ...]]]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return [[tuple(row) for row in await conn.fetch(statement)] for statement in statements]
    finally:
        await conn.close()


def _create_pg_database() -> str:
    """A fresh database for this run, so the tests never touch anything else."""
    name = f"gateway_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_pg_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or ""),
    ),
]


@contextmanager
def own_gateway(backend: str, workdir: Path, dns: ScriptedDNS, **env: str) -> Iterator[Gateway]:
    """A gateway of a test's (or module's) own, with these settings over the tests' ones."""
    if backend == "postgres" and PG_MISSING:
        pytest.skip(PG_MISSING)
    gateway = Gateway(backend, workdir, dns)
    gateway.env.update(env)
    with gateway.running():
        yield gateway
