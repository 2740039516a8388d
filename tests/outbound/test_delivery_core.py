"""The delivery core driven in-process: claim, attempt, record, retry scheduling and
putting off, on SQLite with a real receiver, without a server or a worker.

The dispatcher is `QueuedJobs`: it keeps what the core queues, so that a test can
see which jobs a stage asks for and run them itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from standardwebhooks import Webhook

from gateway.crypto import SecretBox, generate_key, parse_key
from gateway.db import create_engine, create_sessionmaker
from gateway.migrate import upgrade
from gateway.outbound import delivery, reads
from gateway.outbound.context import DeliveryContext
from gateway.outbound.delivery import deliver_deliveries, deliver_events, deliver_leased
from gateway.outbound.endpoints import create_endpoint, get_endpoint
from gateway.outbound.fanout import Publish, Published, publish, publish_many
from gateway.outbound.health import record_health
from gateway.outbound.ledger import Outcome, Want, claim, record
from gateway.outbound.schemas import EndpointCreate
from gateway.outbound.tasks import build_delivery_context
from gateway.queue.dispatch import DELIVER_DELIVERIES, DELIVER_EVENTS, DELIVER_LEASED
from gateway.settings import Settings
from gateway.store.models import Endpoint, table
from gateway.timeutil import as_utc, utcnow
from tests.support.jobs import QueuedJobs
from tests.support.receiver import Receiver, Reply, wait_until

SCHEDULE = (30.0, 60.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/core.db",
        secret_key=generate_key(),
        allowed_networks="127.0.0.0/8",
        retry_schedule=",".join(str(s) for s in SCHEDULE),
        delivery_timeout=2,
    )
    upgrade(settings)
    return settings


@pytest.fixture(autouse=True)
def jobs_wait_for_their_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read a job's record as soon as the job has ended: here a job waits
    for it however long it takes (it leaves a slow one to the background otherwise,
    as `test_a_job_leaves_a_slow_record_to_the_background` shows)."""
    monkeypatch.setattr(delivery, "RECORD_PATIENCE", 60.0)


Scenario = Callable[[DeliveryContext, QueuedJobs], Awaitable[None]]


def run(settings: Settings, scenario: Scenario) -> None:
    async def go() -> None:
        async with _context(settings) as (ctx, jobs):
            await scenario(ctx, jobs)

    asyncio.run(go())


@asynccontextmanager
async def _context(settings: Settings) -> AsyncIterator[tuple[DeliveryContext, QueuedJobs]]:
    engine = create_engine(settings)
    jobs = QueuedJobs()
    assert settings.secret_key is not None
    ctx = build_delivery_context(
        settings, create_sessionmaker(engine), jobs, SecretBox(parse_key(settings.secret_key))
    )
    try:
        yield ctx, jobs
    finally:
        await ctx.drain(5)
        await ctx.client.close()
        await engine.dispose()


async def _endpoint(ctx: DeliveryContext, url: str, **fields: Any) -> str:
    async with ctx.sessionmaker() as session:
        endpoint = await create_endpoint(
            session, EndpointCreate(url=url, **fields), ctx.settings, ctx.box
        )
        await session.commit()
        return endpoint.id


async def _publish(ctx: DeliveryContext, jobs: QueuedJobs, n: int = 0) -> tuple[str, str]:
    """An event to every endpoint; (event id, the id of its first delivery)."""
    async with ctx.sessionmaker() as session:
        published = await publish(session, jobs, event_type="order.created", data={"n": n})
        page = await reads.list_deliveries(session, event_id=published.event.id)
    return published.event.id, page.data[0].id


async def _delivery(ctx: DeliveryContext, delivery_id: str) -> dict[str, Any]:
    async with ctx.sessionmaker() as session:
        return await reads.get_delivery_with_attempts(session, delivery_id)


def test_a_job_sends_signed_and_records_the_attempt_once(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        endpoint_id = await _endpoint(ctx, receiver.url(path))
        event_id, delivery_id = await _publish(ctx, jobs)
        assert [job[0] for job in jobs.jobs] == [DELIVER_EVENTS]  # publish queued its job

        assert await deliver_events(ctx, [event_id]) == 1
        [received] = receiver.received(path)
        async with ctx.sessionmaker() as session:
            secret = reads.endpoint_out(
                await get_endpoint(session, endpoint_id), ctx.box, with_secret=True
            )
        Webhook(str(secret["secret"])).verify(received.body, received.headers)
        shown = await _delivery(ctx, delivery_id)
        assert shown["status"] == "succeeded" and shown["attempt_count"] == 1
        assert [a.status_code for a in shown["attempts"]] == [200]

        # The same job again (arq retries a job whose worker died): nothing is due.
        assert await deliver_events(ctx, [event_id]) == 0
        assert len(receiver.received(path)) == 1

    run(settings, scenario)


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_lapses(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        await _endpoint(ctx, receiver.url(path))
        event_id, delivery_id = await _publish(ctx, jobs)
        [[job]] = await claim(ctx, [Want(event_ids=(event_id,))])
        assert job.delivery_id == delivery_id and job.attempt == 1
        assert await claim(ctx, [Want(event_ids=(event_id,))]) == [[]]  # leased
        assert await deliver_deliveries(ctx, [delivery_id]) == 0

        async with ctx.sessionmaker() as session:  # the worker holding it died long ago
            await session.execute(
                text("UPDATE delivery SET locked_until = :past"),
                {"past": utcnow() - timedelta(seconds=1)},
            )
            await session.commit()
        assert await deliver_deliveries(ctx, [delivery_id]) == 1
        # The first claim's record comes too late: its lease is gone, so it records nothing.
        await record(ctx, [[(job, Outcome.answered(utcnow(), 200, 5, "late"))]])
        shown = await _delivery(ctx, delivery_id)
        assert shown["attempt_count"] == 1 and len(shown["attempts"]) == 1
        assert shown["attempts"][0].response_body != "late"

    run(settings, scenario)


def test_a_publish_leases_its_deliveries_to_the_job_it_queues(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def leased(ctx: DeliveryContext, jobs: QueuedJobs, seconds: float) -> Published:
        async with ctx.sessionmaker() as session:
            [published] = await publish_many(
                session, jobs, [Publish("order.created", {})], timedelta(seconds=seconds)
            )
        assert isinstance(published, Published)
        return published

    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        await _endpoint(ctx, receiver.url(path))
        published = await leased(ctx, jobs, 30)
        [(function, (lease, ids), _, _)] = jobs.jobs
        assert function == DELIVER_LEASED and ids == published.leased
        # The lease is the job's: no claim takes the delivery meanwhile.
        assert await claim(ctx, [Want(event_ids=(published.event.id,))]) == [[]]
        assert await deliver_leased(ctx, lease, ids) == 1
        assert (await _delivery(ctx, ids[0]))["status"] == "succeeded"
        # The same job again (arq retries a job whose worker died): nothing is left.
        assert await deliver_leased(ctx, lease, ids) == 0
        assert len(receiver.received(path)) == 1

        # A job that waited in the queue until too little of its lease was left takes
        # the delivery over, if it is still its own; not once the sweeper's job has.
        late = await leased(ctx, jobs, 1)
        lost = await leased(ctx, jobs, 1)
        assert late.leased_until is not None and lost.leased_until is not None
        assert await deliver_deliveries(ctx, lost.leased) == 0  # not lapsed yet
        async with ctx.sessionmaker() as session:  # lapsed, and taken by another job
            await session.execute(
                text("UPDATE delivery SET locked_until = :other WHERE id = :id"),
                {"other": utcnow() + timedelta(seconds=60), "id": lost.leased[0]},
            )
            await session.commit()
        assert await deliver_leased(ctx, late.leased_until, late.leased) == 1
        assert await deliver_leased(ctx, lost.leased_until, lost.leased) == 0
        assert len(receiver.received(path)) == 2

    run(settings, scenario)


def test_a_failed_attempt_is_scheduled_again_on_the_retry_schedule(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        receiver.set(path, Reply(503))
        await _endpoint(ctx, receiver.url(path))
        event_id, delivery_id = await _publish(ctx, jobs)
        before = utcnow()
        await deliver_events(ctx, [event_id])

        shown = await _delivery(ctx, delivery_id)
        assert shown["status"] == "pending" and shown["attempt_count"] == 1
        assert shown["last_status_code"] == 503
        delay = (as_utc(shown["next_attempt_at"]) - before).total_seconds()
        assert SCHEDULE[0] * 0.75 <= delay <= SCHEDULE[0] * 1.25 + 5  # the first step, jittered
        [retry] = [job for job in jobs.jobs if job[0] == DELIVER_DELIVERIES]
        assert retry[1] == ([delivery_id],) and retry[2].startswith(f"dlv:{delivery_id}:1:")
        assert retry[3] == pytest.approx(delay, abs=5)

    run(settings, scenario)


def test_an_attempt_over_the_endpoints_rate_is_put_off_and_is_not_an_attempt(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        await _endpoint(ctx, receiver.url(path), rate_limit=1)
        first, _ = await _publish(ctx, jobs, 1)
        second, second_delivery = await _publish(ctx, jobs, 2)
        await deliver_events(ctx, [first, second])  # one a second: the second must wait

        assert len(receiver.received(path)) == 1
        shown = await _delivery(ctx, second_delivery)
        assert shown["status"] == "pending" and shown["attempt_count"] == 0
        assert shown["attempts"] == []
        assert as_utc(shown["next_attempt_at"]) > utcnow()
        [again] = [job for job in jobs.jobs if job[0] == DELIVER_DELIVERIES]
        assert again[1] == ([second_delivery],) and 0 < again[3] <= 2

    run(settings, scenario)


def test_an_endpoint_with_its_breaker_open_is_put_off_until_it_closes(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        await _endpoint(ctx, receiver.url(path))
        event_id, delivery_id = await _publish(ctx, jobs)
        opens_until = utcnow() + timedelta(seconds=40)
        async with ctx.sessionmaker() as session:
            await session.execute(
                text("UPDATE endpoint SET circuit_open_until = :until"), {"until": opens_until}
            )
            await session.commit()
        await deliver_events(ctx, [event_id])

        assert receiver.received(path) == []
        shown = await _delivery(ctx, delivery_id)
        assert shown["attempt_count"] == 0 and shown["attempts"] == []
        assert abs((as_utc(shown["next_attempt_at"]) - opens_until).total_seconds()) < 5

    run(settings, scenario)


def test_a_failure_recorded_from_a_stale_endpoint_keeps_when_its_failing_began(
    settings: Settings, receiver: Receiver, path: str
) -> None:
    """Health is recorded after the attempt, from the endpoint as it was claimed: by
    then another process may have changed when its failures began, and that stands."""

    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        endpoint_id = await _endpoint(ctx, receiver.url(path))
        async with ctx.sessionmaker() as session:
            endpoints = table(Endpoint)
            query = select(endpoints).where(endpoints.c.id == endpoint_id)
            [claimed] = (await session.execute(query)).all()
            began = utcnow() - timedelta(seconds=ctx.settings.disable_after * 0.6)
            await session.execute(
                text("UPDATE endpoint SET failing_since = :began"), {"began": began}
            )
            await session.commit()
        await record_health(ctx, [(claimed, 422, False, True)], utcnow())

        async with ctx.sessionmaker() as session:
            endpoint = await get_endpoint(session, endpoint_id)
        assert endpoint.failing_since is not None
        assert abs((as_utc(endpoint.failing_since) - began).total_seconds()) < 1
        # 60% of the way to disabled by time: the 50% warning went out.
        assert endpoint.warned_percent == 50

    run(settings, scenario)


@pytest.mark.parametrize("room", [True, False], ids=["room", "full"])
def test_a_job_leaves_a_slow_record_to_the_background(
    settings: Settings, receiver: Receiver, path: str, monkeypatch: pytest.MonkeyPatch, room: bool
) -> None:
    """A job whose record waits (here for SQLite's write lock, held by the test) ends
    once `RECORD_PATIENCE` is over, and the record lands afterwards; unless the process
    already has `MAX_UNRECORDED` outcomes waiting so, when the job waits for it."""
    monkeypatch.setattr(delivery, "RECORD_PATIENCE", 0.05)
    monkeypatch.setattr(delivery, "MAX_UNRECORDED", 1 if room else 0)

    async def scenario(ctx: DeliveryContext, jobs: QueuedJobs) -> None:
        await _endpoint(ctx, receiver.url(path))
        async with ctx.sessionmaker() as session:
            [published] = await publish_many(
                session, jobs, [Publish("order.created", {})], timedelta(seconds=30)
            )
        assert isinstance(published, Published) and published.leased_until is not None
        [delivery_id] = published.leased
        database = str(settings.database_url).split("///", 1)[1]
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # readers go on; the record's write waits
        try:
            job = asyncio.create_task(deliver_leased(ctx, published.leased_until, published.leased))
            await _until(lambda: len(receiver.received(path)) == 1, "the attempt")
            if room:
                assert await asyncio.wait_for(job, 10) == 1
                assert ctx.unrecorded == 1
            else:
                done, _ = await asyncio.wait([job], timeout=0.5)
                assert not done and ctx.unrecorded == 0
            # Read on the test's own connection: the process's one SQLite connection is
            # the record's, waiting.
            [(status,)] = lock.execute(
                "SELECT status FROM delivery WHERE id = ?", (delivery_id,)
            ).fetchall()
            assert status == "pending"
        finally:
            lock.rollback()
            lock.close()
        assert await asyncio.wait_for(job, 10) == 1
        await _until(lambda: ctx.unrecorded == 0, "the record")
        shown = await _delivery(ctx, delivery_id)
        assert shown["status"] == "succeeded" and len(shown["attempts"]) == 1

    run(settings, scenario)


async def _until(check: Callable[[], bool], what: str) -> None:
    """`wait_until` for a scenario, which runs on the event loop that must go on."""
    await asyncio.to_thread(wait_until, check, timeout=10, what=what)


def test_work_left_to_the_background_that_fails_is_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A record (or a straggler's) that fails in the background is not lost silently:
    its deliveries' leases lapse and the sweeper sends them again, and the log says so."""

    async def scenario(ctx: DeliveryContext, _jobs: QueuedJobs) -> None:
        async def failing() -> None:
            raise RuntimeError("the database went away")

        task = asyncio.create_task(failing())
        ctx.keep(task)
        await asyncio.gather(task, return_exceptions=True)
        assert not ctx.stragglers

    with caplog.at_level("ERROR", logger="gateway.delivery"):
        run(settings, scenario)
    [logged] = [r for r in caplog.records if r.name == "gateway.delivery"]
    assert "the sweeper will send them again" in logged.getMessage()
    assert logged.exc_info is not None and "went away" in str(logged.exc_info[1])
