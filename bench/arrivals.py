"""What arrived at the receiver, read from its access log as it grows.

Endpoint URLs are `<receiver>/<workload>/<phase>/e<i>`: the URI up to its last `/`
is the phase's group, so a phase's progress is one counter, and its deliveries
are told apart by (event id, URI) for the ledger and latencies.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Arrival(NamedTuple):
    at: float  # unix time the receiver answered, millisecond resolution
    event_id: str  # the webhook-id header: the event id
    uri: str  # which endpoint
    status: int


def parse_line(line: str) -> Arrival | None:
    parts = line.split()
    if len(parts) != 4:
        return None
    try:
        return Arrival(float(parts[0]), parts[1], parts[2], int(parts[3]))
    except ValueError:
        return None


def group_of(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


class Arrivals:
    """An incremental reader of the receiver's access log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""
        self._by_group: dict[str, list[Arrival]] = {}
        self._counts: Counter[str] = Counter()

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._rest + data
        cut = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self._rest = data[cut:]
        for raw in data[:cut].decode(errors="replace").splitlines():
            arrival = parse_line(raw)
            if arrival is not None:
                group = group_of(arrival.uri)
                self._by_group.setdefault(group, []).append(arrival)
                self._counts[group] += 1

    def count(self, group: str) -> int:
        self.poll()
        return self._counts[group]

    def of(self, *groups: str) -> list[Arrival]:
        self.poll()
        return [a for g in groups for a in self._by_group.get(g, [])]

    def wait_for(
        self,
        group: str,
        expected: int,
        timeout: float,
        check: Callable[[], None] | None = None,
        stall: float | None = None,
    ) -> int:
        """Poll until `expected` arrivals in `group`, `timeout` passes, or nothing arrives
        for `stall` seconds; `check` may raise (a process died). Returns the count."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            got = self.count(group)
            now = time.monotonic()
            if got != last:
                last, last_change = got, now
            if got >= expected or now > deadline:
                return got
            if stall is not None and now - last_change > stall:
                return got
            if check is not None:
                check()
            time.sleep(0.02)
