"""`gateway listen` end to end: a real listener process reading a stream endpoint of the
gateway, forwarding to a local receiver that verifies every request with the
`standardwebhooks` library, SIGKILLed and started again mid-run with nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support.gateway import API_KEY, Gateway
from tests.support.helpers import publish
from tests.support.receiver import Receiver, wait_until

NAME = "gateway listen test"


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start_listener(
    gw: Gateway, forward_to: str, log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    # Nothing of the gateway's own settings: the listener is a client of its API only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_URL=str(gw.api.base_url), GATEWAY_API_KEY=API_KEY, GATEWAY_ENV_FILE="")
    args = ["listen", "--forward-to", forward_to, "--name", NAME, "--event-type", "order.*"]
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    started.append(proc)
    return proc


@pytest.mark.slow
def test_listen_forwards_every_event_across_a_killed_listener(
    gw: Gateway,
    receiver: Receiver,
    path: str,
    tmp_path: Path,
    listeners: list[subprocess.Popen[bytes]],
) -> None:
    log = tmp_path / "listen.log"
    first = start_listener(gw, receiver.url(path), log, listeners)

    def own_endpoint() -> dict[str, object] | None:
        found = [e for e in gw.api.get("/v1/endpoints").json()["data"] if e["description"] == NAME]
        return found[0] if found else None

    endpoint = wait_until(own_endpoint, 30, "the listener to create its endpoint")
    assert (endpoint["kind"], endpoint["event_types"]) == ("stream", ["order.*"])
    # Retried every second for as long as the test may need, whatever the tests' schedule.
    gw.api.patch(
        f"/v1/endpoints/{endpoint['id']}",
        json={"retry_policy": {"schedule": [1], "max_duration": 300}},
    )
    secret = gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"]
    publish(gw, "invoice.paid")  # not its type: never forwarded
    events = [publish(gw, "order.created", {"n": n})["id"] for n in range(20)]
    receiver.wait_for(path, 5, timeout=30)
    first.send_signal(signal.SIGKILL)  # mid-run: some forwarded, some not acknowledged
    first.wait(10)
    events += [publish(gw, "order.created", {"n": n})["id"] for n in range(20, 40)]

    start_listener(gw, receiver.url(path), log, listeners)  # finds its endpoint again

    def all_received() -> set[str] | None:
        got = {r.headers["webhook-id"] for r in receiver.received(path)}
        return got if got >= set(events) else None

    wait_until(all_received, 60, "every event at the receiver")
    # At least once, each signed as the gateway signs: the receiver's library agrees.
    for request in receiver.received(path):
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "order.created"
    assert [e["id"] for e in gw.api.get("/v1/endpoints").json()["data"]] == [endpoint["id"]]
    assert "(stream)" in gw.run_cli("endpoints", "list").stdout

    def all_succeeded() -> list[tuple[object, ...]] | None:
        rows = gw.sql(f"SELECT status FROM delivery WHERE endpoint_id = '{endpoint['id']}'")
        return rows if rows and {r[0] for r in rows} == {"succeeded"} else None

    wait_until(all_succeeded, 30, "every delivery to succeed")
    # What the kill cost shows in the attempt log: attempts that failed, then retried.
    failures = gw.sql(
        "SELECT error, retried FROM attempt WHERE status_code IS NULL "
        f"AND endpoint_id = '{endpoint['id']}'"
    )
    errors = {str(error).split(" within")[0] for error, _ in failures}
    assert errors <= {"no listener connected", "not acknowledged"}, errors
    assert failures and all(retried for _, retried in failures), failures
    assert len(events) == 40


def test_listen_refuses_what_cannot_work(gw: Gateway) -> None:
    bad_url = gw.run_cli("listen", "--forward-to", "localhost:3000/webhooks")
    assert bad_url.returncode == 2 and "http or https URL" in bad_url.stderr
    wrong_key = gw.run_cli(
        "listen",
        "--forward-to",
        "http://127.0.0.1:9/hooks",
        "--url",
        str(gw.api.base_url),
        "--api-key",
        "not-a-key",
    )
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr, wrong_key.stderr
    assert gw.api.get("/v1/endpoints").json()["data"] == []
