"""The README's tour, pasted as a user pastes it: into one shell, in order, beside a gateway
started as `make run` starts it, with nothing of the tests' settings around it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.support.gateway import free_port
from tests.support.receiver import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _tour_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = re.split(r"\n#{2,3} ", readme.split("## A five-minute tour", 1)[1], maxsplit=1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


class Shell:
    """One bash, fed lines as a terminal would be. Its output, and its background jobs',
    is read from a pipe, as a terminal reads it (`tee /dev/stderr` on a regular file
    would truncate it)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._steps = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self._chunks.append(line)

    def paste(self, text: str, timeout: float = 60) -> str:
        """Run the text and wait until the shell has finished it; what it printed."""
        self._steps += 1
        marker = f"__pasted_{self._steps}__"
        before = len(self.text())
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{text}\necho {marker}\n".encode())
        self.proc.stdin.flush()
        wait_until(lambda: marker in self.text(), timeout, f"the shell to run step {self._steps}")
        return self.text()[before:].split(marker)[0]

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reader.join(5)


def test_the_readme_tour_runs_end_to_end_on_one_machine(tmp_path: Path) -> None:
    blocks = _tour_blocks()
    assert len(blocks) == 4, "the tour's blocks: set up, publish, look, stop"
    api_port, receiver_port = free_port(), free_port()

    # The user's directory: the checkout's .venv, and nothing else of the tests'.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    assert (tmp_path / ".venv" / "bin" / "gateway").exists(), "run the tests from the venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.pop("COLUMNS", None)
    gateway = str(tmp_path / ".venv" / "bin" / "gateway")
    # As `make run` does it: dev-setup, migrate, serve.
    for step in (["dev-setup"], ["migrate"]):
        done = subprocess.run([gateway, *step], cwd=tmp_path, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
    server_log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [gateway, "serve", "--port", str(api_port)],
        cwd=tmp_path,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    shell = Shell(tmp_path, env)
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _answers(f"{base}/readyz"), 30, "the gateway to be ready")
        key = (tmp_path / "gateway.api_key").read_text().strip()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})

        def ported(block: str) -> str:
            return block.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}").replace(
                "9000", str(receiver_port)
            )

        shell.paste(ported(blocks[0]))
        wait_until(lambda: "Receiving on http://" in shell.text(), 30, "the receiver to listen")

        printed = shell.paste(ported(blocks[1]))
        assert '"deliveries":1' in printed.replace(" ", ""), printed  # the 202, shown

        # The receiver prints the first attempt refused, then the retry, signature valid.
        [event] = api.get("/v1/events").json()["data"]
        delivery = wait_until(lambda: _succeeded(api, event["id"]), 30, "the retry to succeed")
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 200]
        wait_until(lambda: "#2 valid → 200" in shell.text(), 10, "the receiver to print it")

        printed = shell.paste(ported(blocks[2]))
        assert "503" in printed and "200" in printed, printed  # the attempt log
        # The retry by hand is a third attempt; the test event arrives after its own retry.
        wait_until(
            lambda: len(api.get(f"/v1/deliveries/{delivery['id']}").json()["attempts"]) == 3,
            30,
            "the retry by hand",
        )
        [test_event] = api.get("/v1/events", params={"type": "webhook.test"}).json()["data"]
        wait_until(lambda: _succeeded(api, test_event["id"]), 30, "the test event")
        assert "received (" not in shell.text()  # the receiver is still running
        shell.paste(ported(blocks[3]))
        wait_until(lambda: "received (" in shell.text(), 10, "the receiver's summary")
        whole = shell.text()
        for problem in ("command not found", "Traceback", "No such file", "error:", "INVALID"):
            assert problem not in whole, whole
    finally:
        print(shell.text())  # shown when the test fails: what the user would have seen
        shell.close()
        server.terminate()
        server.wait(30)
        server_log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _succeeded(api: httpx.Client, event_id: str) -> dict[str, Any] | None:
    [delivery] = api.get(f"/v1/events/{event_id}/deliveries").json()["data"]
    if delivery["status"] != "succeeded":
        return None
    return api.get(f"/v1/deliveries/{delivery['id']}").json()  # type: ignore[no-any-return]
