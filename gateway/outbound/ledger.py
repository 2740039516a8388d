"""The delivery ledger: claiming due deliveries (a lease in the row) and recording what
came of each attempt, as SQL.

Claims and records are made for many jobs at once, in one transaction each
(`delivery.py` groups them with `gateway.groupcall`); a delivery's lease is checked
again when its attempt is recorded, so a job that lost its lease records nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Row,
    String,
    Update,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import lost_a_race
from gateway.metrics import ATTEMPTS, DEFERRED, FINISHED, status_class
from gateway.outbound.context import DeliveryContext
from gateway.outbound.health import record_health
from gateway.outbound.ordering import SendHere, dispatch_successors, lets_next_go, not_held_back
from gateway.outbound.payload import event_body
from gateway.outbound.policy import effective, retry_delay
from gateway.queue.dispatch import DELIVER_DELIVERIES, DELIVER_EVENTS, dispatch_deliveries
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event, table
from gateway.timeutil import as_utc, utcnow

# Deliveries due again later than this are queued in one job per second (see
# `_dispatch_later`); sooner ones keep a job, and their exact time, each.
GROUP_AFTER = 2.0
# The attempts' log lines keep the delivery's logger name.
log = logging.getLogger("gateway.delivery")

# Deliveries one claim takes; an event with more endpoints continues in further jobs,
# so that no job runs past its timeout waiting for connection slots.
CLAIM_BATCH = 500
# Clocks of API hosts and workers differ a little; work due this soon is due now.
CLOCK_SLACK = timedelta(seconds=1)
# Transactions of records that a deadlock may abort before they are given up.
RECORD_TRIES = 3


@dataclass(frozen=True)
class Want:
    """What a job asks to claim: its events' due deliveries, or the given deliveries."""

    event_ids: tuple[str, ...] = ()
    delivery_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Leased:
    """What a job carries when the publish leased its deliveries: their ids, and the
    lease (their `locked_until`), which makes them this job's without a claim."""

    lease: datetime
    delivery_ids: tuple[str, ...]


@dataclass
class Job:
    delivery_id: str
    lease: datetime  # the claim's `locked_until`: recording checks it still holds
    attempt: int
    endpoint: Row[Any]  # a row of the endpoint table
    event: Row[Any]  # a row of the event table
    body: bytes
    rate_slot_at: datetime | None
    stalled_claims: int
    # When the delivery was made: its first attempt, for a policy's `max_duration`.
    created_at: datetime | None = None
    # Its event's ordering key, when its endpoint is ordered: its end lets the next go.
    ordering_key: str | None = None


@dataclass
class Outcome:
    started_at: datetime
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None
    retry_after: float | None = None
    # Not sent: the endpoint's rate limit or breaker puts it off by this many seconds.
    deferred: float | None = None
    deferred_by: str = ""
    # Not sent, and not to be: the gateway itself kept failing on this delivery.
    dead: bool = False
    # Not sent, and not to be: the endpoint's transformation cancelled it.
    cancelled: bool = False

    # The three shapes, by name: sent (answered or not), put off, given up.

    @classmethod
    def answered(
        cls,
        started_at: datetime,
        status: int,
        duration_ms: int,
        body: str,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> Outcome:
        return cls(started_at, status, duration_ms, body, error, retry_after)

    @classmethod
    def unanswered(
        cls, error: str, started_at: datetime | None = None, duration_ms: int = 0
    ) -> Outcome:
        """A failed attempt without an answer: timed out, refused, or not sent at all."""
        return cls(started_at or utcnow(), None, duration_ms, None, error)

    @classmethod
    def put_off(cls, seconds: float, by: str) -> Outcome:
        """Not sent, and not an attempt: due again in `seconds`."""
        return cls(utcnow(), None, 0, None, None, deferred=seconds, deferred_by=by)

    @classmethod
    def given_up(cls, error: str) -> Outcome:
        """Not sent, and not to be: the delivery fails now."""
        return cls(utcnow(), None, 0, None, error, dead=True)

    @classmethod
    def cancel(cls) -> Outcome:
        """Skipped by the endpoint's transformation: no attempt, the delivery is over."""
        return cls(utcnow(), None, 0, None, None, cancelled=True)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_DELIVERY = table(Delivery)
_EVENT = table(Event)
_ENDPOINT = table(Endpoint)
_ATTEMPT = table(Attempt)


def _pending_found_by_key() -> Any:
    """`status = 'pending'`, written so that no index on `status` can serve it, for
    statements that find their rows by a key (ids, events): without fresh statistics
    (a new day's partition, a server without autovacuum) PostgreSQL would otherwise
    walk the status index, whose "pending" entries include every row version not yet
    vacuumed: 2.5 ms against 0.2 ms for a claim of 10 deliveries among 15,000 pending."""
    return func.coalesce(_DELIVERY.c.status, "") == DeliveryStatus.PENDING


def _id_among(column: ColumnElement[str], postgres: bool, name: str = "ids") -> Any:
    """`column IN :name` for a table partitioned by its id (`column`); its parameters
    are `_id_params`'.

    On PostgreSQL, `id IN (...)` of a few hundred ids was planned as a sequential scan
    of the day's partition whenever its pages cost less than as many index probes at
    `random_page_cost`: every day's partition below about 100,000 rows, with statistics
    or without. A job's read grew to 20-60 ms over a 20-second W3 run. Here the ids
    come as one array, unnested in a subquery whose length the planner cannot know (it
    takes 10), so it probes the primary key for each; and their range (`lo`, `hi`: ids
    sort by time) prunes the partitions at planning. SQLite has no arrays, and plans
    the list by its index.
    """
    if not postgres:
        return column.in_(bindparam(name, expanding=True))
    ids = select(func.unnest(bindparam(name, type_=ARRAY(String)))).scalar_subquery()
    return and_(column == any_(func.array(ids)), column.between(bindparam("lo"), bindparam("hi")))


def _id_params(ids: Collection[str], name: str = "ids") -> dict[str, Any]:
    """The parameters of an `_id_among` condition: the ids, and their range. The range
    is taken in Python: every event and delivery id is `new_id`'s, of one length and
    of digits and capitals after one prefix, which any collation orders as Python
    does (the partitions' bounds rely on it too)."""
    return {name: list(ids), "lo": min(ids), "hi": max(ids)}


def _claim_statement(by: str, skip_locked: bool) -> Update:
    """Lease the due, unleased deliveries of some events (`by` "event_id") or by id.

    Built once: a statement object memoizes its cache key, so each claim skips
    building the SQL expression and looking up its compiled form. Events and ids
    are never asked for in one condition: an OR of the two made PostgreSQL walk the
    whole table in id order instead of using either index.
    """
    d = _DELIVERY.c
    due_ids = (
        select(d.id)
        .where(
            # By event: an index of its own, not the partitions' key.
            d.event_id.in_(bindparam("keys", expanding=True))
            if by == "event_id"
            else _id_among(d.id, skip_locked, "keys"),
            _pending_found_by_key(),
            d.next_attempt_at <= bindparam("due_by"),
            or_(d.locked_until.is_(None), d.locked_until < bindparam("now")),
            # An ordered endpoint's delivery waits for the one before it of its key.
            not_held_back(d),
        )
        .order_by(d.id)
        .limit(CLAIM_BATCH)
    )
    if skip_locked:  # PostgreSQL: concurrent claims take different rows, without waiting
        due_ids = due_ids.with_for_update(skip_locked=True)
    return (
        update(_DELIVERY)
        .where(d.id.in_(due_ids.scalar_subquery()))
        .values(locked_until=bindparam("lease"), stalled_claims=d.stalled_claims + 1)
        .returning(
            d.id,
            d.event_id,
            d.endpoint_id,
            d.attempt_count,
            d.rate_slot_at,
            d.stalled_claims,
            d.created_at,
            d.ordering_key,
        )
    )


_CLAIM = {
    (by, skip_locked): _claim_statement(by, skip_locked)
    for by in ("event_id", "id")
    for skip_locked in (True, False)
}
_ENDPOINTS_BY_ID = select(_ENDPOINT).where(_ENDPOINT.c.id.in_(bindparam("ids", expanding=True)))
# Records an attempt's outcome on a delivery, if this job still owns it: a delivery
# deleted with its endpoint meanwhile, or leased again, is left alone.
_UPDATE_OWNED = (
    update(_DELIVERY)
    .where(_DELIVERY.c.id == bindparam("b_id"), _DELIVERY.c.locked_until == bindparam("b_lease"))
    .values(
        status=bindparam("v_status"),
        attempt_count=bindparam("v_attempt_count"),
        next_attempt_at=bindparam("v_next_attempt_at"),
        locked_until=None,
        stalled_claims=0,
        dispatched_at=bindparam("v_dispatched_at"),
        rate_slot_at=bindparam("v_rate_slot_at"),
        last_status_code=case(
            (bindparam("v_last_status_code") == -1, _DELIVERY.c.last_status_code),
            else_=bindparam("v_last_status_code"),
        ),
        updated_at=bindparam("v_updated_at"),
    )
)
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempt",
    "started_at",
    "status_code",
    "duration_ms",
    "response_body",
    "error",
    "endpoint_id",
    "retried",
)
# Records an attempt, unless its delivery is gone (deleted with its endpoint while the
# attempt was in flight). On PostgreSQL no foreign key says so (migration 0017: its
# check cost ten times this). Run after `_UPDATE_OWNED`, which locks the deliveries it
# records on: a delete of the endpoint then waits for the commit, and deletes these
# attempts with the deliveries.
_INSERT_ATTEMPTS = insert(_ATTEMPT).from_select(
    _ATTEMPT_COLUMNS,
    select(*(bindparam(name, type_=_ATTEMPT.c[name].type) for name in _ATTEMPT_COLUMNS)).where(
        exists().where(_DELIVERY.c.id == bindparam("delivery_id"))
    ),
)


async def claim(ctx: DeliveryContext, wants: list[Want]) -> list[list[Job]]:
    """Claim what the jobs want in one transaction; their deliveries, per job."""
    now = utcnow()
    # The lease outlives the job's own timeout: by then the job has finished or died.
    lease = now + timedelta(seconds=ctx.settings.job_timeout or 60)
    # Which job each delivery goes to: the first that asked for its event, else
    # the first that named it.
    by_event: dict[str, int] = {}
    by_id: dict[str, int] = {}
    for i, want in enumerate(wants):
        for event_id in want.event_ids:
            by_event.setdefault(event_id, i)
        for delivery_id in want.delivery_ids:
            by_id.setdefault(delivery_id, i)
    full = False
    claimed: list[Row[Any]] = []
    async with ctx.sessionmaker() as session, session.begin():
        conn = await session.connection()
        postgres = conn.dialect.name == "postgresql"
        for by, keys in (("event_id", by_event), ("id", by_id)):
            if keys:
                rows = (
                    await conn.execute(
                        _CLAIM[by, postgres],
                        {
                            "due_by": now + CLOCK_SLACK,
                            "now": now,
                            "lease": lease,
                            **(_id_params(keys, "keys") if by == "id" else {"keys": list(keys)}),
                        },
                    )
                ).all()
                full = full or len(rows) == CLAIM_BATCH
                claimed += rows
        claimed.sort(key=lambda row: row.id)
        if not claimed:
            return [[] for _ in wants]
        events, endpoints, bodies = await _events_and_endpoints(conn, claimed)
    if full:
        await _continue(ctx, wants, {row.id for row in claimed}, claimed[-1].id)
    jobs: list[list[Job]] = [[] for _ in wants]
    for row in claimed:
        owner = by_event.get(row.event_id)
        jobs[by_id[row.id] if owner is None else owner].append(
            Job(
                row.id,
                lease,
                row.attempt_count + 1,
                endpoints[row.endpoint_id],
                events[row.event_id],
                bodies[row.event_id],
                row.rate_slot_at,
                row.stalled_claims - 1,
                created_at=row.created_at,
                ordering_key=row.ordering_key,
            )
        )
    return jobs


# A publish's lease with less than this left beyond the attempt's timeout is taken
# over with a lease of a claim's length: an attempt (with its wait for a slot, and its
# record) must end while its lease holds, or the sweeper hands the delivery out again.
LEASE_MARGIN = timedelta(seconds=5)
# The deliveries that publishes leased, read by primary key alone: which of them are
# still pending under their lease is decided here, in Python. With `status` in the
# condition PostgreSQL may walk the status index instead, whose entries for "pending"
# include every row version not yet vacuumed (1.5 ms of server CPU a read, against
# 0.13 ms for this one and the events' read, measured on 10,000 pending deliveries);
# and a join with the events, unknown to the planner until it runs, made it plan every
# partition of `event` on each read.
_LEASED_COLUMNS = (
    _DELIVERY.c.id,
    _DELIVERY.c.event_id,
    _DELIVERY.c.endpoint_id,
    _DELIVERY.c.status,
    _DELIVERY.c.ordering_key,
    _DELIVERY.c.locked_until,
    _DELIVERY.c.attempt_count,
    _DELIVERY.c.rate_slot_at,
    _DELIVERY.c.stalled_claims,
    _DELIVERY.c.created_at,
)


_LEASED = {
    postgres: select(*_LEASED_COLUMNS).where(_id_among(_DELIVERY.c.id, postgres))
    for postgres in (True, False)
}
_EVENTS_BY_ID = {
    postgres: select(_EVENT).where(_id_among(_EVENT.c.id, postgres)) for postgres in (True, False)
}
# One statement for the late jobs of many publishes: a delivery still under the lease
# of its own publish (another's lease equal to the microsecond is not to be met).
_TAKE_OVER = {
    postgres: update(_DELIVERY)
    .where(
        _id_among(_DELIVERY.c.id, postgres),
        _pending_found_by_key(),
        _DELIVERY.c.locked_until.in_(bindparam("leases", expanding=True)),
    )
    .values(locked_until=bindparam("new_lease"), stalled_claims=_DELIVERY.c.stalled_claims + 1)
    for postgres in (True, False)
}


async def take_leased(ctx: DeliveryContext, wants: list[Leased]) -> list[list[Job]]:
    """The deliveries of many jobs that their publishes leased, read together; per job.

    No claim: the publish wrote the lease in the same transaction as the rows, so
    the job only reads what it sends (its deliveries still pending under that lease,
    their events and endpoints), without a transaction or a commit to wait for. A job
    that starts with too little of its lease left (it waited in the queue) first
    takes its deliveries over with a claim's lease, if that lease is still theirs: a
    delivery already handed out again by the sweeper is left to that job.
    """
    now = utcnow()
    enough = now + timedelta(seconds=ctx.settings.delivery_timeout) + LEASE_MARGIN
    owner: dict[str, int] = {}
    lease_of: dict[str, datetime] = {}
    late: list[str] = []
    for i, want in enumerate(wants):
        for delivery_id in want.delivery_ids:
            if delivery_id not in owner:
                owner[delivery_id] = i
                lease_of[delivery_id] = want.lease
                if as_utc(want.lease) < enough:
                    late.append(delivery_id)
    if late:
        new_lease = now + timedelta(seconds=ctx.settings.job_timeout or 60)
        async with ctx.sessionmaker() as session, session.begin():
            conn = await session.connection()
            await conn.execute(
                _TAKE_OVER[conn.dialect.name == "postgresql"],
                {
                    "leases": list({lease_of[delivery_id] for delivery_id in late}),
                    "new_lease": new_lease,
                    **_id_params(late),
                },
            )
        for delivery_id in late:
            lease_of[delivery_id] = new_lease
    async with ctx.sessionmaker() as session:
        # Reads only: no transaction to open and commit, two round trips fewer.
        conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        postgres = conn.dialect.name == "postgresql"
        rows = sorted(
            (
                row
                for row in await conn.execute(_LEASED[postgres], _id_params(owner))
                if row.status == DeliveryStatus.PENDING
                # Never leased by a publish: ordered deliveries go through the claim.
                and row.ordering_key is None
                and row.locked_until is not None
                and as_utc(row.locked_until) == as_utc(lease_of[row.id])
            ),
            key=lambda row: row.id,
        )
        if not rows:
            return [[] for _ in wants]
        events, endpoints, bodies = await _events_and_endpoints(conn, rows)
    jobs: list[list[Job]] = [[] for _ in wants]
    for row in rows:
        endpoint = endpoints.get(row.endpoint_id)
        event = events.get(row.event_id)
        if endpoint is None or event is None:  # deleted meanwhile, and its deliveries with it
            continue
        jobs[owner[row.id]].append(
            Job(
                row.id,
                lease_of[row.id],
                row.attempt_count + 1,
                endpoint,
                event,
                bodies[event.id],
                row.rate_slot_at,
                row.stalled_claims - 1,  # counted by the publish's lease or the takeover
                created_at=row.created_at,
            )
        )
    return jobs


async def _events_and_endpoints(
    conn: AsyncConnection, deliveries: Sequence[Any]
) -> tuple[dict[str, Row[Any]], dict[str, Row[Any]], dict[str, bytes]]:
    """The events and endpoints of these deliveries (rows with `event_id` and
    `endpoint_id`), by id, read by primary key, and each event's body as it is sent."""
    events = {
        e.id: e
        for e in await conn.execute(
            _EVENTS_BY_ID[conn.dialect.name == "postgresql"],
            _id_params({row.event_id for row in deliveries}),
        )
    }
    endpoints = {
        e.id: e
        for e in await conn.execute(
            _ENDPOINTS_BY_ID, {"ids": list({row.endpoint_id for row in deliveries})}
        )
    }
    bodies = {
        e.id: event_body(e.id, e.type, e.created_at, e.data, e.previous_data)
        for e in events.values()
    }
    return events, endpoints, bodies


async def _continue(
    ctx: DeliveryContext, wants: list[Want], claimed: set[str], last_id: str
) -> None:
    """A full claim may have left work behind: let further jobs (maybe on another
    worker) take it. A job that finds nothing left costs one empty claim."""
    for want in wants:
        if want.event_ids:
            await ctx.dispatcher.enqueue(
                DELIVER_EVENTS, list(want.event_ids), job_id=f"evt:{want.event_ids[0]}:{last_id}"
            )
        left = [i for i in want.delivery_ids if i not in claimed]
        if left:
            await dispatch_deliveries(ctx.dispatcher, left, f"more:{last_id}")


def _count(job: Job, outcome: Outcome) -> None:
    """Metrics and the attempt's log line (built only when it will be written: hot path)."""
    if log.isEnabledFor(logging.INFO):
        log.info(
            "attempt %s",
            "deferred"
            if outcome.deferred is not None
            else "cancelled"
            if outcome.cancelled
            else "ok"
            if outcome.ok
            else "failed",
            extra={
                "event_id": job.event.id,
                "delivery_id": job.delivery_id,
                "endpoint_id": job.endpoint.id,
                "attempt": job.attempt,
                "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms,
                "error": outcome.error,
                "deferred_s": outcome.deferred,
            },
        )
    if outcome.deferred is not None:
        DEFERRED.labels(outcome.deferred_by).inc()
    elif outcome.cancelled:
        pass  # counted among the finished deliveries, as `cancelled`
    elif outcome.ok:
        ATTEMPTS.labels("success", status_class(outcome.status_code)).inc()
    else:
        kind = "failure" if outcome.status_code is not None else "error"
        ATTEMPTS.labels(kind, status_class(outcome.status_code)).inc()


async def record(
    ctx: DeliveryContext,
    batches: list[list[tuple[Job, Outcome]]],
    send_next: SendHere | None = None,
) -> list[None]:
    """Record the attempts of many jobs in one transaction. `send_next` sends, in this
    process, the deliveries of ordering keys whose previous one ended here."""
    results = [result for batch in batches for result in batch]
    now = utcnow()
    attempt_rows = []
    delivery_rows = []
    retries: list[tuple[str, str, float, bool]] = []
    finished_failed: dict[str, bool] = {}
    # Deliveries of ordered endpoints whose end lets the next of their key go.
    ended_heads: list[str] = []
    for job, outcome in results:
        attempt = job.attempt
        if outcome.deferred is not None:
            attempt -= 1  # not sent, so not an attempt
            delay: float | None = outcome.deferred
        elif outcome.cancelled:
            attempt -= 1
            delay = None
        else:
            row: dict[str, Any] = {
                "delivery_id": job.delivery_id,
                "attempt": attempt,
                "started_at": outcome.started_at,
                "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms,
                "response_body": outcome.response_body,
                "error": outcome.error,
                "endpoint_id": job.endpoint.id,
                "retried": None,
            }
            attempt_rows.append(row)
            delay = None
            # Not retried: a disabled endpoint, a delivery given up, and 410 Gone, after
            # which the endpoint is disabled (Standard Webhooks guidance).
            if (
                not outcome.ok
                and not job.endpoint.disabled
                and not outcome.dead
                and outcome.status_code != 410
            ):
                delay = retry_delay(
                    effective(job.endpoint.retry_policy, ctx.settings),
                    attempt,
                    outcome.status_code,
                    outcome.retry_after,
                    as_utc(job.created_at) if job.created_at is not None else now,
                    now,
                )
            if not outcome.ok:
                row["retried"] = delay is not None
        _count(job, outcome)
        if outcome.ok:
            status, next_at = DeliveryStatus.SUCCEEDED, None
        elif outcome.cancelled:
            status, next_at = DeliveryStatus.CANCELLED, None
        elif delay is None:
            status, next_at = DeliveryStatus.FAILED, None
        else:
            status, next_at = DeliveryStatus.PENDING, now + timedelta(seconds=delay)
            retries.append(
                (
                    job.delivery_id,
                    f"{attempt}:{int(next_at.timestamp() * 1000)}",
                    delay,
                    outcome.deferred_by == "rate_limit",
                )
            )
        if status != DeliveryStatus.PENDING:
            FINISHED.labels(status).inc()
        # Ended failed: counted by the endpoint's disable-after-failures rule.
        finished_failed[job.delivery_id] = status == DeliveryStatus.FAILED
        if job.ordering_key is not None and lets_next_go(status, job.endpoint.ordering):
            ended_heads.append(job.delivery_id)
        delivery_rows.append(
            {
                "b_id": job.delivery_id,
                "b_lease": job.lease,
                "v_status": status,
                "v_attempt_count": attempt,
                "v_next_attempt_at": next_at,
                "v_dispatched_at": now,
                "v_rate_slot_at": next_at if outcome.deferred is not None else None,
                # A put-off delivery keeps the status code of its last real attempt.
                "v_last_status_code": -1
                if outcome.deferred is not None or outcome.cancelled
                else outcome.status_code,
                "v_updated_at": now,
            }
        )
    try:
        await _write_records(ctx, delivery_rows, attempt_rows)
    except (IntegrityError, DataError):
        # A delivery re-claimed meanwhile (its attempt's number taken), or one row that
        # cannot be stored: record one by one, so that one row fails alone.
        attempts_by_id = {row["delivery_id"]: row for row in attempt_rows}
        for delivery_row in delivery_rows:
            attempt_row = attempts_by_id.get(delivery_row["b_id"])
            try:
                async with ctx.sessionmaker() as session, session.begin():
                    conn = await session.connection()
                    result = await conn.execute(_UPDATE_OWNED, delivery_row)
                    if result.rowcount and attempt_row is not None:
                        await conn.execute(_INSERT_ATTEMPTS, attempt_row)
            except (IntegrityError, DataError) as exc:
                log.warning(
                    "attempt of %s not recorded: %s",
                    delivery_row["b_id"],
                    "the delivery changed meanwhile"
                    if isinstance(exc, IntegrityError)
                    else "the database refused it",
                )
    await record_health(
        ctx,
        [
            (job.endpoint, outcome.status_code, outcome.ok, finished_failed.get(job.delivery_id))
            for job, outcome in results
            if outcome.deferred is None
            and not outcome.dead
            and not outcome.cancelled
            and not job.endpoint.disabled
        ],
        now,
    )
    for job, _outcome in results:  # a breaker's probe is over, whatever came of it
        ctx.probing.pop(job.endpoint.id, None)
    if ended_heads:
        await dispatch_successors(ctx, ended_heads, send_next)
    await _dispatch_later(ctx, retries)
    return [None] * len(batches)


async def _write_records(
    ctx: DeliveryContext, delivery_rows: list[dict[str, Any]], attempt_rows: list[dict[str, Any]]
) -> None:
    """Record the outcomes on the deliveries and log their attempts, in one transaction;
    run again when PostgreSQL aborts it to end a deadlock (an endpoint's delete
    cascading to the same deliveries, in another order)."""
    for tries_left in reversed(range(RECORD_TRIES)):
        try:
            # Core executemany on the connection: one round trip per statement, not per row.
            async with ctx.sessionmaker() as session, session.begin():
                conn = await session.connection()
                await conn.execute(_UPDATE_OWNED, delivery_rows)
                if attempt_rows:
                    await conn.execute(_INSERT_ATTEMPTS, attempt_rows)
            return
        except DBAPIError as exc:
            if tries_left == 0 or not lost_a_race(exc):
                raise


async def _dispatch_later(
    ctx: DeliveryContext, retries: list[tuple[str, str, float, bool]]
) -> None:
    """Queue the deliveries due again: each in a job of its own when it is due soon or
    holds a rate-limit slot, the others due in the same second in one job.

    One job per delivery made a herd when many come due together (the deliveries put
    off while a hanging endpoint's breaker was open): thousands of queue jobs, each
    costing a worker about what a whole claim does, ahead of new events' jobs. A
    group's job runs at its second's end, so none runs early; a rate-limited
    delivery keeps its own time, so that a group does not send in a burst."""
    alone: list[tuple[str, str, float]] = []
    groups: dict[int, list[tuple[str, str]]] = {}
    for delivery_id, tag, delay, own_time in retries:
        if own_time or delay < GROUP_AFTER:
            alone.append((delivery_id, tag, delay))
        else:
            groups.setdefault(math.ceil(delay), []).append((delivery_id, tag))
    await asyncio.gather(
        *(
            ctx.dispatcher.enqueue(
                DELIVER_DELIVERIES,
                [delivery_id],
                job_id=f"dlv:{delivery_id}:{tag}",
                defer_seconds=delay,
            )
            for delivery_id, tag, delay in alone
        ),
        *(
            ctx.dispatcher.enqueue(
                DELIVER_DELIVERIES,
                [delivery_id for delivery_id, _ in group],
                job_id=f"dlv:{group[0][0]}:{group[0][1]}:{len(group)}",
                defer_seconds=seconds,
            )
            for seconds, group in groups.items()
        ),
    )
