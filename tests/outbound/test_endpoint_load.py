"""Which attempts the load tracking admits, holds back or puts off, and by how much.

Answer times and pacing run on a clock of the test's own; waiting for a turn or a
slot, and the move to the slow lane, on asyncio's.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from gateway.outbound import load
from gateway.outbound.load import Admitted, Busy, EndpointLoads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _answer(
    loads: EndpointLoads,
    clock: Clock,
    endpoint: str,
    seconds: float,
    times: int = 1,
    tenant: str | None = None,
) -> None:
    for _ in range(times):
        async with loads.attempt(endpoint, tenant) as admitted, admitted.sending():
            clock.now += seconds


async def _send(
    held: AsyncExitStack, loads: EndpointLoads, endpoint: str, tenant: str | None = None
) -> Admitted:
    """An attempt admitted and sent, unanswered until `held` closes."""
    admitted = await held.enter_async_context(loads.attempt(endpoint, tenant))
    await held.enter_async_context(admitted.sending())
    return admitted


def test_an_endpoint_has_at_most_its_connections_under_way() -> None:
    async def scenario() -> None:
        loads = EndpointLoads(10, Clock(), max_wait=0.01)
        async with AsyncExitStack() as held:
            for _ in range(10):  # a new endpoint gets them all at once
                await _send(held, loads, "new")
            with pytest.raises(Busy):  # and nobody answers in time for an eleventh
                await _send(held, loads, "new")

    run(scenario())


def test_an_endpoint_unanswered_for_a_second_is_slow_and_held_to_its_slow_share() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(20, clock)  # two attempts at once while slow
        await _answer(loads, clock, "ep", 0.01, times=20)
        async with AsyncExitStack() as held:
            for _ in range(3):
                await _send(held, loads, "ep")
            clock.now += 0.9
            await _send(held, loads, "ep")  # not a second yet
            clock.now += 0.2
            with pytest.raises(Busy) as busy:
                await _send(held, loads, "ep")
            assert busy.value.seconds > 0
            await _send(held, loads, "other")  # others go on

    run(scenario())


def test_put_off_attempts_are_spaced_at_the_rate_the_endpoint_answers() -> None:
    async def scenario() -> list[float]:
        clock = Clock()
        loads = EndpointLoads(40, clock)  # four at once while slow
        await _answer(loads, clock, "slow", 8.0)  # 8 s an answer
        async with AsyncExitStack() as held:
            for _ in range(4):
                await _send(held, loads, "slow")
            waits = []
            for _ in range(6):
                with pytest.raises(Busy) as busy:
                    await _send(held, loads, "slow")
                waits.append(busy.value.seconds)
            return waits

    # 4 attempts at a time / 8 s = one free every 2 s.
    assert run(scenario()) == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_an_attempt_waits_for_its_turn_then_gives_up_as_busy() -> None:
    async def scenario() -> None:
        loads = EndpointLoads(1, max_wait=0.05)
        order: list[str] = []

        async def second() -> None:
            async with loads.attempt("ep"):
                order.append("second sends")

        async with loads.attempt("ep"):
            waiter = asyncio.create_task(second())
            await asyncio.sleep(0)
            order.append("first sends")
        await waiter  # it had waited its turn
        assert order == ["first sends", "second sends"]

        async with loads.attempt("ep"):
            with pytest.raises(Busy) as busy:
                async with loads.attempt("ep"):
                    pass
            assert busy.value.seconds > 0
        async with loads.attempt("other"):  # another endpoint is not held up meanwhile
            pass

    run(scenario())


async def _queue_of_quick_answers() -> tuple[int, int]:
    """Two at a time, 40 attempts of 10 ms each: the last waits about 0.2 s for its
    turn, four times `max_wait`, with turns going round all along. (Sent, put off.)"""
    loads = EndpointLoads(2, max_wait=0.05)
    sent = busy = 0

    async def one() -> None:
        nonlocal sent, busy
        try:
            async with loads.attempt("ep") as admitted, admitted.sending():
                await asyncio.sleep(0.01)  # the endpoint's answer
                sent += 1
        except Busy:
            busy += 1

    await asyncio.gather(*(one() for _ in range(40)))
    return sent, busy


def test_a_queue_longer_than_the_wait_is_waited_through_while_it_goes_round() -> None:
    assert run(_queue_of_quick_answers()) == (40, 0)


def test_a_queue_that_would_not_go_round_in_time_is_put_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(load, "MAX_TURN_WAIT", 0.12)  # the queue needs about 0.2 s
    sent, busy = run(_queue_of_quick_answers())
    assert sent + busy == 40
    assert busy > 0 and sent >= 2, (sent, busy)


def test_an_attempt_put_off_behind_a_quick_endpoints_queue_comes_back_at_its_pace() -> None:
    async def scenario() -> float:
        clock = Clock()  # frozen: the endpoint answered in 5 ms until just now
        loads = EndpointLoads(1, clock, max_wait=0.01)
        await _answer(loads, clock, "quick", 0.005, times=5)
        async with AsyncExitStack() as held:
            await _send(held, loads, "quick")
            with pytest.raises(Busy) as busy:
                await _send(held, loads, "quick")
            return busy.value.seconds

    # Its next turn, at its pace: not a second later (which, per connection, drained a
    # backlog to a quick endpoint at one attempt a second).
    assert run(scenario()) == pytest.approx(0.005)


def test_an_endpoint_that_answers_again_is_no_longer_slow() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(10, clock)
        await _answer(loads, clock, "ep", 5.0)
        await _answer(loads, clock, "ep", 0.01, times=20)  # now fast: the average comes down
        async with AsyncExitStack() as held:
            for _ in range(10):
                admitted = await _send(held, loads, "ep")
                assert not admitted.slow

    run(scenario())


def test_an_attempt_to_a_saturated_endpoint_is_refused_at_once() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(1, clock)
        async with loads.attempt("ep") as first, first.sending():
            clock.now += 2  # its one attempt has been unanswered for two seconds
            with pytest.raises(Busy) as busy:
                async with loads.attempt("ep"):
                    pass
            assert busy.value.seconds == pytest.approx(2.0)

    run(scenario())


def test_slow_endpoints_and_their_tenant_get_a_bounded_share_of_the_slots() -> None:
    """40 slots: the slow lane holds at most 20 attempts, one tenant at most 5 of them."""

    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(10, clock, slots=40)
        for n in range(30):
            await _answer(loads, clock, f"bad{n}", 5.0, tenant="evil" if n < 10 else None)
        async with AsyncExitStack() as held:
            admitted = []
            for n in range(30):
                try:
                    admitted.append(
                        await held.enter_async_context(
                            loads.attempt(f"bad{n}", "evil" if n < 10 else None)
                        )
                    )
                except Busy:
                    pass
            assert all(a.slow for a in admitted)
            evil = sum(1 for n in range(10) if loads._loads[f"bad{n}"].in_flight)
            assert evil == 5 and len(admitted) == 20
            # An answering endpoint still gets a fast slot at once, and sends.
            async with loads.attempt("good") as good, good.sending():
                assert not good.slow

    run(scenario())


def test_a_sending_attempt_moves_to_the_slow_lane_and_frees_its_slot() -> None:
    """One slot: a hanging attempt holds it for `slow_after` at most."""

    async def scenario() -> None:
        loads = EndpointLoads(10, slots=1, slow_after=0.05)
        hanging = asyncio.Event()
        release = asyncio.Event()

        async def hang() -> None:
            async with loads.attempt("hangs") as admitted, admitted.sending():
                hanging.set()
                await release.wait()
                assert admitted.slow

        task = asyncio.create_task(hang())
        await hanging.wait()
        async with asyncio.timeout(2):  # the slot comes free once the hang is slow
            async with loads.attempt("answers") as admitted, admitted.sending():
                assert not admitted.slow
        release.set()
        await task

    run(scenario())


def test_waiting_for_a_slot_does_not_make_an_endpoint_slow() -> None:
    """Only the time the endpoint has the request counts as its answer time."""

    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(10, clock, slots=1, slow_after=60)
        async with AsyncExitStack() as held:
            await _send(held, loads, "holds-the-slot")
            waiting = asyncio.create_task(_answer(loads, clock, "quick", 0.01))
            await asyncio.sleep(0.01)
            clock.now += 5  # "quick" has waited five seconds for the slot
        await waiting  # the slot came free: it sent, and was answered at once
        async with loads.attempt("quick") as admitted:
            assert not admitted.slow

    run(scenario())
