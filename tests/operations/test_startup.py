"""`gateway serve` and `gateway worker` refuse a configuration that cannot work in one line
that says what and how to fix (no traceback), and start with a warning when only Redis is
down. Each case runs the real command as a process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, PG_URL, Gateway, free_port
from tests.support.receiver import wait_until


def _dead_port() -> int:
    return free_port()  # free: nothing listens there, so connections are refused


def _gateway(tmp_path: Path, **env: str | None) -> Gateway:
    gw = Gateway("sqlite", tmp_path, ScriptedDNS())  # its processes only, started by hand
    for name, value in env.items():
        if value is None:
            gw.env.pop(name, None)
        else:
            gw.env[name] = value
    return gw


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in lines[0]
    return lines[0]


needs_pg = pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")


@needs_pg
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_shared_database_without_a_secret_key(tmp_path: Path, command: str) -> None:
    gw = _gateway(
        tmp_path,
        GATEWAY_DATABASE_URL=PG_URL,
        GATEWAY_REDIS_URL="redis://127.0.0.1:6379/15",
        GATEWAY_SECRET_KEY=None,
    )
    result = gw.run_cli_process(command)
    assert result.returncode == 2
    line = _one_line(result)
    assert "GATEWAY_SECRET_KEY must be set" in line and "gateway secret-key generate" in line


def test_a_database_url_that_does_not_parse(tmp_path: Path) -> None:
    result = _gateway(tmp_path, GATEWAY_DATABASE_URL="postgres//oops").run_cli_process("serve")
    assert result.returncode == 2
    line = _one_line(result)
    assert "GATEWAY_DATABASE_URL" in line and "postgresql+asyncpg://" in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_that_cannot_be_reached(tmp_path: Path, command: str) -> None:
    url = f"postgresql+asyncpg://gateway:hunter2@127.0.0.1:{_dead_port()}/gateway"
    gw = _gateway(tmp_path, GATEWAY_DATABASE_URL=url, GATEWAY_REDIS_URL="redis://127.0.0.1:6379/15")
    result = gw.run_cli_process(command)
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith("error: cannot use the database at postgresql+asyncpg://gateway:***@")
    assert "hunter2" not in line and "GATEWAY_DATABASE_URL" in line


def test_an_embedded_database_in_a_folder_that_is_not_there(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/missing/gateway.db"
    result = _gateway(tmp_path, GATEWAY_DATABASE_URL=url).run_cli_process("serve")
    assert result.returncode == 1
    assert "the folder of the SQLite database" in _one_line(result)


def test_serve_with_redis_down_warns_and_starts(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, GATEWAY_REDIS_URL=f"redis://127.0.0.1:{_dead_port()}/0")
    server = gw._spawn("serve", "--port", str(gw.port), name="server")
    try:
        ready = wait_until(
            lambda: _answer(f"http://127.0.0.1:{gw.port}/readyz"), 30, "serve to answer /readyz"
        )
        assert ready.status_code == 503  # and the API is up, saying why it is not ready
        text = (tmp_path / "server.log").read_text()
        assert "warning: Redis at redis://127.0.0.1:" in text and "does not answer" in text
    finally:
        server.terminate()
        server.wait(30)


def _answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
