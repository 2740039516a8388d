"""Deliver claimed deliveries: one job sends to many endpoints at once and records every attempt.

A job claims its deliveries in one short transaction (a lease in `locked_until`),
sends without holding any database connection, then records all attempts in one
more transaction. A worker that dies mid-flight leaves only expired leases, which
the sweeper hands out again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Row, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from gateway.crypto import SecretBox
from gateway.metrics import (
    ATTEMPT_SECONDS,
    ATTEMPTS,
    DEFERRED,
    FINISHED,
    IN_FLIGHT,
    status_class,
)
from gateway.outbound.addresses import RefusedAddress, check_ip, parse_ip
from gateway.outbound.context import DeliveryContext
from gateway.outbound.endpoints import SECRET, live_previous_secret_expiry
from gateway.outbound.health import breaker_wait, record_health
from gateway.outbound.payload import event_body
from gateway.outbound.retry import next_delay, parse_retry_after
from gateway.outbound.signer import secret_key, signature_header
from gateway.queue.dispatch import DELIVER_DELIVERIES, DELIVER_EVENT
from gateway.store.models import Attempt, Delivery, DeliveryStatus, Endpoint, Event, table
from gateway.timeutil import as_utc, utcnow
from gateway.tracing import child_span

log = logging.getLogger("gateway.delivery")

RESPONSE_BODY_LIMIT = 4096
# Deliveries one job claims; an event with more endpoints continues in further jobs,
# so that no job runs past its timeout waiting for connection slots.
CLAIM_BATCH = 500
# Clocks of API hosts and workers differ a little; work due this soon is due now.
CLOCK_SLACK = timedelta(seconds=1)
# How long a job waits for its attempts. Healthy endpoints answer well within it;
# attempts to slow ones are left to finish in the background, so that they do not
# hold a job slot that later events to healthy endpoints need.
MAX_PATIENCE = 1.0
# A rate-limit slot this close is waited for; a later one puts the delivery off.
RATE_WAIT_IN_JOB = 0.25
# Claims in a row that ended with nothing recorded (the worker died, or a bug in the
# gateway) before a delivery is given up as failed rather than tried forever.
MAX_STALLED_CLAIMS = 5
STALLED_ERROR = (f"given up: {MAX_STALLED_CLAIMS} tries in a row ended inside the gateway "
                 "(a crash or a bug, not the endpoint); see the worker logs")


@dataclass
class _Job:
    delivery_id: str
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


async def deliver_event(ctx: DeliveryContext, event_id: str) -> int:
    """Send an event to every endpoint it is due for; returns the number of attempts."""
    return await _deliver(ctx, _DELIVERY.c.event_id == event_id, continuation=event_id)


async def deliver_deliveries(ctx: DeliveryContext, delivery_ids: Sequence[str]) -> int:
    """Send the given deliveries, those still due and not claimed by another worker."""
    if not delivery_ids:
        return 0
    return await _deliver(ctx, _DELIVERY.c.id.in_(list(delivery_ids)))


async def _deliver(
    ctx: DeliveryContext, which: ColumnElement[bool], continuation: str | None = None
) -> int:
    jobs, lease = await _claim(ctx, which)
    if not jobs:
        return 0
    if continuation is not None and len(jobs) == CLAIM_BATCH:
        # More of this event is waiting: let another job (maybe another worker) take it.
        await ctx.dispatcher.enqueue(
            DELIVER_EVENT, continuation, job_id=f"evt:{continuation}:{jobs[-1].delivery_id}"
        )
    tasks = [asyncio.create_task(_attempt_guarded(ctx, job)) for job in jobs]
    patience = min(MAX_PATIENCE, ctx.settings.delivery_timeout / 4)
    done, pending = await asyncio.wait(tasks, timeout=patience)
    finished = [(job, task.result()) for job, task in zip(jobs, tasks, strict=True)
                if task in done]
    if finished:
        await _record(ctx, finished, lease)
    if pending:
        slow = [(job, task) for job, task in zip(jobs, tasks, strict=True) if task in pending]
        ctx.keep(asyncio.create_task(_record_stragglers(ctx, slow, lease)))
    return len(jobs)


async def _record_stragglers(
    ctx: DeliveryContext, slow: list[tuple[_Job, asyncio.Task[_Outcome]]], lease: datetime
) -> None:
    job_of = {task: job for job, task in slow}
    pending = set(job_of)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await _record(ctx, [(job_of[task], task.result()) for task in done], lease)
    except asyncio.CancelledError:
        for task in pending:
            task.cancel()
        raise


# Core tables, not ORM entities, on the hot path: the same SQL for a fraction of the CPU.
_DELIVERY = table(Delivery)
_EVENT = table(Event)
_ENDPOINT = table(Endpoint)
_ATTEMPT = table(Attempt)


async def _claim(ctx: DeliveryContext, which: ColumnElement[bool]) -> tuple[list[_Job], datetime]:
    now = utcnow()
    # The lease outlives the job's own timeout: by then the job has finished or died.
    lease = now + timedelta(seconds=ctx.settings.job_timeout or 60)
    d = _DELIVERY.c
    async with ctx.sessionmaker() as session, session.begin():
        conn = await session.connection()
        due_ids = (
            select(d.id)
            .where(
                which,
                d.status == DeliveryStatus.PENDING,
                d.next_attempt_at <= now + CLOCK_SLACK,
                or_(d.locked_until.is_(None), d.locked_until < now),
            )
            .order_by(d.id)
            .limit(CLAIM_BATCH)
        )
        if conn.dialect.name == "postgresql":
            due_ids = due_ids.with_for_update(skip_locked=True)
        claimed = (
            await conn.execute(
                update(_DELIVERY)
                .where(d.id.in_(due_ids.scalar_subquery()))
                .values(locked_until=lease, stalled_claims=d.stalled_claims + 1)
                .returning(d.id, d.event_id, d.endpoint_id, d.attempt_count, d.rate_slot_at,
                           d.stalled_claims)
            )
        ).all()
        if not claimed:
            return [], lease
        event_ids = {row.event_id for row in claimed}
        endpoint_ids = {row.endpoint_id for row in claimed}
        events = {e.id: e for e in await conn.execute(
            select(_EVENT).where(_EVENT.c.id.in_(event_ids)))}
        endpoints = {e.id: e for e in await conn.execute(
            select(_ENDPOINT).where(_ENDPOINT.c.id.in_(endpoint_ids)))}
    bodies = {
        e.id: event_body(e.id, e.type, e.created_at, e.data) for e in events.values()
    }
    jobs = [
        _Job(row.id, row.attempt_count + 1, endpoints[row.endpoint_id], events[row.event_id],
             bodies[row.event_id], row.rate_slot_at, row.stalled_claims - 1)
        for row in sorted(claimed, key=lambda r: r.id)
    ]
    return jobs, lease


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
    async with ctx.slots:
        started_at = utcnow()
        start = time.perf_counter()
        IN_FLIGHT.inc()

        def elapsed_ms() -> int:
            return int((time.perf_counter() - start) * 1000)

        timeout = ctx.settings.delivery_timeout
        try:
            _check_literal_host(endpoint.url, ctx)
            timestamp = int(time.time())
            headers = ctx.box.open_headers(endpoint.headers)
            headers.update({
                "content-type": "application/json",
                "webhook-id": job.event.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(
                    _signing_keys(ctx.box, endpoint, started_at), job.event.id, timestamp,
                    job.body,
                ),
            })
            with child_span("webhook.attempt", job.event.trace_parent,
                            **{"gateway.event_id": job.event.id,
                               "gateway.delivery_id": job.delivery_id,
                               "gateway.endpoint_id": endpoint.id,
                               "gateway.attempt": job.attempt}) as span:
                async with asyncio.timeout(timeout):
                    async with ctx.client.stream(
                        "POST", endpoint.url, content=job.body, headers=headers
                    ) as response:
                        body = await _read_capped(response)
                span.set_attribute("http.response.status_code", response.status_code)
        except TimeoutError:
            return _Outcome(started_at, None, elapsed_ms(), None, f"timed out after {timeout:g}s")
        except RefusedAddress as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, f"refused: {exc}")
        except httpx.HTTPError as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, _describe(exc))
        except OSError as exc:
            return _Outcome(started_at, None, elapsed_ms(), None, f"connection error: {exc}")
        finally:
            IN_FLIGHT.dec()
            ATTEMPT_SECONDS.observe(time.perf_counter() - start)
    status = response.status_code
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


def _check_literal_host(url: str, ctx: DeliveryContext) -> None:
    # aiohttp asks the resolver only for names; a literal address is checked here.
    host = urlsplit(url).hostname or ""
    ip = parse_ip(host)
    if ip is not None:
        check_ip(ip, ctx.settings.allowed_networks)


def _signing_keys(box: SecretBox, endpoint: Row[Any], now: datetime) -> list[bytes]:
    keys = [secret_key(box.open(endpoint.secret, SECRET))]
    if live_previous_secret_expiry(endpoint, now) is not None:
        keys.append(secret_key(box.open(endpoint.previous_secret, SECRET)))
    return keys


async def _read_capped(response: httpx.Response) -> str:
    """The first 4 KiB of the body; the rest is never read, so a huge body costs nothing."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_BODY_LIMIT:
            break
    return b"".join(chunks)[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")


def _describe(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, RefusedAddress) or isinstance(
        getattr(cause, "os_error", None), RefusedAddress
    ):
        return f"refused: {getattr(cause, 'os_error', cause)}"
    kinds: dict[type[httpx.HTTPError], str] = {
        httpx.ConnectError: "connection failed",
        httpx.ConnectTimeout: "connection failed",
        httpx.ReadError: "connection lost while reading the response",
        httpx.RemoteProtocolError: "invalid HTTP response",
        httpx.UnsupportedProtocol: "unsupported URL",
    }
    kind = kinds.get(type(exc), "request failed")
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
    ctx: DeliveryContext, results: list[tuple[_Job, _Outcome]], lease: datetime
) -> None:
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
            "b_lease": lease,
            "v_status": status,
            "v_attempt_count": attempt,
            "v_next_attempt_at": next_at,
            "v_dispatched_at": now,
            "v_rate_slot_at": next_at if outcome.deferred is not None else None,
            # A put-off delivery keeps the status code of its last real attempt.
            "v_last_status_code": -1 if outcome.deferred is not None else outcome.status_code,
            "v_updated_at": now,
        })
    # Only rows this job still owns are updated: a delivery deleted with its
    # endpoint meanwhile is skipped rather than failing the batch.
    d = _DELIVERY.c
    update_owned = (
        update(_DELIVERY)
        .where(d.id == bindparam("b_id"), d.locked_until == bindparam("b_lease"))
        .values(
            status=bindparam("v_status"), attempt_count=bindparam("v_attempt_count"),
            next_attempt_at=bindparam("v_next_attempt_at"), locked_until=None, stalled_claims=0,
            dispatched_at=bindparam("v_dispatched_at"), rate_slot_at=bindparam("v_rate_slot_at"),
            last_status_code=case(
                (bindparam("v_last_status_code") == -1, d.last_status_code),
                else_=bindparam("v_last_status_code"),
            ),
            updated_at=bindparam("v_updated_at"),
        )
    )
    # Core executemany on the connection: one round trip per statement, not per row.
    try:
        async with ctx.sessionmaker() as session, session.begin():
            conn = await session.connection()
            if attempt_rows:
                await conn.execute(insert(_ATTEMPT), attempt_rows)
            await conn.execute(update_owned, delivery_rows)
    except IntegrityError:
        # Some delivery vanished (endpoint deleted) or was re-claimed: record one by one.
        attempts_by_id = {row["delivery_id"]: row for row in attempt_rows}
        for delivery_row in delivery_rows:
            attempt_row = attempts_by_id.get(delivery_row["b_id"])
            try:
                async with ctx.sessionmaker() as session, session.begin():
                    conn = await session.connection()
                    result = await conn.execute(update_owned, delivery_row)
                    if result.rowcount and attempt_row is not None:
                        await conn.execute(insert(_ATTEMPT), attempt_row)
            except IntegrityError:
                log.warning("attempt of %s not recorded: the delivery changed meanwhile",
                            delivery_row["b_id"])
    await record_health(
        ctx,
        [(job.endpoint, outcome.status_code, outcome.ok) for job, outcome in results
         if outcome.deferred is None and not outcome.dead and not job.endpoint.disabled],
        now,
    )
    for job, _outcome in results:
        ctx.probing.discard(job.endpoint.id)
    for delivery_id, tag, delay in retries:
        await ctx.dispatcher.enqueue(
            DELIVER_DELIVERIES, [delivery_id], job_id=f"dlv:{delivery_id}:{tag}",
            defer_seconds=delay,
        )
