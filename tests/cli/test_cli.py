"""The `gateway` command as a new user meets it: migrate, first start, worker without Redis."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from gateway.cli import app
from tests.support.receiver import wait_until


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    env.update(extra)
    return env


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["migrate"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    import sqlite3

    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"endpoint", "event", "delivery", "attempt", "alembic_version"} <= tables


def test_worker_without_redis_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker"], env=_env(tmp_path))
    assert result.exit_code == 2
    assert "GATEWAY_REDIS_URL" in result.output


def test_invalid_configuration_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, GATEWAY_DELIVERY_TIMEOUT="30", GATEWAY_JOB_TIMEOUT="31")
    result = CliRunner().invoke(app, ["migrate"], env=env)
    assert result.exit_code == 2
    assert "GATEWAY_JOB_TIMEOUT" in result.output


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def up() -> bool:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, "gateway serve")
    return proc, port


def test_first_embedded_start_generates_a_key_prints_it_once_and_keeps_it(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path)
    key_file = tmp_path / "gateway.api_key"
    try:
        key = key_file.read_text().strip()
        assert key.startswith("gw_")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/endpoints").status_code == 401
        ok = httpx.get(f"{base}/v1/endpoints", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        first_output = proc.communicate(timeout=30)[0]
    assert first_output.count(key) == 1

    # The second start uses the kept key and does not print it again.
    proc, port = _serve(tmp_path)
    try:
        ok = httpx.get(
            f"http://127.0.0.1:{port}/v1/endpoints", headers={"Authorization": f"Bearer {key}"}
        )
        assert ok.status_code == 200
    finally:
        proc.terminate()
        second_output = proc.communicate(timeout=30)[0]
    assert key not in second_output
    assert key_file.read_text().strip() == key
