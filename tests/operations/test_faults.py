"""Faults on PostgreSQL + Redis with real processes: nothing answered 2xx is ever lost.

Each test runs its own Redis server (so that it can be killed and restarted empty)
and its own gateway processes; the receiver's ledger of (webhook-id, endpoint) is
the proof that every event reached every endpoint it matched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway, free_port
from tests.support.helpers import make_endpoint
from tests.support.receiver import Receiver, Reply, wait_until

pytestmark = [
    pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or ""),
    pytest.mark.slow,
    # They kill and restart the PostgreSQL server and load the machine: alone.
    pytest.mark.serial,
]


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(up, 10, "redis-server to listen")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def stack(tmp_path: Path, dns: ScriptedDNS) -> Iterator[tuple[Gateway, RedisServer]]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    gateway = Gateway("postgres", tmp_path, dns, redis_url=redis_server.url)
    try:
        with gateway.running():
            yield gateway, redis_server
    finally:
        if redis_server.proc and redis_server.proc.poll() is None:
            redis_server.kill()


def _complaints(gw: Gateway) -> int:
    """Log lines at WARNING or above, over the API's and the first worker's logs."""
    return sum(
        1
        for name in ("server", "worker0")
        for line in gw.log_tail(name, 1_000_000).splitlines()
        if '"level": "WARNING"' in line or '"level": "ERROR"' in line or "Traceback" in line
    )


def _ledger(receiver: Receiver, paths: list[str]) -> set[tuple[str, str]]:
    return {(r.headers["webhook-id"], p) for p in paths for r in receiver.received(p)}


class Publisher:
    """Publishes at a steady pace from a thread, keeping the ids answered 202."""

    def __init__(self, gw: Gateway, limit: int | None = None, pause: float = 0.01) -> None:
        self.client = httpx.Client(
            base_url=str(gw.api.base_url), headers=dict(gw.api.headers), timeout=10
        )
        self.limit = limit
        self.pause = pause
        self.accepted: list[str] = []
        self.refused: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        deadline = time.monotonic() + (600 if self.limit else 60)  # bounded, whatever happens
        while (
            not self._stop.is_set()
            and time.monotonic() < deadline
            and (self.limit is None or i < self.limit)
        ):
            try:
                r = self.client.post("/v1/events", json={"type": "order.created", "data": {"i": i}})
            except httpx.HTTPError:
                self.refused.append(0)
            else:
                if r.status_code == 202:
                    self.accepted.append(r.json()["id"])
                else:
                    self.refused.append(r.status_code)
            i += 1
            time.sleep(self.pause)

    def wait_done(self, timeout: float) -> None:
        self._thread.join(timeout)

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()


def _expect_all(gw: Gateway, receiver: Receiver, events: list[str], paths: list[str]) -> None:
    expected = {(e, p) for e in events for p in paths}
    wait_until(
        lambda: expected <= _ledger(receiver, paths),
        90,
        f"all {len(expected)} (event, endpoint) pairs at the receiver",
    )


def test_redis_killed_and_restarted_empty_loses_nothing(
    stack: tuple[Gateway, RedisServer], receiver: Receiver, path: str
) -> None:
    gw, redis_server = stack
    paths = [f"{path}/a", f"{path}/b"]
    for p in paths:
        receiver.set(p, Reply(200))
        make_endpoint(gw, receiver.url(p))
    with Publisher(gw) as publisher:
        wait_until(lambda: len(publisher.accepted) >= 50, 30, "50 events published")
        redis_server.kill()  # every queued job is gone
        lines_before = _complaints(gw)
        at = len(publisher.accepted)
        # Publishing goes on while Redis is down: events are stored, dispatch waits.
        wait_until(lambda: len(publisher.accepted) >= at + 30, 30, "publishing during the outage")
        redis_server.start()  # back, and empty
        back = time.monotonic()
        wait_until(lambda: len(publisher.accepted) >= at + 60, 30, "publishing after")
    assert publisher.refused == []
    _expect_all(gw, receiver, publisher.accepted, paths)
    print(
        f"\nredis killed and restarted empty: {len(publisher.accepted)} events published, "
        f"{len(_ledger(receiver, paths))} of {len(publisher.accepted) * len(paths)} "
        f"deliveries arrived, 0 lost; all delivered {time.monotonic() - back:.1f}s after "
        "Redis came back"
    )
    # The worker and API rode it out without a restart, and did not flood the logs.
    assert all(w.poll() is None for w in gw.workers) and gw.server and gw.server.poll() is None
    # Warnings and errors, that is: every attempt has its INFO line whatever happens.
    assert _complaints(gw) - lines_before < 60, gw.log_tail("worker0", 60)


def test_many_worker_kills_under_load_lose_nothing(
    stack: tuple[Gateway, RedisServer], receiver: Receiver, path: str
) -> None:
    gw, _ = stack
    paths = [f"{path}/{i}" for i in range(5)]
    for p in paths:
        receiver.set(p, Reply(200, delay=0.05))
        make_endpoint(gw, receiver.url(p))
    gw.start_worker()  # two workers
    # 600 events x 5 endpoints = 3,000 deliveries in CI; the full size (10,000 deliveries)
    # is GATEWAY_FAULT_EVENTS=2000 (see the README).
    events = int(os.environ.get("GATEWAY_FAULT_EVENTS", "600"))
    kills = 4
    started = time.monotonic()
    with Publisher(gw, limit=events, pause=0.002) as publisher:
        for k in range(kills):
            target = (k + 1) * events * len(paths) // (kills + 2)
            wait_until(
                lambda t=target: len(_ledger(receiver, paths)) >= t,
                120,  # type: ignore[misc]
                "deliveries flowing",
            )
            gw.kill(gw.workers[0], signal.SIGKILL)
            gw.start_worker()
        publisher.wait_done(600)
    killed_at = time.monotonic()
    _expect_all(gw, receiver, publisher.accepted, paths)
    sent = sum(len(receiver.received(p)) for p in paths)
    expected = len(publisher.accepted) * len(paths)
    duplicates = sent - expected
    lost = expected - len(_ledger(receiver, paths))
    print(
        f"\nworker kills: {len(publisher.accepted)} events published, {expected} deliveries "
        f"expected, {len(_ledger(receiver, paths))} delivered, {lost} lost, {duplicates} "
        f"duplicates, {kills} SIGKILLs; all delivered {time.monotonic() - killed_at:.1f}s "
        f"after the last kill ({time.monotonic() - started:.1f}s in all)"
    )
    assert lost == 0
    # At-least-once: only what was in flight at a kill may arrive twice; a worker holds
    # at most its in-flight limit (GATEWAY_DELIVERY_CONCURRENCY, 500) at once.
    assert duplicates <= kills * 500, duplicates


def test_a_delivery_that_keeps_failing_inside_the_gateway_ends_failed(
    stack: tuple[Gateway, RedisServer], receiver: Receiver, path: str
) -> None:
    gw, _ = stack
    endpoint = make_endpoint(gw, receiver.url(path))
    # A secret that no longer opens: every attempt fails inside the gateway, not at the
    # endpoint. It must end visibly failed after the schedule, not loop.
    gw.sql(f"UPDATE endpoint SET secret = 'enc:v1:00000000:AAAA' WHERE id = '{endpoint['id']}'")
    event = gw.api.post("/v1/events", json={"type": "a.b", "data": {}}).json()
    [delivery] = gw.api.get(f"/v1/events/{event['id']}/deliveries").json()["data"]

    def failed() -> dict[str, object] | None:
        body = gw.api.get(f"/v1/deliveries/{delivery['id']}").json()
        return body if body["status"] == "failed" else None

    detail = wait_until(failed, 30, "the delivery to fail")
    assert all("internal error" in a["error"] for a in detail["attempts"])
    assert receiver.received(path) == []


def _pg_restart() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.skipif(
    not Path("/etc/postgresql").is_dir() or not Path("/usr/bin/pg_ctlcluster").exists(),
    reason="needs the local PostgreSQL cluster to restart",
)
def test_postgres_restart_answers_503_and_loses_nothing_accepted(
    stack: tuple[Gateway, RedisServer], receiver: Receiver, path: str
) -> None:
    gw, _ = stack
    paths = [f"{path}/a", f"{path}/b"]
    for p in paths:
        make_endpoint(gw, receiver.url(p))
    with Publisher(gw) as publisher:
        wait_until(lambda: len(publisher.accepted) >= 30, 30, "30 events published")
        _pg_restart()
        back = time.monotonic()
        at = len(publisher.accepted)
        wait_until(lambda: len(publisher.accepted) >= at + 30, 60, "publishing after the restart")
    # While it was down, publish said so (503), and never 2xx for an event it had not stored.
    assert set(publisher.refused) <= {503}, publisher.refused
    _expect_all(gw, receiver, publisher.accepted, paths)
    print(
        f"\npostgres restarted: {len(publisher.accepted)} events accepted, "
        f"{len(publisher.refused)} answered 503 while it was down, 0 lost; all delivered "
        f"{time.monotonic() - back:.1f}s after it was back"
    )
    assert gw.api.get("/readyz").status_code == 200


def _answers(proc: subprocess.Popen[bytes], port: int) -> bool:
    assert proc.poll() is None, "the second API process exited"
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _first_successes(receiver: Receiver, path: str) -> list[str]:
    """Event ids in the order of their first 2xx receipt."""
    seen: set[str] = set()
    order = []
    for r in receiver.received(path):
        event_id = r.headers["webhook-id"]
        if 200 <= r.status < 300 and event_id not in seen:
            seen.add(event_id)
            order.append(event_id)
    return order


def test_ordered_keys_keep_their_order_through_kills_and_a_redis_flush(
    tmp_path: Path, dns: ScriptedDNS, receiver: Receiver, path: str
) -> None:
    """50 keys x 100 events to an ordered endpoint whose receiver refuses a random 20%
    of requests, published through two API processes at once, delivered by two
    workers; one worker is SIGKILLed and Redis flushed mid-run. Per key, the first
    successful receipts are in the order `GET /v1/events?ordering_key=` lists, and
    every event arrives."""
    keys, per_key = 50, 100
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    gw = Gateway("postgres", tmp_path, dns, redis_url=redis_server.url)
    # Retries come quickly and often enough that a fifth of refusals never ends a
    # delivery failed (0.2^10); a killed worker's leases lapse after 12 s.
    gw.env.update(
        GATEWAY_RETRY_SCHEDULE="0.1,0.1,0.2,0.2,0.3,0.3,0.3,0.3,0.3",
        GATEWAY_DELIVERY_TIMEOUT="1",
    )
    second = None
    try:
        with gw.running():
            receiver.fail_randomly(path, 0.2, seed=17)
            make_endpoint(gw, receiver.url(path), ordered=True)
            gw.start_worker()
            port = free_port()
            second = gw._spawn("serve", "--port", str(port), name="server2")
            wait_until(lambda: _answers(second, port), 60, "the second API process")
            clients = [
                gw.api,
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers=dict(gw.api.headers), timeout=30
                ),
            ]

            def publish(api: httpx.Client, half: int) -> None:
                # Each process publishes half of every key's events, in batches of 5 per
                # key, at the same time as the other: their commits interleave.
                for start in range(half * per_key // 2, (half + 1) * per_key // 2, 5):
                    batch = [
                        {"type": "order.updated", "data": {"i": i}, "ordering_key": f"k{k}"}
                        for i in range(start, start + 5)
                        for k in range(keys)
                    ]
                    response = api.post("/v1/events/batch", json={"events": batch})
                    assert response.status_code == 202, response.text

            started = time.monotonic()
            threads = [
                threading.Thread(target=publish, args=(clients[i], i), daemon=True) for i in (0, 1)
            ]
            for t in threads:
                t.start()
            wait_until(lambda: len(receiver.received(path)) >= 1000, 60, "deliveries flowing")
            gw.kill(gw.workers[0], signal.SIGKILL)
            redis.Redis.from_url(redis_server.url).flushall()
            gw.start_worker()
            for t in threads:
                t.join(60)
            total = keys * per_key
            wait_until(
                lambda: len(_first_successes(receiver, path)) >= total,
                90,
                f"all {total} events received once with success",
            )
            arrived = _first_successes(receiver, path)
            for k in range(keys):
                listed = gw.api.get(
                    "/v1/events", params={"ordering_key": f"k{k}", "limit": 250}
                ).json()["data"]
                assert [e["sequence"] for e in listed] == list(range(1, per_key + 1))
                ids = [e["id"] for e in listed]
                wanted = set(ids)
                assert [e for e in arrived if e in wanted] == ids, f"key k{k} out of order"
            sent = len(receiver.received(path))
            print(
                f"\nordered under faults: {total} events of {keys} keys, {sent} requests "
                f"({sent - total} refused or repeated), all in order, none lost, "
                f"{time.monotonic() - started:.1f}s"
            )
            clients[1].close()
    finally:
        if second is not None and second.poll() is None:
            second.terminate()
            second.wait(30)
        if redis_server.proc and redis_server.proc.poll() is None:
            redis_server.kill()
