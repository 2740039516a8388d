"""The receivers of a run: nginx (or the aiohttp fallback) for healthy endpoints, and
the bad endpoints of W4.

The bench starts one receiver for the whole run; workloads tell their deliveries
apart by URI (see `arrivals.py`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import nginx
from bench.arrivals import Arrivals
from bench.procs import Proc

HERE = Path(__file__).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout:g}s")


@dataclass
class Receiver:
    kind: str  # "nginx", or "aiohttp" (the fallback)
    base: str  # http://127.0.0.1:port
    proc: Proc
    arrivals: Arrivals

    def url(self, *parts: object) -> str:
        return self.base + "/" + "/".join(str(p) for p in parts)

    def stop(self) -> None:
        self.proc.stop(10)


def start_receiver(run_dir: Path, prefer: str = "nginx") -> Receiver:
    port = free_port()
    workdir = run_dir / "receiver"
    workdir.mkdir(parents=True, exist_ok=True)
    if prefer == "nginx" and nginx.available():
        proc, log = nginx.start(workdir, port)
        kind = "nginx"
    else:
        log = workdir / "access.log"
        proc = Proc(
            "receiver",
            [sys.executable, str(HERE / "receiver.py"), str(port), str(log)],
            log_dir=workdir,
        )
        kind = "aiohttp"
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", proc=proc)
    except BaseException:
        proc.stop(5)
        raise
    return Receiver(kind, base, proc, Arrivals(log))


@dataclass
class BadEndpoints:
    """Unhealthy endpoints (`slow_receiver.py`): by kind (`slow`, `never`, `trickle`,
    `slow-headers`, `huge`), one URL per endpoint asked for.

    Each is on its own port, as broken customer hosts would be: the gateway limits
    attempts per endpoint, and the old per-host limits were shared by a host's endpoints.
    """

    urls: dict[str, list[str]]
    proc: Proc

    def all(self) -> list[str]:
        return [url for urls in self.urls.values() for url in urls]

    def stop(self) -> None:
        self.proc.stop(10)


def start_bad_endpoints(run_dir: Path, counts: dict[str, int], tries: int = 3) -> BadEndpoints:
    """`counts`: endpoints wanted of each kind, e.g. {"never": 2, "huge": 1}.

    The ports are free when picked, but one of dozens may be taken before the server
    binds it (an outgoing connection's port, from the same range): then it starts
    again on new ones."""
    ports = {kind: [free_port() for _ in range(n)] for kind, n in counts.items()}
    every = [port for kind_ports in ports.values() for port in kind_ports]
    proc = Proc(
        "bad-endpoints",
        [sys.executable, str(HERE / "slow_receiver.py"), *map(str, every)],
        log_dir=run_dir,
    )
    try:
        for port in every:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    except RuntimeError:
        proc.stop(5)
        if tries > 1 and "address already in use" in proc.log_tail():
            return start_bad_endpoints(run_dir, counts, tries - 1)
        raise
    except BaseException:
        proc.stop(5)
        raise
    return BadEndpoints(
        {
            kind: [f"http://127.0.0.1:{port}/{kind}" for port in kind_ports]
            for kind, kind_ports in ports.items()
        },
        proc,
    )
