"""The management commands as an operator runs them: real processes, real database, both backends.

Each command is run with `python -m gateway.cli` in the gateway's environment
(`gw.run_cli`), and what it did is checked through the API. Errors must be a
message and an exit code (1: the operation failed, 2: the input is wrong), never
a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.timeutil import rfc3339
from tests.support.gateway import API_KEY, TEST_ENV, Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until

MAX_ATTEMPTS = len(TEST_ENV["GATEWAY_RETRY_SCHEDULE"].split(",")) + 1
UNREACHABLE = "http://127.0.0.1:9/x"  # allowed by the test gateway; nothing listens there


# small steps


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def as_json(gw: Gateway, *args: str) -> Any:
    return json.loads(ok(gw.run_cli(*args, "--json")).stdout)


def refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command failed with `code` and a message naming `words`, without a traceback."""
    message = result.stderr
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{message}"
    assert "Traceback" not in message and "Traceback" not in result.stdout, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def run_with_env(gw: Gateway, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`gw.run_cli`, with another environment for this one call."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        cwd=gw.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failed_delivery(gw: Gateway, receiver: Receiver, path: str) -> tuple[str, str]:
    """(endpoint id, delivery id) of a delivery that has failed every attempt."""
    receiver.set(path, Reply(500))
    endpoint = make_endpoint(gw, receiver.url(path))
    [delivery] = deliveries_of(gw, publish(gw)["id"])
    wait_delivery(gw, delivery["id"], "failed", timeout=20)
    return endpoint["id"], delivery["id"]


def with_stdin(gw: Gateway, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A command as its own process with `text` on its stdin (an answer, a secret)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=gw.env,
        cwd=gw.workdir,
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )


def dispatch_note(gw: Gateway) -> str:
    return "embedded mode" if gw.backend == "sqlite" else "queued for the workers"


# keys


def test_keys_list_and_revoke(gw: Gateway) -> None:
    key = ok(gw.run_cli("keys", "create", "--name", "ci", "--tenant", "acme")).stdout.strip()
    client = httpx.Client(base_url=gw.api.base_url, headers={"Authorization": f"Bearer {key}"})
    with client:
        assert client.get("/v1/endpoints").status_code == 200

        listed = as_json(gw, "keys", "list")
        [row] = listed["data"]
        assert listed["next_cursor"] is None
        assert row["name"] == "ci" and row["tenant_id"] == "acme"
        assert key.startswith(row["key_prefix"]) and row["revoked_at"] is None
        assert "key_hash" not in row and key not in json.dumps(listed)
        table = ok(gw.run_cli("keys", "list")).stdout
        assert row["id"] in table and "acme" in table

        revoked = as_json(gw, "keys", "revoke", row["id"])
        assert revoked["id"] == row["id"] and revoked["revoked_at"] is not None
        # Refused within the key cache's lifetime in the running server.
        wait_until(
            lambda: client.get("/v1/endpoints").status_code == 401,
            10,
            "the revoked key to be refused",
        )
    again = ok(gw.run_cli("keys", "revoke", row["id"]))
    assert "already revoked" in again.stderr

    refused(gw.run_cli("keys", "revoke", "key_01NOSUCHKEY000000000000000"), 1, "not found")


def test_keys_list_mentions_the_bootstrap_key(gw: Gateway) -> None:
    """The gateway's GATEWAY_API_KEY works, and is not in the database: it is named, never shown."""
    listed = as_json(gw, "keys", "list")
    assert listed["data"] == []
    assert listed["bootstrap_key"] == {"configured": True, "from": "GATEWAY_API_KEY"}
    result = ok(gw.run_cli("keys", "list"))
    assert "no API keys in the database" in result.stderr
    assert "bootstrap admin key: configured by GATEWAY_API_KEY" in result.stdout
    assert API_KEY not in result.stdout + result.stderr + json.dumps(listed)
    # Only the first page says it.
    ok(gw.run_cli("keys", "create", "--name", "a"))
    ok(gw.run_cli("keys", "create", "--name", "b"))
    first = as_json(gw, "keys", "list", "--limit", "1")
    later = ok(gw.run_cli("keys", "list", "--limit", "1", "--cursor", first["next_cursor"]))
    assert "bootstrap" not in later.stdout


def test_keys_list_names_embedded_modes_key_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=_env(tmp_path)).exit_code == 0
    none_yet = runner.invoke(app, ["keys", "list"], env=_env(tmp_path))
    assert none_yet.exit_code == 0, none_yet.output
    assert "none yet" in none_yet.stdout and str(tmp_path / "gateway.api_key") in none_yet.stdout

    key = "gw_generated_by_the_first_serve_0123456789"
    (tmp_path / "gateway.api_key").write_text(key + "\n")
    kept = runner.invoke(app, ["keys", "list"], env=_env(tmp_path))
    assert f"kept in {tmp_path / 'gateway.api_key'}" in kept.stdout and key not in kept.output
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"], env=_env(tmp_path)).stdout)
    assert listed["bootstrap_key"] == {
        "configured": True,
        "from": str(tmp_path / "gateway.api_key"),
    }
    # GATEWAY_API_KEY comes first, as for the server; with Redis there is no key file.
    chosen = runner.invoke(app, ["keys", "list"], env=_env(tmp_path, GATEWAY_API_KEY="x" * 24))
    assert "configured by GATEWAY_API_KEY" in chosen.stdout and "x" * 24 not in chosen.output
    redis = runner.invoke(
        app, ["keys", "list"], env=_env(tmp_path, GATEWAY_REDIS_URL="redis://127.0.0.1:1/0")
    )
    assert "none (GATEWAY_API_KEY is not set)" in redis.stdout


# endpoints


def test_endpoints_create_list_disable(gw: Gateway) -> None:
    created = as_json(
        gw,
        "endpoints",
        "create",
        UNREACHABLE,
        "--event-type",
        "user.*",
        "--event-type",
        "order.created",
        "--tenant",
        "acme",
        "--description",
        "billing [bold]hook[/bold]",
    )
    assert created["url"] == UNREACHABLE
    assert created["event_types"] == ["user.*", "order.created"]
    assert created["tenant_id"] == "acme" and created["disabled"] is False
    assert created["description"] == "billing [bold]hook[/bold]"
    assert created["secret"].startswith("whsec_")
    # The API sees the same endpoint, signing with the secret the command printed.
    shown = gw.api.get(f"/v1/endpoints/{created['id']}").json()
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    assert (
        gw.api.get(f"/v1/endpoints/{created['id']}/secret").json()["secret"] == (created["secret"])
    )

    table = ok(gw.run_cli("endpoints", "create", UNREACHABLE)).stdout
    [other] = [e for e in gw.api.get("/v1/endpoints").json()["data"] if e["id"] != created["id"]]
    assert other["id"] in table
    assert gw.api.get(f"/v1/endpoints/{other['id']}/secret").json()["secret"] in table

    everything = as_json(gw, "endpoints", "list")
    assert [e["id"] for e in everything["data"]] == [other["id"], created["id"]]
    assert all("secret" not in e for e in everything["data"])
    acme = as_json(gw, "endpoints", "list", "--tenant", "acme")
    assert [e["id"] for e in acme["data"]] == [created["id"]]
    first = as_json(gw, "endpoints", "list", "--limit", "1")
    assert [e["id"] for e in first["data"]] == [other["id"]]
    rest = as_json(gw, "endpoints", "list", "--limit", "1", "--cursor", first["next_cursor"])
    assert [e["id"] for e in rest["data"]] == [created["id"]] and rest["next_cursor"] is None
    listing = ok(gw.run_cli("endpoints", "list")).stdout
    assert created["id"] in listing and other["id"] in listing

    disabled = as_json(gw, "endpoints", "disable", created["id"])
    assert disabled["id"] == created["id"] and disabled["disabled"] is True
    assert gw.api.get(f"/v1/endpoints/{created['id']}").json()["disabled"] is True
    assert as_json(gw, "endpoints", "enable", created["id"])["disabled"] is False

    refused(gw.run_cli("endpoints", "disable", "ep_01NOSUCHENDPOINT0000000000"), 1, "not found")


def test_endpoints_delete(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint_id, delivery_id = failed_delivery(gw, receiver, path)
    kept = make_endpoint(gw, UNREACHABLE)

    # Nobody to answer (stdin closed), or a no: nothing is deleted.
    refused(gw.run_cli("endpoints", "delete", endpoint_id), 2, "--yes")
    answered_no = with_stdin(gw, "n\n", "endpoints", "delete", endpoint_id)
    refused(answered_no, 1, "nothing was deleted")
    assert receiver.url(path) in answered_no.stderr  # the question named the endpoint
    assert gw.api.get(f"/v1/endpoints/{endpoint_id}").status_code == 200

    deleted = json.loads(
        ok(with_stdin(gw, "y\n", "endpoints", "delete", endpoint_id, "--json")).stdout
    )
    assert deleted["id"] == endpoint_id and deleted["url"] == receiver.url(path)
    assert "secret" not in deleted
    # Gone with its deliveries and their attempt logs; the other endpoint stays.
    assert gw.api.get(f"/v1/endpoints/{endpoint_id}").status_code == 404
    assert gw.api.get(f"/v1/deliveries/{delivery_id}").status_code == 404
    assert [e["id"] for e in gw.api.get("/v1/endpoints").json()["data"]] == [kept["id"]]

    ok(gw.run_cli("endpoints", "delete", kept["id"], "--yes"))
    assert gw.api.get("/v1/endpoints").json()["data"] == []
    refused(gw.run_cli("endpoints", "delete", endpoint_id, "--yes"), 1, "not found")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["http://10.0.0.1/hook"], ["URL", "private", "GATEWAY_ALLOWED_NETWORKS"]),
        (["ftp://127.0.0.1/hook"], ["URL", "http or https"]),
        (["not a url"], ["URL", "spaces"]),
        ([UNREACHABLE, "--event-type", "no spaces"], ["--event-type", "'no spaces'"]),
        ([UNREACHABLE, "--tenant", ""], ["--tenant"]),
    ],
    ids=["private", "scheme", "garbage", "event-type", "tenant"],
)
def test_endpoints_create_refuses_invalid_input(
    gw: Gateway, args: list[str], words: list[str]
) -> None:
    refused(gw.run_cli("endpoints", "create", *args), 2, *words)
    assert gw.api.get("/v1/endpoints").json()["data"] == []


# events


def test_events_publish_and_list(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["user.*"])
    result = ok(
        gw.run_cli("events", "publish", "user.created", "--data", '{"n": 1, "é": [true]}', "--json")
    )
    event = json.loads(result.stdout)
    assert event["type"] == "user.created" and event["data"] == {"n": 1, "é": [True]}
    assert event["deliveries"] == 1 and event["tenant_id"] is None
    assert dispatch_note(gw) in result.stderr
    # Embedded: the running server's sweeper sends it; with Redis: a worker.
    [delivery] = deliveries_of(gw, event["id"])
    assert delivery["endpoint_id"] == endpoint["id"]
    wait_delivery(gw, delivery["id"], "succeeded", timeout=30)
    [received] = receiver.received(path)
    assert json.loads(received.body)["data"] == {"n": 1, "é": [True]}

    other = as_json(gw, "events", "publish", "invoice.paid", "--data", "{}", "--tenant", "acme")
    assert other["deliveries"] == 0 and other["tenant_id"] == "acme"
    table = ok(gw.run_cli("events", "publish", "user.deleted", "--data", '{"x": 1}')).stdout
    [newest] = gw.api.get("/v1/events", params={"type": "user.deleted"}).json()["data"]
    assert newest["id"] in table

    listed = as_json(gw, "events", "list")
    assert [e["id"] for e in listed["data"]] == [newest["id"], other["id"], event["id"]]
    assert as_json(gw, "events", "list", "--type", "user.created")["data"] == [
        {k: v for k, v in event.items() if k != "deliveries"}
    ]
    limited = as_json(gw, "events", "list", "--limit", "2")
    assert len(limited["data"]) == 2 and limited["next_cursor"] == other["id"]
    assert event["id"] in ok(gw.run_cli("events", "list", "--type", "user.created")).stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["user.created", "--data", "{nope"], ["--data", "not valid JSON"]),
        (["user.created", "--data", "[1, 2]"], ["--data", "dictionary"]),
        (["user.created", "--data", '{"x": NaN}'], ["--data", "NaN"]),
        (["no spaces", "--data", "{}"], ["TYPE"]),
    ],
    ids=["syntax", "not-object", "nan", "type"],
)
def test_events_publish_refuses_invalid_input(
    gw: Gateway, args: list[str], words: list[str]
) -> None:
    refused(gw.run_cli("events", "publish", *args), 2, *words)
    assert gw.api.get("/v1/events").json()["data"] == []


# deliveries and recovery


def test_deliveries_list_and_retry(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint_id, delivery_id = failed_delivery(gw, receiver, path)

    failed = as_json(gw, "deliveries", "list", "--status", "failed", "--endpoint", endpoint_id)
    [row] = failed["data"]
    assert row["id"] == delivery_id and row["attempt_count"] == MAX_ATTEMPTS
    assert row["last_status_code"] == 500
    assert as_json(gw, "deliveries", "list", "--status", "pending")["data"] == []
    assert delivery_id in ok(gw.run_cli("deliveries", "list", "--limit", "5")).stdout

    receiver.set(path, Reply(200))
    result = ok(gw.run_cli("deliveries", "retry", delivery_id, "--json"))
    retried = json.loads(result.stdout)
    assert retried["id"] == delivery_id and retried["status"] == "pending"
    assert dispatch_note(gw) in result.stderr
    detail = wait_delivery(gw, delivery_id, "succeeded", timeout=30)
    assert detail["attempt_count"] == MAX_ATTEMPTS + 1
    assert detail["attempts"][-1]["status_code"] == 200

    refused(gw.run_cli("deliveries", "retry", "dlv_01NOSUCHDELIVERY0000000000"), 1, "not found")
    refused(
        gw.run_cli("deliveries", "list", "--endpoint", "ep_01NOSUCHENDPOINT0000000000"),
        1,
        "not found",
    )
    refused(gw.run_cli("deliveries", "list", "--status", "lost"), 2, "lost")


def test_deliveries_show_has_the_attempt_log(gw: Gateway, receiver: Receiver, path: str) -> None:
    long_answer = "first line\n" + "x" * 300
    receiver.set(path, Reply(500, body=long_answer.encode()))
    make_endpoint(gw, receiver.url(path))
    [delivery] = deliveries_of(gw, publish(gw)["id"])
    detail = wait_delivery(gw, delivery["id"], "failed", timeout=20)

    shown = as_json(gw, "deliveries", "show", delivery["id"])
    assert shown == detail  # as GET /v1/deliveries/{id} shows it
    assert len(shown["attempts"]) == MAX_ATTEMPTS
    assert all(a["status_code"] == 500 for a in shown["attempts"])
    assert shown["attempts"][0]["response_body"].startswith("first line")

    table = ok(gw.run_cli("deliveries", "show", delivery["id"])).stdout
    assert delivery["id"] in table and "failed" in table
    # One row per attempt, its response cut short on one line.
    assert table.count("first line xxx") == MAX_ATTEMPTS
    assert "x" * 300 not in table and "…" in table
    assert f"{shown['attempts'][0]['duration_ms']} ms" in table

    refused(gw.run_cli("deliveries", "show", "dlv_01NOSUCHDELIVERY0000000000"), 1, "not found")
    refused(gw.run_cli("deliveries", "show", "not an id"), 1, "not found")


def test_recover_requeues_failed_deliveries(gw: Gateway, receiver: Receiver, path: str) -> None:
    before = rfc3339(datetime.now(UTC) - timedelta(seconds=2))
    assert before is not None
    endpoint_id, delivery_id = failed_delivery(gw, receiver, path)

    later = rfc3339(datetime.now(UTC) + timedelta(seconds=5))
    assert later is not None
    assert as_json(gw, "recover", endpoint_id, "--since", later) == {"requeued": 0}

    receiver.set(path, Reply(200))
    result = ok(gw.run_cli("recover", endpoint_id, "--since", before, "--json"))
    assert json.loads(result.stdout) == {"requeued": 1}
    assert dispatch_note(gw) in result.stderr
    assert gw.api.get(f"/v1/deliveries/{delivery_id}").json()["status"] in ("pending", "succeeded")
    detail = wait_delivery(gw, delivery_id, "succeeded", timeout=30)
    assert detail["attempt_count"] == MAX_ATTEMPTS + 1
    table = ok(gw.run_cli("recover", endpoint_id, "--since", before)).stdout
    assert endpoint_id in table and "re-queued" in table

    refused(gw.run_cli("recover", endpoint_id, "--since", "last tuesday"), 2, "--since")
    refused(gw.run_cli("recover", endpoint_id), 2, "--since")
    refused(
        gw.run_cli("recover", "ep_01NOSUCHENDPOINT0000000000", "--since", before), 1, "not found"
    )
    ok(gw.run_cli("endpoints", "disable", endpoint_id))
    refused(gw.run_cli("recover", endpoint_id, "--since", before), 1, "disabled", "enable")


# doctor


def test_doctor_passes_on_a_healthy_gateway(gw: Gateway) -> None:
    report = as_json(gw, "doctor")
    assert report["ok"] is True, report
    assert [c["name"] for c in report["checks"]] == [
        "configuration",
        "secret key",
        "database",
        "migrations",
        "stored secrets",
        "redis",
        "clock",
    ]
    assert {c["status"] for c in report["checks"]} == {"ok"}, report
    lines = ok(gw.run_cli("doctor")).stdout.splitlines()
    assert len(lines) == 7 and all(line.startswith("OK") for line in lines), lines


def test_doctor_fails_when_redis_does_not_answer(gw: Gateway) -> None:
    env = {**gw.env, "GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = run_with_env(gw, env, "doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert "redis" in line and "redis://127.0.0.1:1/0" in line and "GATEWAY_REDIS_URL" in line

    report = json.loads(run_with_env(gw, env, "doctor", "--json").stdout)
    assert report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["redis"]["status"] == "fail" and "start Redis" in checks["redis"]["fix"]
    assert checks["database"]["status"] == "ok"


def test_doctor_names_a_secret_key_that_does_not_open_stored_secrets(gw: Gateway) -> None:
    from gateway.crypto import generate_key

    make_endpoint(gw, UNREACHABLE)
    env = {**gw.env, "GATEWAY_SECRET_KEY": generate_key()}
    report = json.loads(run_with_env(gw, env, "doctor", "--json").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False and checks["stored secrets"]["status"] == "fail"
    assert "GATEWAY_SECRET_KEY" in checks["stored secrets"]["fix"]


# without a running gateway


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    env.update(extra)
    return env


def test_doctor_says_to_migrate(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["doctor"], env=_env(tmp_path))
    assert missing.exit_code == 1 and "gateway migrate" in missing.output
    assert not (tmp_path / "gateway.db").exists()  # the doctor changed nothing

    assert runner.invoke(app, ["migrate", "0003"], env=_env(tmp_path)).exit_code == 0
    behind = runner.invoke(app, ["doctor", "--json"], env=_env(tmp_path))
    assert behind.exit_code == 1
    checks = {c["name"]: c for c in json.loads(behind.stdout)["checks"]}
    assert checks["migrations"]["status"] == "fail"
    assert "gateway migrate" in checks["migrations"]["fix"]

    assert runner.invoke(app, ["migrate"], env=_env(tmp_path)).exit_code == 0
    assert runner.invoke(app, ["doctor"], env=_env(tmp_path)).exit_code == 0


def test_doctor_names_invalid_configuration(tmp_path: Path) -> None:
    env = _env(tmp_path, GATEWAY_DELIVERY_TIMEOUT="30", GATEWAY_JOB_TIMEOUT="31")
    result = CliRunner().invoke(app, ["doctor"], env=env)
    assert result.exit_code == 1
    assert "GATEWAY_JOB_TIMEOUT" in result.output


def test_commands_refuse_a_missing_database_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["endpoints", "list"], env=_env(tmp_path))
    assert result.exit_code == 1 and "gateway migrate" in result.output
    assert not (tmp_path / "gateway.db").exists()


HELP = [
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["endpoints"],
    ["endpoints", "list"],
    ["endpoints", "create"],
    ["endpoints", "disable"],
    ["endpoints", "enable"],
    ["endpoints", "delete"],
    ["events"],
    ["events", "publish"],
    ["events", "list"],
    ["deliveries"],
    ["deliveries", "list"],
    ["deliveries", "show"],
    ["deliveries", "retry"],
    ["sources"],
    ["sources", "list"],
    ["sources", "show"],
    ["sources", "create"],
    ["sources", "update"],
    ["sources", "disable"],
    ["sources", "enable"],
    ["sources", "delete"],
    ["recover"],
    ["doctor"],
    ["secret-key"],
]


@pytest.mark.parametrize("command", HELP, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    leaf = len(command) == 2 or command[0] in ("recover", "doctor")
    if leaf and command != ["keys", "create"]:
        assert "--json" in result.output


def test_top_level_help_lists_the_groups() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in (
        "serve",
        "worker",
        "migrate",
        "keys",
        "secret-key",
        "endpoints",
        "events",
        "deliveries",
        "sources",
        "recover",
        "doctor",
    ):
        assert name in result.output
