"""What the `gateway` command imports before doing anything: a structural check, not a
timed one. Importing FastAPI, arq, aiohttp, SQLAlchemy and the rest made every command,
`--help` included, wait for the server's and the worker's libraries; each command now
imports its own part only (see the comments at the deferred imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Serving and delivering: no management command needs them.
SERVER_AND_WORKER = ["fastapi", "starlette", "uvicorn", "arq", "redis", "aiohttp", "uvloop"]
# Needed by a command that reads the database, not by `--help` or a typo.
DATABASE_AND_MODELS = ["sqlalchemy", "sqlmodel", "pydantic_settings", "asyncpg", "aiosqlite"]
# Publishing's counters and spans: only commands that publish.
TELEMETRY = ["prometheus_client", "opentelemetry"]

# Runs the CLI in a fresh interpreter, then names the top-level modules it imported.
PROBE = """
import json, sys
from gateway.cli import app
try:
    app(sys.argv[2:], prog_name="gateway")
except SystemExit:
    pass
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules `gateway ARGS` imports, run in embedded mode on a SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    env["GATEWAY_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    env["GATEWAY_ENV_FILE"] = ""
    listing = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return set(json.loads(listing.read_text()))


def loaded(modules: set[str], packages: list[str]) -> list[str]:
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


def test_help_imports_neither_the_server_nor_the_database(tmp_path: Path) -> None:
    heavy = SERVER_AND_WORKER + DATABASE_AND_MODELS + TELEMETRY + ["gateway.settings"]
    for args in ([], ["--help"]):
        modules = imported(tmp_path, *args)
        assert "gateway.cli" in modules
        assert loaded(modules, [*heavy, "pydantic"]) == [], args
    # A command's own parameters are checked by typer with pydantic: that one stays.
    for args in (["endpoints", "--help"], ["sources", "create", "--help"]):
        assert loaded(imported(tmp_path, *args), heavy) == [], args


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("startup")
    imported(path, "migrate")
    return path


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        (["endpoints", "list"], []),
        (["endpoints", "create", "http://127.0.0.1:9/x"], ["aiohttp"]),  # its DNS check
        (["events", "list"], []),
        (["events", "publish", "user.created", "--data", "{}"], TELEMETRY),
        (["deliveries", "list"], []),
        (["deliveries", "show", "dlv_01NOSUCHDELIVERY0000000000"], []),
        (["keys", "list"], []),
        (["sources", "list"], []),
    ],
    ids=" ".join,
)
def test_management_commands_import_no_server_or_worker(
    database: Path, command: list[str], allowed: list[str]
) -> None:
    modules = imported(database, *command)
    assert "sqlalchemy" in modules  # the command did reach the database
    unwanted = [p for p in SERVER_AND_WORKER + TELEMETRY if p not in allowed]
    assert loaded(modules, unwanted) == []
