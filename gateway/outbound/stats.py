"""Figures from the database: attempts, outcomes and latency over a time range, per
bucket; the backlog; the endpoints failing now. The API's `/v1/stats` routes, the
console's overview and the portal call these, so every API process answers the same,
also after a restart (process counters are in `gateway.metrics`).

Every read is bounded by time and served by an index on `attempt.started_at` (or
`(endpoint_id, started_at)`): nothing counts the whole table. Percentiles are
nearest-rank (the smallest duration with at least p% of the attempts at or below
it), computed in SQL: on PostgreSQL by `percentile_disc` (which is the nearest rank)
in the same scan as the counts, on SQLite with window functions; both give the same
answer to the millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Invalid
from gateway.outbound.endpoints import get_endpoint
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Endpoint, table
from gateway.timeutil import as_utc, utcnow

Bucket = Literal["minute", "hour", "day"]
BUCKET_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
# The longest range each bucket may cover (and the range when `since` is not given).
MAX_RANGE: dict[str, timedelta] = {
    "minute": timedelta(days=1),
    "hour": timedelta(days=31),
    "day": timedelta(days=366),
}
DEFAULT_RANGE: dict[str, timedelta] = {
    "minute": timedelta(hours=1),
    "hour": timedelta(days=1),
    "day": timedelta(days=30),
}
PERCENTILES = (50, 95, 99)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")
# A backlog is counted up to this many deliveries: past it, "at least".
BACKLOG_COUNT_CAP = 100_000

_ATTEMPT = table(Attempt)
_ENDPOINT = table(Endpoint)
_DELIVERY = table(Delivery)


@dataclass
class Figures:
    """Attempts over a span: what came of them and how long they took."""

    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    # Of the failed: those after which the delivery was put off to a retry; the rest
    # were the delivery's last (it failed).
    retried: int = 0
    status_classes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    latency_ms: dict[str, int | None] = field(
        default_factory=lambda: {f"p{p}": None for p in PERCENTILES}
    )

    @property
    def given_up(self) -> int:
        return self.failed - self.retried

    @property
    def success_rate(self) -> float | None:
        return round(self.succeeded / self.attempts, 4) if self.attempts else None

    def out(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "success_rate": self.success_rate,
            "latency_ms": dict(self.latency_ms),
            "status_classes": dict(self.status_classes),
        }


@dataclass
class Stats:
    since: datetime
    until: datetime
    bucket: str
    totals: Figures
    buckets: list[tuple[datetime, Figures]]

    def out(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "bucket": self.bucket,
            **self.totals.out(),
            "buckets": [{"start": start, **f.out()} for start, f in self.buckets],
        }


def time_range(
    since: datetime | None, until: datetime | None, bucket: str
) -> tuple[datetime, datetime]:
    """The range asked for, in UTC, with its defaults; Invalid (422) naming the problem."""
    if bucket not in BUCKET_SECONDS:
        raise Invalid("bucket must be minute, hour or day", loc=("query", "bucket"))
    until = as_utc(until) if until is not None else utcnow()
    since = as_utc(since) if since is not None else until - DEFAULT_RANGE[bucket]
    if until <= since:
        raise Invalid("until must be after since", loc=("query", "until"))
    limit = MAX_RANGE[bucket]
    if until - since > limit:
        raise Invalid(
            f"a range of at most {_span(limit)} with bucket={bucket} (this one is "
            f"{_span(until - since)}): narrow it or use a larger bucket",
            loc=("query", "since"),
        )
    return since, until


def _span(value: timedelta) -> str:
    if value % timedelta(days=1) == timedelta(0):
        days = value // timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{value.total_seconds() / 3600:.4g} hours"


def _div(value: ColumnElement[Any], by: int) -> ColumnElement[Any]:
    """Integer division, written the same on both backends (SQLAlchemy's `//` becomes
    FLOOR(), which SQLite has only when built with its math functions)."""
    return value.op("/", precedence=100)(literal_column(str(by)))


def _epoch_seconds(dialect: str) -> ColumnElement[Any]:
    started = _ATTEMPT.c.started_at
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", started)), BigInteger)
    return cast(func.strftime(literal_column("'%s'"), started), Integer)


def _is_ok() -> ColumnElement[bool]:
    code = _ATTEMPT.c.status_code
    return (code >= 200) & (code < 300)


async def attempt_stats(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: str = "hour",
    tenant_id: str | None = None,
    endpoint_id: str | None = None,
    scope: str | None = None,
    percentiles: bool = True,
    bucket_percentiles: bool = True,
) -> Stats:
    """The figures of the attempts started in [since, until), in total and per bucket
    (every bucket of the range, empty ones included, aligned to UTC minutes, hours or
    days). `scope` is the caller's tenant: with `endpoint_id`, another tenant's endpoint
    is not found (404). `percentiles=False` skips the latency (one query less);
    `bucket_percentiles=False` computes it for the whole range only (one sort less)."""
    since, until = time_range(since, until, bucket)
    if endpoint_id is not None:
        await get_endpoint(session, endpoint_id, scope)
    width = BUCKET_SECONDS[bucket]
    conn = await session.connection()
    # Literals, no parameters: GROUP BY must repeat the select's expression exactly.
    slot = _div(_epoch_seconds(conn.dialect.name), width)
    a = _ATTEMPT.c
    conditions: list[ColumnElement[bool]] = [
        a.started_at >= since,
        a.started_at < until,
    ]
    if endpoint_id is not None:
        conditions.append(a.endpoint_id == endpoint_id)
    for tenant in {tenant_id, scope} - {None}:
        conditions.append(
            a.endpoint_id.in_(select(_ENDPOINT.c.id).where(_ENDPOINT.c.tenant_id == tenant))
        )

    code = a.status_code
    classes = {
        "none": code.is_(None),
        **{f"{n}xx": (code >= n * 100) & (code < n * 100 + 100) for n in range(1, 6)},
    }
    postgres = conn.dialect.name == "postgresql"
    # PostgreSQL ranks in the same scan: percentile_disc is the nearest rank, per
    # bucket and (ROLLUP's extra row, slot NULL) over the whole range.
    ranked_here = postgres and percentiles
    counted = select(
        slot.label("slot"),
        func.count().label("attempts"),
        func.sum(case((_is_ok(), 1), else_=0)).label("succeeded"),
        func.sum(case((a.retried.is_(True), 1), else_=0)).label("retried"),
        *(func.sum(case((test, 1), else_=0)).label(f"c_{name}") for name, test in classes.items()),
        *(
            [
                func.percentile_disc(pg_array([p / 100 for p in PERCENTILES]))
                .within_group(a.duration_ms)
                .label("ms")
            ]
            if ranked_here
            else []
        ),
    ).where(*conditions)
    counted = counted.group_by(func.rollup(slot) if ranked_here else slot)
    first = int(since.timestamp()) // width
    last = (int(until.timestamp()) - 1) // width
    per_slot = {n: Figures() for n in range(first, last + 1)}
    totals = Figures()
    for row in await conn.execute(counted):
        if row.slot is None:  # ROLLUP's total: only its ranks are new
            if row.ms is not None:  # None: no attempts at all
                totals.latency_ms = dict(zip(totals.latency_ms, row.ms, strict=True))
            continue
        figures = per_slot.setdefault(int(row.slot), Figures())
        if ranked_here and bucket_percentiles:
            figures.latency_ms = dict(zip(figures.latency_ms, row.ms, strict=True))
        for target in (figures, totals):
            target.attempts += row.attempts
            target.succeeded += row.succeeded or 0
            target.failed += row.attempts - (row.succeeded or 0)
            target.retried += row.retried or 0
            for name in STATUS_CLASSES:
                target.status_classes[name] += getattr(row, f"c_{name}") or 0

    if percentiles and totals.attempts and not ranked_here:
        # SQLite: row numbers in the order of the durations, and the rows at the ranks.
        # Without the per-bucket ranks, -1 stands in: no row is picked by them.
        none: ColumnElement[Any] = literal_column("-1")
        ranked = select(
            slot.label("slot"),
            a.duration_ms.label("ms"),
            func.row_number().over(partition_by=slot, order_by=a.duration_ms).label("rn")
            if bucket_percentiles
            else none.label("rn"),
            func.count().over(partition_by=slot).label("n")
            if bucket_percentiles
            else none.label("n"),
            func.row_number().over(order_by=a.duration_ms).label("rn_all"),
            func.count().over().label("n_all"),
        ).where(*conditions)
        r = ranked.subquery()
        wanted = [_div(r.c.n * p + 99, 100) for p in PERCENTILES]
        wanted_all = [_div(r.c.n_all * p + 99, 100) for p in PERCENTILES]
        picked = select(r.c.slot, r.c.ms, r.c.rn, r.c.n, r.c.rn_all, r.c.n_all).where(
            or_(r.c.rn.in_(wanted), r.c.rn_all.in_(wanted_all))
            if bucket_percentiles
            else r.c.rn_all.in_(wanted_all)
        )
        for row in await conn.execute(picked):
            for p in PERCENTILES:
                if bucket_percentiles and row.rn == (row.n * p + 99) // 100:
                    per_slot[int(row.slot)].latency_ms[f"p{p}"] = row.ms
                if row.rn_all == (row.n_all * p + 99) // 100:
                    totals.latency_ms[f"p{p}"] = row.ms
    buckets = [
        (datetime.fromtimestamp(n * width, UTC), figures) for n, figures in sorted(per_slot.items())
    ]
    return Stats(since, until, bucket, totals, buckets)


@dataclass
class Backlog:
    due: int  # pending deliveries due now (capped at BACKLOG_COUNT_CAP)
    oldest_due_at: datetime | None
    capped: bool

    @property
    def oldest_age_seconds(self) -> float | None:
        if self.oldest_due_at is None:
            return None
        return max(0.0, (utcnow() - as_utc(self.oldest_due_at)).total_seconds())


async def backlog(session: AsyncSession, scope: str | None = None) -> Backlog:
    """Deliveries due now and not yet made, and how long the oldest has waited: read
    from the sweeper's index (status, next_attempt_at), counting at most
    BACKLOG_COUNT_CAP."""
    d = _DELIVERY.c
    now = utcnow()
    conditions: list[ColumnElement[bool]] = [
        d.status == DeliveryStatus.PENDING,
        d.next_attempt_at <= now,
    ]
    if scope is not None:
        conditions.append(
            d.endpoint_id.in_(select(_ENDPOINT.c.id).where(_ENDPOINT.c.tenant_id == scope))
        )
    due = select(d.id).where(*conditions).limit(BACKLOG_COUNT_CAP + 1).subquery()
    count = (await session.execute(select(func.count()).select_from(due))).scalar_one()
    oldest = (
        await session.execute(
            select(d.next_attempt_at).where(*conditions).order_by(d.next_attempt_at).limit(1)
        )
    ).scalar_one_or_none()
    return Backlog(min(count, BACKLOG_COUNT_CAP), oldest, count > BACKLOG_COUNT_CAP)


async def failing_endpoints(
    session: AsyncSession, scope: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Endpoints failing now: every attempt failing since some time (oldest failure
    first), then those the gateway disabled for failing (newest change first)."""
    e = _ENDPOINT.c
    columns = (
        e.id,
        e.url,
        e.tenant_id,
        e.description,
        e.disabled,
        e.disabled_reason,
        e.failing_since,
        e.consecutive_failures,
        e.warned_percent,
        e.updated_at,
    )
    tenant = [e.tenant_id == scope] if scope is not None else []
    failing = (
        select(*columns)
        .where(e.failing_since.is_not(None), *tenant)
        .order_by(e.failing_since, e.id)
        .limit(limit)
    )
    rows = [dict(row._mapping) for row in await session.execute(failing)]
    if len(rows) < limit:
        disabled = (
            select(*columns)
            .where(
                e.failing_since.is_(None),
                e.disabled.is_(True),
                e.disabled_reason.is_not(None),
                *tenant,
            )
            .order_by(e.updated_at.desc())
            .limit(limit - len(rows))
        )
        rows += [dict(row._mapping) for row in await session.execute(disabled)]
    return rows
