"""A database whose schema is behind the code is not served: readiness says so and
names the fix, and `serve` and `worker` refuse to start with one line that does."""

from __future__ import annotations

import pytest

from gateway.migrate import schema
from gateway.settings import Settings
from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway


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
