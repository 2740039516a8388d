"""`gateway receive`, the local endpoint of the tour: a real process, fed by a real gateway
on both backends, and by the `standardwebhooks` library that endpoints verify with.

The receiver listens on a port of its choosing (`--port 0`) and says which on stderr;
its deliveries are read from its stdout as they are printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from gateway.outbound.signer import generate_secret
from tests.support.gateway import Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import wait_until

URL_LINE = re.compile(r"Receiving on (http://\S+?),")


class ReceiveProcess:
    """`gateway receive ARGS` as its own process, its output in files read while it runs."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stdout_path = workdir / "receive.out"
        self.stderr_path = workdir / "receive.err"
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("GATEWAY_") and name not in ("COLUMNS", "LINES")
        }
        environment.update(env or {})
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "receive", "--port", "0", *args],
                env=environment,
                cwd=workdir,
                stdout=stdout,
                stderr=stderr,
            )
        self.url: str = wait_until(self._listening, 30, "gateway receive to listen")

    def _listening(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway receive exited: {self.stderr()}")
        found = URL_LINE.search(self.stderr())
        return found.group(1) if found else None

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def deliveries(self) -> list[dict[str, Any]]:
        """What --json printed so far: one object per complete line."""
        return [
            json.loads(line)
            for line in self.stdout().splitlines(keepends=True)
            if line.endswith("\n")
        ]

    def wait_deliveries(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            got = self.deliveries()
            return got if len(got) >= count else None

        return wait_until(enough, timeout, f"{count} deliveries printed")  # type: ignore[no-any-return]

    def interrupt(self) -> str:
        """Ctrl-C; the exit code must be 0, and stderr (with the summary) is returned."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(30) == 0, self.stderr()
        return self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@contextmanager
def receiving(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[ReceiveProcess]:
    receiver = ReceiveProcess(workdir, *args, env=env)
    try:
        yield receiver
    finally:
        receiver.kill()


def signed_headers(
    secret: str, msg_id: str, body: str, at: datetime | None = None
) -> dict[str, str]:
    """The headers of a request signed by the standardwebhooks library."""
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


# with the gateway, on both backends


def test_a_failure_then_the_retry_arrive_signed(gw: Gateway, tmp_path: Path) -> None:
    secret = generate_secret()
    with receiving(tmp_path, "--json", "--fail", "1", "--secret", secret) as receiver:
        endpoint = make_endpoint(gw, receiver.url, secret=secret)
        event = publish(gw, "order.paid", {"order": 42})
        [delivery] = deliveries_of(gw, event["id"])
        first, second = receiver.wait_deliveries(2)
        detail = wait_delivery(gw, delivery["id"], "succeeded")
        summary = receiver.interrupt()
    assert endpoint["secret"] == secret
    assert first["webhook_id"] == second["webhook_id"] == event["id"]
    assert first["event_type"] == second["event_type"] == "order.paid"
    assert (first["attempt"], first["signature"], first["status"]) == (1, "valid", 503)
    assert (second["attempt"], second["signature"], second["status"]) == (2, "valid", 200)
    assert second["body"]["id"] == event["id"]
    assert second["body"]["data"] == {"order": 42}
    # The gateway recorded the answers, and why the first one failed.
    assert [a["status_code"] for a in detail["attempts"]] == [503, 200]
    assert "--fail 1" in detail["attempts"][0]["response_body"]
    assert "2 received (2 valid, 0 invalid), 1 failed on purpose" in summary


def test_a_wrong_secret_is_invalid_and_refused(gw: Gateway, tmp_path: Path) -> None:
    wrong = generate_secret()
    # From the environment, as --help advises: the secret stays out of the command line.
    with receiving(tmp_path, env={"GATEWAY_RECEIVE_SECRET": wrong}) as receiver:
        make_endpoint(gw, receiver.url)
        event = publish(gw, "order.paid")
        [delivery] = deliveries_of(gw, event["id"])
        line = wait_until(
            lambda: next((ln for ln in receiver.stdout().splitlines() if "INVALID" in ln), None),
            20,
            "an INVALID line",
        )
        detail = wait_delivery(gw, delivery["id"], "failed")
        output = receiver.stdout() + receiver.interrupt()
    assert event["id"] in line and "order.paid" in line and "→ 401" in line, line
    assert "no v1 signature matches" in line, line
    assert {a["status_code"] for a in detail["attempts"]} == {401}
    assert "checking signatures with the secret of GATEWAY_RECEIVE_SECRET" in output
    assert wrong not in output


# against the standardwebhooks library


def test_accepts_what_standardwebhooks_signs_and_nothing_else(tmp_path: Path) -> None:
    secret, other = generate_secret(), generate_secret()
    body = '{"id":"evt_1","type":"user.created","data":{"n":1}}'
    with receiving(tmp_path, "--json", "--secret", secret) as receiver:
        with httpx.Client(timeout=10) as client:

            def send(content: str, headers: dict[str, str]) -> int:
                return client.post(receiver.url, content=content, headers=headers).status_code

            good = signed_headers(secret, "msg_1", body)
            assert send(body, good) == 200
            assert send(body.replace('"n":1', '"n":2'), good) == 401  # a tampered body
            assert send(body, signed_headers(other, "msg_1", body)) == 401  # another secret
            # During a rotation two signatures come, one of them by the secret in use.
            rotating = {
                **good,
                "webhook-signature": signed_headers(other, "msg_1", body)["webhook-signature"]
                + " "
                + good["webhook-signature"],
            }
            assert send(body, rotating) == 200
            stale = signed_headers(secret, "msg_1", body, datetime.now(UTC) - timedelta(minutes=6))
            assert send(body, stale) == 401  # a replay, signed right but too long ago
            assert send(body, {"content-type": "application/json"}) == 401
            # The webhook-id is signed: a request moved to another id is refused.
            assert send(body, {**good, "webhook-id": "msg_2"}) == 401
        printed = receiver.wait_deliveries(7)
        summary = receiver.interrupt()
    ok, refused = ("valid", 200), ("invalid", 401)
    verdicts = [(d["signature"], d["status"]) for d in printed]
    assert verdicts == [ok, refused, refused, ok, refused, refused, refused]
    assert printed[0]["body"] == json.loads(body)
    assert "tolerance" in printed[4]["reason"]
    assert "missing webhook-id header" in printed[5]["reason"]
    assert "7 received (2 valid, 5 invalid), 0 failed on purpose" in summary


def test_without_a_secret_nothing_is_checked(tmp_path: Path) -> None:
    with receiving(tmp_path, "--json", "--fail", "2", "--status", "429") as receiver:
        with httpx.Client(timeout=10) as client:
            answers = [
                client.post(receiver.url, content=b"not json", headers={"webhook-id": "a"})
                for _ in range(3)
            ]
            assert client.post(receiver.url, headers={"webhook-id": "b"}).status_code == 429
            wrong_path = client.post(receiver.url + "/else")
            wrong_method = client.get(receiver.url)
        printed = receiver.wait_deliveries(4)
        stderr = receiver.interrupt()
    # --fail counts per webhook-id: a new id fails again.
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert [d["attempt"] for d in printed] == [1, 2, 3, 1]
    assert {d["signature"] for d in printed} == {"not_checked"}
    assert printed[0]["body"] == "not json"
    assert (wrong_path.status_code, wrong_method.status_code) == (404, 405)
    assert "answered 404" in stderr and "answered 405" in stderr
    assert "4 received (signatures not checked), 3 failed on purpose" in stderr


def test_refuses_a_malformed_secret_before_listening(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "receive", "--secret", "nope", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "whsec_" in result.stderr and "Traceback" not in result.stderr
