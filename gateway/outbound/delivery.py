"""Deliver claimed deliveries: one job sends to many endpoints at once and records every attempt.

A job claims its deliveries in one short transaction (a lease in `locked_until`),
sends without holding any database connection, then records all attempts in one
more transaction. The claims of jobs running at the same time in one process are
made together, in one transaction, and so are their records (`gateway.groupcall`):
that cost is most of a job's CPU, and under load it is shared by many jobs. A
worker that dies mid-flight leaves only expired leases, which the sweeper hands
out again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import Row, Update, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.groupcall import GroupCall
from gateway.metrics import (
    ATTEMPT_SECONDS,
    ATTEMPTS,
    DEFERRED,
    FINISHED,
    IN_FLIGHT,
    status_class,
)
from gateway.outbound.addresses import IPAddress, RefusedAddress, check_ip, parse_ip
from gateway.outbound.context import DeliveryContext
from gateway.outbound.endpoints import SECRET, live_previous_secret_expiry
from gateway.outbound.health import breaker_wait, record_health
from gateway.outbound.load import Admitted, Busy
from gateway.outbound.payload import event_body
from gateway.outbound.retry import next_delay, parse_retry_after
from gateway.outbound.signer import secret_key, signature_header
from gateway.queue.dispatch import DELIVER_DELIVERIES, DELIVER_EVENTS, dispatch_deliveries
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event, table
from gateway.timeutil import as_utc, utcnow
from gateway.tracing import child_span

log = logging.getLogger("gateway.delivery")

RESPONSE_BODY_LIMIT = 4096
# Deliveries one claim takes; an event with more endpoints continues in further jobs,
# so that no job runs past its timeout waiting for connection slots.
CLAIM_BATCH = 500
# Jobs whose claims, or whose records, are made in one transaction at most.
JOBS_PER_TRANSACTION = 100
# Clocks of API hosts and workers differ a little; work due this soon is due now.
CLOCK_SLACK = timedelta(seconds=1)
# How long a job waits for its attempts. Healthy endpoints answer well within it;
# attempts to slow ones are left to finish in the background, so that they do not
# hold a job slot that later events to healthy endpoints need. Short, too, because a
# running job stays in arq's queue and every poll checks it again before reaching
# new jobs: at a second, slow endpoints among healthy ones put a healthy delivery's
# p99 from queue to first byte at 300 ms; at 0.2 s, 80 ms.
MAX_PATIENCE = 0.2
# A rate-limit slot this close is waited for; a later one puts the delivery off.
RATE_WAIT_IN_JOB = 0.25
# Claims in a row that ended with nothing recorded (the worker died, or a bug in the
# gateway) before a delivery is given up as failed rather than tried forever.
MAX_STALLED_CLAIMS = 5
STALLED_ERROR = (f"given up: {MAX_STALLED_CLAIMS} tries in a row ended inside the gateway "
                 "(a crash or a bug, not the endpoint); see the worker logs")


@dataclass(frozen=True)
class _Want:
    """What a job asks to claim: its events' due deliveries, or the given deliveries."""

    event_ids: tuple[str, ...] = ()
    delivery_ids: tuple[str, ...] = ()


@dataclass
class _Job:
    delivery_id: str
    lease: datetime  # the claim's `locked_until`: recording checks it still holds
    attempt: int
    endpoint: Row[Any]  # a row of the endpoint table
    event: Row[Any]  # a row of the event table
    body: bytes
    rate_slot_at: datetime | None
    stalled_claims: int


@dataclass
class _Outcome:
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

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def deliver_events(ctx: DeliveryContext, event_ids: Sequence[str]) -> int:
    """Send events to every endpoint they are due for; returns the number of attempts."""
    if not event_ids:
        return 0
    return await _deliver(ctx, _Want(event_ids=tuple(event_ids)))


async def deliver_deliveries(ctx: DeliveryContext, delivery_ids: Sequence[str]) -> int:
    """Send the given deliveries, those still due and not claimed by another worker."""
    if not delivery_ids:
        return 0
    return await _deliver(ctx, _Want(delivery_ids=tuple(delivery_ids)))


async def _deliver(ctx: DeliveryContext, want: _Want) -> int:
    jobs = await _claims(ctx)(want)
    if not jobs:
        return 0
    tasks = [asyncio.create_task(_attempt_guarded(ctx, job)) for job in jobs]
    patience = min(MAX_PATIENCE, ctx.settings.delivery_timeout / 4)
    done, pending = await asyncio.wait(tasks, timeout=patience)
    finished = [(job, task.result()) for job, task in zip(jobs, tasks, strict=True)
                if task in done]
    if finished:
        await _records(ctx)(finished)
    if pending:
        slow = [(job, task) for job, task in zip(jobs, tasks, strict=True) if task in pending]
        ctx.keep(asyncio.create_task(_record_stragglers(ctx, slow)))
    return len(jobs)


async def _record_stragglers(
    ctx: DeliveryContext, slow: list[tuple[_Job, asyncio.Task[_Outcome]]]
) -> None:
    job_of = {task: job for job, task in slow}
    pending = set(job_of)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await _records(ctx)([(job_of[task], task.result()) for task in done])
    except asyncio.CancelledError:
        for task in pending:
            task.cancel()
        raise


def _claims(ctx: DeliveryContext) -> GroupCall[_Want, list[_Job]]:
    if ctx.claims is None:
        ctx.claims = GroupCall(partial(_claim, ctx), JOBS_PER_TRANSACTION)
    return ctx.claims


def _records(ctx: DeliveryContext) -> GroupCall[list[tuple[_Job, _Outcome]], None]:
    if ctx.records is None:
        ctx.records = GroupCall(partial(_record, ctx), JOBS_PER_TRANSACTION)
    return ctx.records


# Core tables, not ORM entities, on the hot path: the same SQL for a fraction of the CPU.
_DELIVERY = table(Delivery)
_EVENT = table(Event)
_ENDPOINT = table(Endpoint)
_ATTEMPT = table(Attempt)


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
            d[by].in_(bindparam("keys", expanding=True)),
            d.status == DeliveryStatus.PENDING,
            d.next_attempt_at <= bindparam("due_by"),
            or_(d.locked_until.is_(None), d.locked_until < bindparam("now")),
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
        .returning(d.id, d.event_id, d.endpoint_id, d.attempt_count, d.rate_slot_at,
                   d.stalled_claims)
    )


_CLAIM = {(by, skip_locked): _claim_statement(by, skip_locked)
          for by in ("event_id", "id") for skip_locked in (True, False)}
_EVENTS_BY_ID = select(_EVENT).where(_EVENT.c.id.in_(bindparam("ids", expanding=True)))
_ENDPOINTS_BY_ID = select(_ENDPOINT).where(_ENDPOINT.c.id.in_(bindparam("ids", expanding=True)))
# Records an attempt's outcome on a delivery, if this job still owns it: a delivery
# deleted with its endpoint meanwhile, or leased again, is left alone.
_UPDATE_OWNED = (
    update(_DELIVERY)
    .where(_DELIVERY.c.id == bindparam("b_id"), _DELIVERY.c.locked_until == bindparam("b_lease"))
    .values(
        status=bindparam("v_status"), attempt_count=bindparam("v_attempt_count"),
        next_attempt_at=bindparam("v_next_attempt_at"), locked_until=None, stalled_claims=0,
        dispatched_at=bindparam("v_dispatched_at"), rate_slot_at=bindparam("v_rate_slot_at"),
        last_status_code=case(
            (bindparam("v_last_status_code") == -1, _DELIVERY.c.last_status_code),
            else_=bindparam("v_last_status_code"),
        ),
        updated_at=bindparam("v_updated_at"),
    )
)
_INSERT_ATTEMPTS = insert(_ATTEMPT)


async def _claim(ctx: DeliveryContext, wants: list[_Want]) -> list[list[_Job]]:
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
                rows = (await conn.execute(_CLAIM[by, postgres], {
                    "keys": list(keys), "due_by": now + CLOCK_SLACK, "now": now, "lease": lease,
                })).all()
                full = full or len(rows) == CLAIM_BATCH
                claimed += rows
        claimed.sort(key=lambda row: row.id)
        if not claimed:
            return [[] for _ in wants]
        events = {e.id: e for e in await conn.execute(
            _EVENTS_BY_ID, {"ids": list({row.event_id for row in claimed})})}
        endpoints = {e.id: e for e in await conn.execute(
            _ENDPOINTS_BY_ID, {"ids": list({row.endpoint_id for row in claimed})})}
    if full:
        await _continue(ctx, wants, {row.id for row in claimed}, claimed[-1].id)
    bodies = {
        e.id: event_body(e.id, e.type, e.created_at, e.data) for e in events.values()
    }
    jobs: list[list[_Job]] = [[] for _ in wants]
    for row in claimed:
        owner = by_event.get(row.event_id)
        jobs[by_id[row.id] if owner is None else owner].append(
            _Job(row.id, lease, row.attempt_count + 1, endpoints[row.endpoint_id],
                 events[row.event_id], bodies[row.event_id], row.rate_slot_at,
                 row.stalled_claims - 1))
    return jobs


async def _continue(
    ctx: DeliveryContext, wants: list[_Want], claimed: set[str], last_id: str
) -> None:
    """A full claim may have left work behind: let further jobs (maybe on another
    worker) take it. A job that finds nothing left costs one empty claim."""
    for want in wants:
        if want.event_ids:
            await ctx.dispatcher.enqueue(DELIVER_EVENTS, list(want.event_ids),
                                         job_id=f"evt:{want.event_ids[0]}:{last_id}")
        left = [i for i in want.delivery_ids if i not in claimed]
        if left:
            await dispatch_deliveries(ctx.dispatcher, left, f"more:{last_id}")


async def _attempt_guarded(ctx: DeliveryContext, job: _Job) -> _Outcome:
    try:
        return await _attempt(ctx, job)
    except Exception as exc:  # a bug must cost one attempt, not the whole batch
        log.exception("attempt %s of %s failed inside the gateway", job.attempt, job.delivery_id)
        return _Outcome(utcnow(), None, 0, None, f"internal error: {type(exc).__name__}")


async def _attempt(ctx: DeliveryContext, job: _Job) -> _Outcome:
    endpoint = job.endpoint
    if endpoint.disabled:
        return _Outcome(utcnow(), None, 0, None, "endpoint is disabled")
    if job.stalled_claims > MAX_STALLED_CLAIMS:
        return _Outcome(utcnow(), None, 0, None, STALLED_ERROR, dead=True)
    wait = breaker_wait(ctx, endpoint, utcnow())
    if wait > 0:
        return _Outcome(utcnow(), None, 0, None, None, deferred=wait, deferred_by="breaker")
    try:
        async with ctx.loads.attempt(endpoint.id, endpoint.tenant_id) as admitted:
            return await _send(ctx, job, admitted)
    except Busy as busy:
        return _Outcome(utcnow(), None, 0, None, None, deferred=busy.seconds,
                        deferred_by="busy")


async def _send(ctx: DeliveryContext, job: _Job, admitted: Admitted) -> _Outcome:
    endpoint = job.endpoint
    if endpoint.rate_limit:
        if job.rate_slot_at is not None:  # a slot reserved when it was put off
            wait = (as_utc(job.rate_slot_at) - utcnow()).total_seconds()
        else:
            wait = await ctx.limiter.reserve(endpoint.id, endpoint.rate_limit)
        if wait > RATE_WAIT_IN_JOB:
            return _Outcome(utcnow(), None, 0, None, None, deferred=wait,
                            deferred_by="rate_limit")
        if wait > 0:
            await asyncio.sleep(wait)
    async with admitted.sending():  # a slot of the process's, in the attempt's lane
        started_at = utcnow()
        start = time.perf_counter()
        # Outside the `try`: a secret that no longer opens is the gateway's failure
        # ("internal error"), not the endpoint's.
        headers = _signed_headers(ctx, job, started_at)
        IN_FLIGHT.inc()

        def elapsed_ms() -> int:
            return int((time.perf_counter() - start) * 1000)

        timeout = ctx.settings.delivery_timeout
        try:
            _check_literal_host(endpoint.url, ctx)
            with child_span("webhook.attempt", job.event.trace_parent,
                            **{"gateway.event_id": job.event.id,
                               "gateway.delivery_id": job.delivery_id,
                               "gateway.endpoint_id": endpoint.id,
                               "gateway.attempt": job.attempt}) as span:
                # The session's total timeout is the attempt's one deadline: connecting
                # (waiting for a connection included), sending, and reading the answer.
                async with ctx.client.post(endpoint.url, data=job.body, headers=headers,
                                           allow_redirects=False) as response:
                    body = await _read_capped(response)
                span.set_attribute("http.response.status_code", response.status)
        except TimeoutError:
            return _Outcome(started_at, None, elapsed_ms(), None, f"timed out after {timeout:g}s")
        except RefusedAddress as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, f"refused: {exc}")
        except aiohttp.ClientError as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, _describe(exc))
        except OSError as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, f"connection error: {exc}")
        finally:
            IN_FLIGHT.dec()
            ATTEMPT_SECONDS.observe(time.perf_counter() - start)
    status = response.status
    error = None
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        error = "redirect not followed"
        if location:
            error = f"redirect to {location[:200]!r} not followed"
    retry_after = (
        parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
    )
    return _Outcome(started_at, status, elapsed_ms(), body, error, retry_after)


def _signed_headers(ctx: DeliveryContext, job: _Job, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    headers = ctx.box.open_headers(job.endpoint.headers)
    headers.update({
        "content-type": "application/json",
        "webhook-id": job.event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            _signing_keys(ctx, job.endpoint, now), job.event.id, timestamp, job.body),
    })
    return headers


def _check_literal_host(url: str, ctx: DeliveryContext) -> None:
    # aiohttp asks the resolver only for names; a literal address is checked here.
    ip = _literal_ip(url)
    if ip is not None:
        check_ip(ip, ctx.settings.allowed_networks)


@functools.lru_cache(maxsize=4096)
def _literal_ip(url: str) -> IPAddress | None:
    return parse_ip(urlsplit(url).hostname or "")


def _signing_keys(ctx: DeliveryContext, endpoint: Row[Any], now: datetime) -> list[bytes]:
    keys = [_signing_key(ctx, endpoint.secret)]
    if live_previous_secret_expiry(endpoint, now) is not None:
        keys.append(_signing_key(ctx, endpoint.previous_secret))
    return keys


def _signing_key(ctx: DeliveryContext, sealed: str) -> bytes:
    # Opened once per process: decrypting on every attempt cost more than signing.
    # A new secret is sealed anew, so a stale entry is never looked up again.
    key = ctx.signing_keys.get(sealed)
    if key is None:
        if len(ctx.signing_keys) >= 10_000:
            ctx.signing_keys.clear()
        key = ctx.signing_keys[sealed] = secret_key(ctx.box.open(sealed, SECRET))
    return key


async def _read_capped(response: aiohttp.ClientResponse) -> str:
    """The first 4 KiB of the body; the rest is never read, so a huge body costs nothing."""
    chunks: list[bytes] = []
    size = 0
    while size < RESPONSE_BODY_LIMIT:
        chunk = await response.content.read(RESPONSE_BODY_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    # PostgreSQL's text cannot hold NUL, and one unstorable answer would fail the
    # whole group of records it is written with.
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, for the attempt log; never the request's headers."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, RefusedAddress):
            return f"refused: {exc.os_error}"
        kind = "connection failed"
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        kind = "connection lost while reading the response"
    elif isinstance(exc, aiohttp.ClientResponseError):
        kind = "invalid HTTP response"
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = "unsupported URL"
    else:
        kind = "request failed"
    detail = str(exc) or type(exc).__name__
    return f"{kind}: {detail}"[:1000]


def _count(job: _Job, outcome: _Outcome) -> None:
    """Metrics and the attempt's log line (built only when it will be written: hot path)."""
    if log.isEnabledFor(logging.INFO):
        log.info("attempt %s", "deferred" if outcome.deferred is not None else
                 "ok" if outcome.ok else "failed", extra={
                     "event_id": job.event.id, "delivery_id": job.delivery_id,
                     "endpoint_id": job.endpoint.id, "attempt": job.attempt,
                     "status_code": outcome.status_code, "duration_ms": outcome.duration_ms,
                     "error": outcome.error, "deferred_s": outcome.deferred})
    if outcome.deferred is not None:
        DEFERRED.labels(outcome.deferred_by).inc()
    elif outcome.ok:
        ATTEMPTS.labels("success", status_class(outcome.status_code)).inc()
    else:
        kind = "failure" if outcome.status_code is not None else "error"
        ATTEMPTS.labels(kind, status_class(outcome.status_code)).inc()


async def _record(
    ctx: DeliveryContext, batches: list[list[tuple[_Job, _Outcome]]]
) -> list[None]:
    """Record the attempts of many jobs in one transaction."""
    results = [result for batch in batches for result in batch]
    now = utcnow()
    schedule = ctx.settings.retry_schedule
    attempt_rows = []
    delivery_rows = []
    retries: list[tuple[str, str, float]] = []
    for job, outcome in results:
        attempt = job.attempt
        if outcome.deferred is not None:
            attempt -= 1  # not sent, so not an attempt
            delay: float | None = outcome.deferred
        else:
            attempt_rows.append({
                "delivery_id": job.delivery_id,
                "attempt": attempt,
                "started_at": outcome.started_at,
                "status_code": outcome.status_code,
                "duration_ms": outcome.duration_ms,
                "response_body": outcome.response_body,
                "error": outcome.error,
            })
            delay = None
            # Not retried: a disabled endpoint, a delivery given up, and 410 Gone, after
            # which the endpoint is disabled (Standard Webhooks guidance).
            if (not outcome.ok and not job.endpoint.disabled and not outcome.dead
                    and outcome.status_code != 410):
                delay = next_delay(attempt, schedule, outcome.retry_after)
        _count(job, outcome)
        if outcome.ok:
            status, next_at = DeliveryStatus.SUCCEEDED, None
        elif delay is None:
            status, next_at = DeliveryStatus.FAILED, None
        else:
            status, next_at = DeliveryStatus.PENDING, now + timedelta(seconds=delay)
            retries.append((job.delivery_id, f"{attempt}:{int(next_at.timestamp() * 1000)}",
                            delay))
        if status != DeliveryStatus.PENDING:
            FINISHED.labels(status).inc()
        delivery_rows.append({
            "b_id": job.delivery_id,
            "b_lease": job.lease,
            "v_status": status,
            "v_attempt_count": attempt,
            "v_next_attempt_at": next_at,
            "v_dispatched_at": now,
            "v_rate_slot_at": next_at if outcome.deferred is not None else None,
            # A put-off delivery keeps the status code of its last real attempt.
            "v_last_status_code": -1 if outcome.deferred is not None else outcome.status_code,
            "v_updated_at": now,
        })
    # Core executemany on the connection: one round trip per statement, not per row.
    try:
        async with ctx.sessionmaker() as session, session.begin():
            conn = await session.connection()
            if attempt_rows:
                await conn.execute(_INSERT_ATTEMPTS, attempt_rows)
            await conn.execute(_UPDATE_OWNED, delivery_rows)
    except IntegrityError:
        # Some delivery vanished (endpoint deleted) or was re-claimed: record one by one.
        attempts_by_id = {row["delivery_id"]: row for row in attempt_rows}
        for delivery_row in delivery_rows:
            attempt_row = attempts_by_id.get(delivery_row["b_id"])
            try:
                async with ctx.sessionmaker() as session, session.begin():
                    conn = await session.connection()
                    result = await conn.execute(_UPDATE_OWNED, delivery_row)
                    if result.rowcount and attempt_row is not None:
                        await conn.execute(_INSERT_ATTEMPTS, attempt_row)
            except IntegrityError:
                log.warning("attempt of %s not recorded: the delivery changed meanwhile",
                            delivery_row["b_id"])
    await record_health(
        ctx,
        [(job.endpoint, outcome.status_code, outcome.ok) for job, outcome in results
         if outcome.deferred is None and not outcome.dead and not job.endpoint.disabled],
        now,
    )
    for job, _outcome in results:  # a breaker's probe is over, whatever came of it
        ctx.probing.discard(job.endpoint.id)
    await asyncio.gather(*(
        ctx.dispatcher.enqueue(DELIVER_DELIVERIES, [delivery_id],
                               job_id=f"dlv:{delivery_id}:{tag}", defer_seconds=delay)
        for delivery_id, tag, delay in retries
    ))
    return [None] * len(batches)
