"""Deliver claimed deliveries: one job sends to many endpoints at once and records every attempt.

The stages: claim (a lease in `locked_until`, in one short transaction), attempt
(admitted by `load.py`, signed, sent without holding any database connection), and
record (one more transaction), the SQL of the first and last in `ledger.py`. A new
event's deliveries are leased by the publish itself (`fanout.py`): their job carries
the lease and only reads what it sends (`ledger.take_leased`), without a claim. The
claims of jobs running at the same time in one process are made together, in one
transaction, and so are their records (`gateway.groupcall`): that cost is most of a
job's CPU, and under load it is shared by many jobs. A job waits for its record only
briefly: a record running behind finishes in the background, so that the job's queue
slot goes to the next one. A worker that dies mid-flight leaves only expired leases,
which the sweeper hands out again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import Row

from gateway.groupcall import GroupCall
from gateway.metrics import (
    ATTEMPT_SECONDS,
    IN_FLIGHT,
)
from gateway.outbound import streams
from gateway.outbound.addresses import IPAddress, RefusedAddress, check_ip, parse_ip
from gateway.outbound.context import DeliveryContext
from gateway.outbound.credentials import AuthFailed, Ready
from gateway.outbound.endpoints import SECRET, live_previous_secret_expiry
from gateway.outbound.health import breaker_wait
from gateway.outbound.ledger import Job, Leased, Outcome, Want, claim, record, take_leased
from gateway.outbound.load import Admitted, Busy
from gateway.outbound.retry import parse_retry_after
from gateway.outbound.signatures import STANDARD, key_of, scheme_of, signed_headers
from gateway.outbound.transforms import Outgoing, transformed
from gateway.store.models import EndpointKind
from gateway.timeutil import as_utc, utcnow
from gateway.tracing import child_span
from gateway.transform import TransformError

log = logging.getLogger("gateway.delivery")

RESPONSE_BODY_LIMIT = 4096
# Jobs whose claims, or whose records, are made in one transaction at most.
JOBS_PER_TRANSACTION = 100
# How long a job waits for its attempts. Healthy endpoints answer well within it;
# attempts to slow ones are left to finish in the background, so that they do not
# hold a job slot that later events to healthy endpoints need. Short, too, because a
# running job stays in arq's queue and every poll checks it again before reaching
# new jobs: at a second, slow endpoints among healthy ones put a healthy delivery's
# p99 from queue to first byte at 300 ms; at 0.2 s, 80 ms.
MAX_PATIENCE = 0.2
# How long a job waits for the record of its attempts before leaving it to be written
# in the background and ending (its queue slot free for the next job). Records are
# written in groups, one after another: at the end of W4's drain they ran a second
# behind the sends, and the jobs waiting for them held every slot of the worker while
# fresh events' jobs waited in the queue (their p99 to first byte 107-250 ms, against
# 30 ms once the records had caught up).
RECORD_PATIENCE = 0.05
# Deliveries whose outcomes may wait for their record in the background at once;
# beyond it a job waits for its record, so sending never runs far ahead of recording
# (what a crash would have sent again, and the leases the records must land within).
MAX_UNRECORDED = 5_000
# A rate-limit slot this close is waited for; a later one puts the delivery off.
RATE_WAIT_IN_JOB = 0.25
# Claims in a row that ended with nothing recorded (the worker died, or a bug in the
# gateway) before a delivery is given up as failed rather than tried forever.
MAX_STALLED_CLAIMS = 5
STALLED_ERROR = (
    f"given up: {MAX_STALLED_CLAIMS} tries in a row ended inside the gateway "
    "(a crash or a bug, not the endpoint); see the worker logs"
)


async def deliver_events(ctx: DeliveryContext, event_ids: Sequence[str]) -> int:
    """Send events to every endpoint they are due for; returns the number of attempts."""
    if not event_ids:
        return 0
    return await _deliver(ctx, Want(event_ids=tuple(event_ids)))


async def deliver_deliveries(ctx: DeliveryContext, delivery_ids: Sequence[str]) -> int:
    """Send the given deliveries, those still due and not claimed by another worker."""
    if not delivery_ids:
        return 0
    return await _deliver(ctx, Want(delivery_ids=tuple(delivery_ids)))


async def deliver_leased(ctx: DeliveryContext, lease: datetime, delivery_ids: Sequence[str]) -> int:
    """Send the deliveries that their publish leased until `lease`, still pending."""
    if not delivery_ids:
        return 0
    return await _deliver(ctx, Leased(lease, tuple(delivery_ids)))


async def _deliver(ctx: DeliveryContext, want: Want | Leased) -> int:
    jobs = await (_leases(ctx)(want) if isinstance(want, Leased) else _claims(ctx)(want))
    if not jobs:
        return 0
    tasks = [asyncio.create_task(_attempt_guarded(ctx, job)) for job in jobs]
    patience = min(MAX_PATIENCE, ctx.settings.delivery_timeout / 4)
    done, pending = await asyncio.wait(tasks, timeout=patience)
    finished = [(job, task.result()) for job, task in zip(jobs, tasks, strict=True) if task in done]
    if finished:
        await _record_in_time(ctx, finished)
    if pending:
        slow = [(job, task) for job, task in zip(jobs, tasks, strict=True) if task in pending]
        ctx.keep(asyncio.create_task(_record_stragglers(ctx, slow)))
    return len(jobs)


async def _record_in_time(ctx: DeliveryContext, finished: list[tuple[Job, Outcome]]) -> None:
    """Record the outcomes; once that takes longer than `RECORD_PATIENCE`, leave the
    record to finish in the background, unless `MAX_UNRECORDED` outcomes already are."""
    recording = asyncio.create_task(_records(ctx)(finished))
    try:
        done, _ = await asyncio.wait([recording], timeout=RECORD_PATIENCE)
    except asyncio.CancelledError:
        recording.cancel()
        raise
    count = len(finished)
    if done or ctx.unrecorded + count > MAX_UNRECORDED:
        await recording  # its failure is this job's, as before
        return
    ctx.unrecorded += count

    def recorded(_task: asyncio.Task[None]) -> None:
        ctx.unrecorded -= count

    recording.add_done_callback(recorded)
    ctx.keep(recording)  # which logs its failure


async def _record_stragglers(
    ctx: DeliveryContext, slow: list[tuple[Job, asyncio.Task[Outcome]]]
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


def _claims(ctx: DeliveryContext) -> GroupCall[Want, list[Job]]:
    if ctx.claims is None:
        ctx.claims = GroupCall(partial(claim, ctx), JOBS_PER_TRANSACTION)
    return ctx.claims


def _leases(ctx: DeliveryContext) -> GroupCall[Leased, list[Job]]:
    if ctx.leases is None:
        ctx.leases = GroupCall(partial(take_leased, ctx), JOBS_PER_TRANSACTION)
    return ctx.leases


def _records(ctx: DeliveryContext) -> GroupCall[list[tuple[Job, Outcome]], None]:
    if ctx.records is None:
        # The next delivery of an ordering key is sent by the process that recorded the
        # end of the one before it, without a queue round trip.
        send_next = partial(deliver_deliveries, ctx)
        ctx.records = GroupCall(partial(record, ctx, send_next=send_next), JOBS_PER_TRANSACTION)
    return ctx.records


# Core tables, not ORM entities, on the hot path: the same SQL for a fraction of the CPU.
async def _attempt_guarded(ctx: DeliveryContext, job: Job) -> Outcome:
    try:
        return await _attempt(ctx, job)
    except Exception as exc:  # a bug must cost one attempt, not the whole batch
        log.exception("attempt %s of %s failed inside the gateway", job.attempt, job.delivery_id)
        return Outcome.unanswered(f"internal error: {type(exc).__name__}")


async def _attempt(ctx: DeliveryContext, job: Job) -> Outcome:
    endpoint = job.endpoint
    if endpoint.disabled:
        return Outcome.unanswered("endpoint is disabled")
    if job.stalled_claims > MAX_STALLED_CLAIMS:
        return Outcome.given_up(STALLED_ERROR)
    outgoing = Outgoing("POST", endpoint.url, ctx.box.open_headers(endpoint.headers), job.body)
    if endpoint.transformation:
        try:
            changed = await transformed(
                endpoint.transformation,
                outgoing,
                job.event.type,
                ctx.settings.transform_timeout_ms,
            )
        except TransformError as exc:
            return Outcome.unanswered(f"transformation failed: {exc}")
        if changed is None:
            return Outcome.cancel()
        outgoing = changed
    wait = breaker_wait(ctx, endpoint, utcnow())
    if wait > 0:
        return Outcome.put_off(wait, "breaker")
    try:
        async with ctx.loads.attempt(endpoint.id, endpoint.tenant_id) as admitted:
            return await _send(ctx, job, admitted, outgoing)
    except Busy as busy:
        return Outcome.put_off(busy.seconds, "busy")


async def _send(ctx: DeliveryContext, job: Job, admitted: Admitted, outgoing: Outgoing) -> Outcome:
    endpoint = job.endpoint
    if endpoint.rate_limit:
        if job.rate_slot_at is not None:  # a slot reserved when it was put off
            wait = (as_utc(job.rate_slot_at) - utcnow()).total_seconds()
        else:
            wait = await ctx.limiter.reserve(endpoint.id, endpoint.rate_limit)
        if wait > RATE_WAIT_IN_JOB:
            return Outcome.put_off(wait, "rate_limit")
        if wait > 0:
            await asyncio.sleep(wait)
    async with admitted.sending():  # a slot of the process's, in the attempt's lane
        started_at = utcnow()
        start = time.perf_counter()
        # Outside the `try`: a secret that no longer opens is the gateway's failure
        # ("internal error"), not the endpoint's.
        headers = _signed_headers(ctx, job, started_at, outgoing)

        def elapsed_ms() -> int:
            return int((time.perf_counter() - start) * 1000)

        if endpoint.kind == EndpointKind.STREAM:  # read by its stream's client, not POSTed
            return await _offered(ctx, job, outgoing, headers, started_at, elapsed_ms)
        ready = None
        if endpoint.auth is not None:  # after the transformation, which never sees it
            ready = ctx.credentials.cached(endpoint.auth)
            if ready is None:
                try:
                    ready = await ctx.credentials.ready(
                        endpoint.id, endpoint.auth, ctx.box, ctx.client, ctx.settings
                    )
                except AuthFailed as exc:
                    return Outcome.unanswered(str(exc), started_at, elapsed_ms())
            if ready.authorization is not None:
                # The endpoint's own headers may name it in any case: sent once, ours.
                for name in [n for n in headers if n.lower() == "authorization"]:
                    del headers[name]
                headers["authorization"] = ready.authorization
        IN_FLIGHT.inc()

        timeout = ctx.settings.delivery_timeout
        try:
            # The URL a transformation gave is guarded as the endpoint's own: a literal
            # address here, a name by the client's resolver at connect time.
            _check_literal_host(outgoing.url, ctx)
            with child_span(
                "webhook.attempt",
                job.event.trace_parent,
                **{
                    "gateway.event_id": job.event.id,
                    "gateway.delivery_id": job.delivery_id,
                    "gateway.endpoint_id": endpoint.id,
                    "gateway.attempt": job.attempt,
                },
            ) as span:
                # The session's total timeout is the attempt's one deadline: connecting
                # (waiting for a connection included), sending, and reading the answer.
                response, body = await _request(ctx, outgoing, headers, ready)
                if response.status == 401 and ready is not None and ready.token_key:
                    # The token may have been revoked early: one new one, one more try.
                    headers["authorization"] = await ctx.credentials.refreshed(
                        ready, endpoint.auth, ctx.box, ctx.client, ctx.settings
                    )
                    response, body = await _request(ctx, outgoing, headers, ready)
                span.set_attribute("http.response.status_code", response.status)
        except TimeoutError:
            return Outcome.unanswered(f"timed out after {timeout:g}s", started_at, elapsed_ms())
        except AuthFailed as exc:
            return Outcome.unanswered(str(exc), started_at, elapsed_ms())
        except RefusedAddress as exc:
            return Outcome.unanswered(f"refused: {exc}", started_at, elapsed_ms())
        except aiohttp.ClientError as exc:
            return Outcome.unanswered(_describe(exc), started_at, elapsed_ms())
        except OSError as exc:
            return Outcome.unanswered(f"connection error: {exc}", started_at, elapsed_ms())
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
    return Outcome.answered(started_at, status, elapsed_ms(), body, error, retry_after)


async def _request(
    ctx: DeliveryContext, outgoing: Outgoing, headers: dict[str, str], ready: Ready | None
) -> tuple[aiohttp.ClientResponse, str]:
    async with ctx.client.request(
        outgoing.method,
        outgoing.url,
        data=outgoing.body,
        headers=headers,
        allow_redirects=False,
        # An endpoint's mTLS context; otherwise aiohttp's default verification.
        ssl=ready.ssl_context if ready is not None and ready.ssl_context else True,
    ) as response:
        return response, await _read_capped(response)


async def _offered(
    ctx: DeliveryContext,
    job: Job,
    outgoing: Outgoing,
    headers: dict[str, str],
    started_at: datetime,
    elapsed_ms: Callable[[], int],
) -> Outcome:
    """A stream endpoint's attempt: the signed request offered to its stream's clients,
    answered by what the local receiver of the one that forwarded it answered."""
    offer = streams.Offer.of(
        job.delivery_id,
        job.attempt,
        job.event.id,
        job.event.type,
        outgoing.method,
        headers,
        outgoing.body,
    )
    timeout = ctx.settings.delivery_timeout
    IN_FLIGHT.inc()
    try:
        ack = await ctx.streams.offer(job.endpoint.id, offer, timeout)
    except streams.StreamError as exc:
        return Outcome.unanswered(str(exc), started_at, elapsed_ms())
    finally:
        IN_FLIGHT.dec()
        ATTEMPT_SECONDS.observe(elapsed_ms() / 1000)
    if ack is None:
        return Outcome.unanswered(f"not acknowledged within {timeout:g}s", started_at, elapsed_ms())
    if ack.status_code is None:
        error = f"the listener's receiver did not answer: {ack.error or 'no reason given'}"
        return Outcome.unanswered(error[:1000], started_at, elapsed_ms())
    body = ack.body[:RESPONSE_BODY_LIMIT].replace("\x00", "\ufffd")
    return Outcome.answered(started_at, ack.status_code, elapsed_ms(), body, ack.error)


def _signed_headers(
    ctx: DeliveryContext, job: Job, now: datetime, outgoing: Outgoing
) -> dict[str, str]:
    """The request's headers, signed over the body it sends (a transformation's too)."""
    endpoint = job.endpoint
    headers = dict(outgoing.headers)
    headers["content-type"] = "application/json"
    headers.update(
        signed_headers(
            endpoint.signature,
            _signing_keys(ctx, endpoint, now),
            job.event.id,
            job.event.type,
            int(now.timestamp()),
            outgoing.body,
            job.attempt,
        )
    )
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
    scheme = scheme_of(endpoint.signature)
    keys = [_signing_key(ctx, scheme, endpoint.secret)]
    if live_previous_secret_expiry(endpoint, now) is not None:
        try:
            keys.append(_signing_key(ctx, scheme, endpoint.previous_secret))
        except ValueError:  # a secret of the scheme before a change of scheme: it cannot sign
            pass
    return keys


def _signing_key(ctx: DeliveryContext, scheme: str, sealed: str) -> bytes:
    # Opened once per process: decrypting on every attempt cost more than signing.
    # A new secret is sealed anew, so a stale entry is never looked up again. The same
    # secret makes another key under another scheme, hence the scheme in the entry's name.
    name = sealed if scheme == STANDARD else f"{scheme}:{sealed}"
    key = ctx.signing_keys.get(name)
    if key is None:
        if len(ctx.signing_keys) >= 10_000:
            ctx.signing_keys.clear()
        key = ctx.signing_keys[name] = key_of(scheme, ctx.box.open(sealed, SECRET))
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
