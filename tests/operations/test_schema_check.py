"""A database whose schema is behind the code is not served: readiness says so and
names the fix, and `serve` and `worker` refuse to start with one line that does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.migrate import schema
from gateway.settings import Settings
from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway
from tests.support.receiver import wait_until


def _revisions(gw: Gateway) -> tuple[str, str]:
    """(head, the revision before it) of the migrations."""
    known = schema(Settings(_env_file=None, database_url=gw.database_url))
    [current] = gw.sql("SELECT version_num FROM alembic_version")[0]
    assert current == known.head
    previous = next(r for r in sorted(known.known) if r != known.head)
    return str(known.head), previous


def test_readiness_is_503_naming_the_fix_while_the_schema_is_behind(gw: Gateway) -> None:
    head, older = _revisions(gw)
    gw.sql(f"UPDATE alembic_version SET version_num = '{older}'")
    try:
        ready = gw.api.get("/readyz")
        assert ready.status_code == 503, ready.text
        checks = ready.json()["checks"]
        assert "run: gateway migrate" in checks["schema"] and older in checks["schema"]
        assert checks["database"] == "ok"
    finally:
        gw.sql(f"UPDATE alembic_version SET version_num = '{head}'")
    assert gw.api.get("/readyz").json()["checks"]["schema"] == "ok"


@pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_serve_and_worker_refuse_a_database_never_migrated(
    tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS, command: list[str]
) -> None:
    gateway = Gateway("postgres", tmp_path_factory.mktemp("unmigrated"), dns)
    try:
        result = gateway.run_cli_process(*command)
    finally:
        gateway.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "no schema" in line and "run: gateway migrate" in line, line


@pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")
def test_migrate_check_fails_while_behind_and_passes_at_head(
    tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> None:
    gateway = Gateway("postgres", tmp_path_factory.mktemp("check"), dns)
    try:
        never = gateway.run_cli("migrate", "--check")
        assert never.returncode == 1, never.stdout + never.stderr
        assert "no schema" in never.stderr and "run: gateway migrate" in never.stderr
        # --check changes nothing: the database still has no schema.
        assert gateway.run_cli("migrate", "--check").returncode == 1

        assert gateway.run_cli("migrate").returncode == 0
        ready = gateway.run_cli("migrate", "--check")
        assert ready.returncode == 0, ready.stderr
        assert "ready" in ready.stderr

        _head, older = _revisions(gateway)
        gateway.sql(f"UPDATE alembic_version SET version_num = '{older}'")
        behind = gateway.run_cli("migrate", "--check", "--wait", "0.5")
        assert behind.returncode == 1, behind.stderr
        assert older in behind.stderr.splitlines()[-1]
        assert "run: gateway migrate" in behind.stderr.splitlines()[-1]
        assert gateway.sql("SELECT version_num FROM alembic_version") == [(older,)]
    finally:
        gateway.stop()


@pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")
def test_migrate_check_wait_returns_once_the_schema_is_migrated(
    tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> None:
    """What the Deployments' init containers do while the migrate Job runs."""
    workdir = tmp_path_factory.mktemp("wait")
    gateway = Gateway("postgres", workdir, dns)
    log = workdir / "wait.log"
    try:
        with log.open("wb") as out:
            waiter = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "migrate", "--check", "--wait", "120"],
                env=gateway.env,
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: "waiting" in log.read_text(), 60, "the check to start waiting")
            assert waiter.poll() is None, log.read_text()
            assert gateway.run_cli("migrate").returncode == 0
            wait_until(lambda: waiter.poll() is not None, 30, "the waiting check to end")
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait(10)
        assert waiter.returncode == 0, log.read_text()
        assert "no schema" in log.read_text() and "ready" in log.read_text()
    finally:
        gateway.stop()
