"""Redis through Sentinel: the API and a worker find the master by asking the Sentinel
(`GATEWAY_REDIS_URL=redis+sentinel://...`), and keep delivering when a replica is
promoted in its place.

The test runs its own master, replica and Sentinel (Debian's `redis-server` binary
is also the Sentinel, with `--sentinel`), on free loopback ports.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway, free_port
from tests.support.helpers import make_endpoint, publish
from tests.support.receiver import Receiver, Reply, wait_until

pytestmark = [
    pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or ""),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server binary"),
    pytest.mark.slow,
]
MASTER = "gwmaster"


class RedisSet:
    """A master, its replica and one Sentinel watching them, stopped however the test ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{MASTER}/0"

    def _server(self, port: int, *args: str) -> None:
        common = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.procs.append(
            subprocess.Popen(
                ["redis-server", *args, *common, "--dir", str(self.workdir)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        client = redis.Redis(port=port, socket_timeout=1)
        wait_until(lambda: _answers(client), 10, f"redis on port {port}")

    def start(self) -> None:
        # No wait before the replica's first sync (5 s by default).
        self._server(self.master, "--repl-diskless-sync-delay", "0")
        self._server(self.replica, "--replicaof", "127.0.0.1", str(self.master))
        # Sentinel rewrites its configuration file: it must be its own, and writable.
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {MASTER} 127.0.0.1 {self.master} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 2000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            # Known from the start: found on its own, it takes up to 10 s of INFO polling.
            f"sentinel known-replica {MASTER} 127.0.0.1 {self.replica}\n"
        )
        self._server(self.sentinel, str(conf), "--sentinel")
        replica = redis.Redis(port=self.replica, socket_timeout=1)
        wait_until(
            lambda: replica.info("replication").get("master_link_status") == "up",
            10,
            "the replica to follow the master",
        )
        wait_until(lambda: self.known_replicas() >= 1, 20, "the Sentinel to see the replica")

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel, socket_timeout=2, decode_responses=True)

    def known_replicas(self) -> int:
        return len(self.sentinel_client().execute_command("SENTINEL", "REPLICAS", MASTER))

    def master_port(self) -> int:
        _host, port = self.sentinel_client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
        )
        return int(port)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def sentinel_gateway(tmp_path: Path, dns: ScriptedDNS) -> Iterator[tuple[Gateway, RedisSet]]:
    redis_set = RedisSet(tmp_path)
    try:
        redis_set.start()
        with Gateway("postgres", tmp_path, dns, redis_url=redis_set.url).running() as gw:
            yield gw, redis_set
    finally:
        redis_set.stop()


def test_delivery_through_sentinel_goes_on_after_a_failover(
    sentinel_gateway: tuple[Gateway, RedisSet], receiver: Receiver, path: str
) -> None:
    gw, redis_set = sentinel_gateway
    receiver.set(path, Reply(200))
    make_endpoint(gw, receiver.url(path))
    # The worker polls the master the Sentinel named: its health-check key is there.
    assert redis.Redis(port=redis_set.master).exists(f"{gw.queue}:health-check")

    before = [publish(gw, "order.created", {"i": i})["id"] for i in range(5)]
    wait_until(lambda: len(receiver.received(path)) >= 5, 20, "5 deliveries before failover")

    redis_set.sentinel_client().execute_command("SENTINEL", "FAILOVER", MASTER)
    wait_until(
        lambda: redis_set.master_port() == redis_set.replica, 30, "the replica to be promoted"
    )
    after = [publish(gw, "order.created", {"i": i})["id"] for i in range(5, 10)]
    ids = set(before + after)
    wait_until(
        lambda: ids <= {r.headers["webhook-id"] for r in receiver.received(path)},
        60,
        "every event delivered, those published after the failover too",
    )
    # The worker now polls the promoted replica, and neither process gave up.
    wait_until(
        lambda: redis.Redis(port=redis_set.replica).exists(f"{gw.queue}:health-check"),
        30,
        "the worker to poll the new master",
    )
    assert all(w.poll() is None for w in gw.workers) and gw.server and gw.server.poll() is None
    # The API's own health check reaches Redis through the Sentinel too.
    assert gw.api.get("/readyz").status_code == 200
