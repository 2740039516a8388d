"""The exact ledger of a workload, or its figures are void.

Published (2xx answers the bench got) must equal the events stored (give or take
requests that got no answer at all: the bench cannot know whether those were
stored), events x endpoints must equal succeeded + failed + pending, and at every
endpoint on the receiver the distinct (event, endpoint) pairs that arrived must
equal the deliveries recorded as succeeded there. Extra arrivals of a pair are
duplicates: allowed (delivery is at least once) and reported.

The database is read directly (asyncpg, or sqlite3 for embedded mode). A success
is recorded just after the receiver answers, so the check is repeated for a few
seconds until it balances.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from bench.arrivals import Arrivals, group_of
from bench.harness import asyncpg_dsn

SETTLE_SECONDS = 10.0

_SQL = """
SELECT ep.url, d.status, count(*) FROM delivery d
JOIN event e ON e.id = d.event_id JOIN endpoint ep ON ep.id = d.endpoint_id
WHERE e.type IN ({types}) GROUP BY ep.url, d.status
"""
_EVENTS_SQL = "SELECT count(*) FROM event WHERE type IN ({types})"


@dataclass
class Ledger:
    name: str
    published: int
    per_event: int
    unanswered: int = 0  # requests with no answer (timeout, connection error)
    stored: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    received: int = 0  # distinct (event, endpoint) pairs at the receiver
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, object]:
        return {
            "published": self.published,
            "unanswered": self.unanswered,
            "endpoints_per_event": self.per_event,
            "events_stored": self.stored,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "pending": self.pending,
            "received_at_receiver": self.received,
            "duplicates": self.duplicates,
            "balanced": self.ok,
            "problems": self.problems,
        }

    def line(self) -> str:
        state = "balanced" if self.ok else "VOID: " + "; ".join(self.problems)
        return (
            f"ledger {self.name}: {self.stored} events x {self.per_event} = "
            f"{self.succeeded} succeeded + {self.failed} failed + {self.pending} pending; "
            f"receiver {self.received} (+{self.duplicates} duplicates); {state}"
        )


def _rows(db_url: str, types: list[str]) -> tuple[int, list[tuple[str, str, int]]]:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        marks = ",".join("?" * len(types))
        with sqlite3.connect(url.database or "", timeout=30) as conn:
            stored = conn.execute(_EVENTS_SQL.format(types=marks), types).fetchone()[0]
            rows = conn.execute(_SQL.format(types=marks), types).fetchall()
        return int(stored), [(str(u), str(s), int(n)) for u, s, n in rows]

    async def query() -> tuple[int, list[tuple[str, str, int]]]:
        import asyncpg

        marks = ",".join(f"${i + 1}" for i in range(len(types)))
        conn = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            stored = await conn.fetchval(_EVENTS_SQL.format(types=marks), *types)
            rows = await conn.fetch(_SQL.format(types=marks), *types)
        finally:
            await conn.close()
        return int(stored), [(r[0], r[1], int(r[2])) for r in rows]

    return asyncio.run(query())


def check_once(
    name: str,
    db_url: str,
    types: list[str],
    published: int,
    per_event: int,
    arrivals: Arrivals,
    receiver_base: str,
    unanswered: int = 0,
) -> Ledger:
    ledger = Ledger(name, published, per_event, unanswered)
    stored, rows = _rows(db_url, types)
    ledger.stored = stored
    succeeded_at: Counter[str] = Counter()
    for url, status, n in rows:
        if status == "succeeded":
            ledger.succeeded += n
            succeeded_at[url] += n
        elif status == "failed":
            ledger.failed += n
        else:
            ledger.pending += n
    if not published <= stored <= published + unanswered:
        ledger.problems.append(
            f"{stored} events stored for {published} accepted"
            + (f" and {unanswered} unanswered" if unanswered else "")
        )
    total = ledger.succeeded + ledger.failed + ledger.pending
    if total != stored * per_event:
        ledger.problems.append(f"{total} deliveries for {stored} events x {per_event}")
    # What arrived, per endpoint URL on the receiver.
    urls = {url for url, _s, _n in rows if url.startswith(receiver_base + "/")}
    groups = {group_of(url[len(receiver_base) :]) for url in urls}
    lines = [a for a in arrivals.of(*groups) if receiver_base + a.uri in urls]
    pairs = Counter((a.event_id, a.uri) for a in lines)
    ledger.received = len(pairs)
    ledger.duplicates = len(lines) - len(pairs)
    distinct_at = Counter(uri for _event, uri in pairs)
    short = sum(max(0, succeeded_at[u] - distinct_at[u[len(receiver_base) :]]) for u in urls)
    extra = sum(max(0, distinct_at[u[len(receiver_base) :]] - succeeded_at[u]) for u in urls)
    if short:
        ledger.problems.append(f"{short} recorded as succeeded but never arrived")
    if extra:
        ledger.problems.append(f"{extra} arrived but not recorded as succeeded")
    return ledger


def check(
    name: str,
    db_url: str,
    types: list[str],
    published: int,
    per_event: int,
    arrivals: Arrivals,
    receiver_base: str,
    unanswered: int = 0,
    settle: float = SETTLE_SECONDS,
) -> Ledger:
    deadline = time.monotonic() + settle
    while True:
        ledger = check_once(
            name, db_url, types, published, per_event, arrivals, receiver_base, unanswered
        )
        if ledger.ok or time.monotonic() > deadline:
            print("  " + ledger.line())
            return ledger
        time.sleep(0.25)
