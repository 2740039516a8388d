"""One mode, one configuration: the server, the workers and the CLI read the same settings
(the environment, then the dotenv file), so what one accepts the others accept too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, PG_MISSING, Gateway
from tests.support.helpers import publish
from tests.support.receiver import Receiver


def test_the_dotenv_file_comes_after_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text("GATEWAY_DELIVERY_TIMEOUT=7\nGATEWAY_RETRY_SCHEDULE=1,2\nOTHER=x\n")
    monkeypatch.setenv("GATEWAY_ENV_FILE", str(env_file))
    monkeypatch.setenv("GATEWAY_RETRY_SCHEDULE", "3")
    settings = Settings()
    assert settings.delivery_timeout == 7  # from the file
    assert settings.retry_schedule == [3]  # the environment wins
    monkeypatch.setenv("GATEWAY_ENV_FILE", "")  # empty: no file is read
    assert Settings().delivery_timeout == 15


@pytest.mark.parametrize("name", ["GATEWAY_SECRET_KEY", "GATEWAY_API_KEY", "GATEWAY_METRICS_TOKEN"])
def test_an_empty_credential_is_refused_not_taken_as_unset(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # `export GATEWAY_SECRET_KEY=$(gateway secret-key generate)` without gateway on PATH.
    monkeypatch.setenv(name, "")
    with pytest.raises(ValidationError, match=f"{name} is set but empty"):
        Settings()
    monkeypatch.delenv(name)
    Settings()  # unset is fine


def test_serve_with_an_empty_secret_key_says_so_in_one_line(tmp_path: Path) -> None:
    gw = Gateway("sqlite", tmp_path, ScriptedDNS())  # never started: only its CLI runs
    gw.env["GATEWAY_SECRET_KEY"] = ""
    result = gw.run_cli_process("serve", "--port", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "invalid configuration GATEWAY_SECRET_KEY: GATEWAY_SECRET_KEY is set but empty (did "
        "the command that should have produced it fail?); unset it or give it a value"
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dev_setup_makes_the_cli_server_and_worker_agree(
    backend: str, tmp_path: Path, dns: ScriptedDNS, receiver: Receiver, path: str
) -> None:
    if backend == "postgres" and PG_MISSING:
        pytest.skip(PG_MISSING)
    gw = Gateway(backend, tmp_path, dns)
    # As a user's shell: no allowance in the environment, the dotenv file read.
    for name in ("GATEWAY_ALLOWED_NETWORKS", "GATEWAY_ENV_FILE"):
        gw.env.pop(name, None)
    url = receiver.url(path)
    try:
        gw.run_cli("migrate")
        refused = gw.run_cli("endpoints", "create", url)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "GATEWAY_ALLOWED_NETWORKS" in refused.stderr

        setup = gw.run_cli_process("dev-setup")
        assert setup.returncode == 0, setup.stderr
        assert "GATEWAY_ALLOWED_NETWORKS=127.0.0.0/8,::1/128" in (tmp_path / ".env").read_text()

        created = gw.run_cli("endpoints", "create", url, "--json")
        assert created.returncode == 0, created.stderr
        endpoint = json.loads(created.stdout)
        gw.start()  # the server (and on PostgreSQL the worker) read the same file
        assert gw.api.post("/v1/endpoints", json={"url": url}).status_code == 201
        event = publish(gw, "user.created", endpoint_ids=[endpoint["id"]])
        [request] = receiver.wait_for(path, 1)
        assert request.headers["webhook-id"] == event["id"]

        again = gw.run_cli_process("dev-setup")  # keeps what is there
        assert "keeps GATEWAY_ALLOWED_NETWORKS" in again.stderr
    finally:
        gw.stop()


@pytest.mark.parametrize(
    "path",
    [
        "gateway.secret_key",
        "gateway.api_key",
        "gateway.db",
        "gateway.db-wal",
        ".env",
        "deploy/local/gateway.secret_key",
    ],
)
def test_what_a_run_keeps_beside_its_database_is_never_committed(path: str) -> None:
    """The key file decrypts every stored secret; the API key is an admin credential."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "--quiet", "--no-index", path], check=False
    )
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
