"""PostgreSQL's partitions of event, delivery and attempt: one per UTC day, made ahead
by the retention cron and dropped whole by it (`outbound/retention.py`). SQLite keeps
plain tables.

event and delivery are partitioned by RANGE on `id`: ids are prefixed ULIDs whose first
ten characters are the millisecond they were made, so one day's ids lie between two
strings, a lookup by id reads one partition, and the primary key stays `id` (so the
foreign keys to them stay too). attempt is partitioned by `started_at`, which bounds
every read of many attempts (the figures, an endpoint's page); its primary key carries
`started_at`, as PostgreSQL requires of a partitioned table's unique keys.

Each table also has a DEFAULT partition: a row whose day has no partition (the cron
not run for a week) lands there instead of failing the write. The partition the
migration made of the table as it was (`<table>_before`) holds everything stored
until then; it goes whole once all of it is past retention.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ids import first_id_at, id_millis
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.partitions")

# The partitioned tables, parents before children, with their ids' prefixes (attempt
# is partitioned by time, not by id).
PREFIXES: dict[str, str | None] = {"event": "evt", "delivery": "dlv", "attempt": None}
KEYS = {"event": "id", "delivery": "id", "attempt": "started_at"}
AHEAD_DAYS = 7
DAY = timedelta(days=1)
EVER, FOREVER = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
# DDL waits at most this long for a lock: past it, the cron tries again next time,
# rather than queueing every publish behind it.
LOCK_TIMEOUT = "2s"
# One maker or dropper of partitions at a time (the workers' cron, `gateway purge`).
_ADVISORY_KEY = 0x70617274  # "part"
_BOUNDS = re.compile(r"FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    # [lower, upper) in UTC; None: unbounded (MINVALUE). Both None for the DEFAULT.
    lower: datetime | None
    upper: datetime | None

    @property
    def is_default(self) -> bool:
        return self.upper is None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return (
            not self.is_default
            and (self.lower is None or self.lower < end)
            and (self.upper is not None and self.upper > start)
        )


def day_of(at: datetime) -> datetime:
    """The start of `at`'s day, in UTC."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def bound(table: str, at: datetime) -> str:
    """The partition key's value at `at` (UTC), as an SQL literal."""
    prefix = PREFIXES[table]
    if prefix is None:
        return f"'{at:%Y-%m-%d %H:%M:%S}+00'"
    millis = int(at.timestamp() * 1000)
    return f"'{first_id_at(prefix, millis)}'"


def in_range(table: str, column: str, lower: datetime | None, upper: datetime) -> str:
    """SQL: `column` (of `table`'s key kind) in [lower, upper)."""
    condition = f"{column} < {bound(table, upper)}"
    if lower is not None:
        condition = f"{column} >= {bound(table, lower)} AND {condition}"
    return condition


def partition_name(table: str, day: datetime) -> str:
    return f"{table}_p{day:%Y%m%d}"


def create_day_sql(table: str, day: datetime) -> list[str]:
    """Statements that make `table`'s partition of `day`. Made apart and then attached:
    ATTACH locks the parent less than CREATE ... PARTITION OF (writes go on)."""
    name = partition_name(table, day)
    statements = [
        f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)",
        f"ALTER TABLE {table} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ({bound(table, day)}) TO ({bound(table, day + DAY)})",
    ]
    if table == "delivery":
        # Per partition: a scan pruned to one partition plans with that one's statistics.
        statements.append(
            f"CREATE STATISTICS st_{name}_status_event_type (mcv) ON status, event_type FROM {name}"
        )
    return statements


def _parse_bound(table: str, value: str) -> datetime | None:
    if value == "MINVALUE":
        return None
    value = value.strip("'")
    if PREFIXES[table] is None:
        return datetime.fromisoformat(value).astimezone(UTC)
    return datetime.fromtimestamp(id_millis(value) / 1000, UTC)


async def partitions(conn: AsyncConnection, table: str) -> list[Partition]:
    """`table`'s partitions, oldest first, the DEFAULT last."""
    rows = await conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    )
    found = []
    for name, expression in rows:
        match = _BOUNDS.search(expression)
        if match is None:  # DEFAULT
            found.append(Partition(table, name, None, None))
        else:
            lower, upper = (_parse_bound(table, v) for v in match.groups())
            found.append(Partition(table, name, lower, upper))
    return sorted(found, key=lambda p: (p.is_default, p.upper or FOREVER))


async def is_partitioned(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    query = "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('event')"
    return bool(await conn.scalar(text(query)))


async def lock(conn: AsyncConnection) -> None:
    """In a transaction: one partition maker or dropper at a time, and short lock waits."""
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_KEY})"))


async def create_ahead(
    conn: AsyncConnection, since: datetime | None = None, ahead_days: int = AHEAD_DAYS
) -> list[str]:
    """Make the daily partitions missing from `since` (default: today) to `ahead_days`
    days from now, each in its own transaction; returns their names. A day whose rows
    are already in the DEFAULT partition is left there (logged): making its partition
    would mean moving them, which the purge does instead as they expire."""
    today = day_of(utcnow())
    first = day_of(since) if since is not None else today
    made = []
    days = [first + n * DAY for n in range((today - first) // DAY + ahead_days + 1)]
    for table in PREFIXES:
        async with conn.begin():
            listed = await partitions(conn, table)
        for day in days:
            if any(p.overlaps(day, day + DAY) for p in listed):
                continue  # the usual case: one look at the catalogue per table
            async with conn.begin():
                await lock(conn)
                existing = await partitions(conn, table)  # again, under the lock
                if any(p.overlaps(day, day + DAY) for p in existing):
                    continue
                default = next((p for p in existing if p.is_default), None)
                if default is not None and await conn.scalar(
                    text(
                        f"SELECT 1 FROM {default.name} WHERE "
                        f"{in_range(table, KEYS[table], day, day + DAY)} LIMIT 1"
                    )
                ):
                    log.warning("%s rows of %s are in %s", table, f"{day:%Y-%m-%d}", default.name)
                    continue
                for statement in create_day_sql(table, day):
                    await conn.execute(text(statement))
                made.append(partition_name(table, day))
    if made:
        log.info("partitions made: %s", ", ".join(made))
    return made
