"""Which attempts the per-endpoint load tracking holds back or puts off, and by how much.

The pacing runs on a clock of the test's own; the wait for a connection on asyncio's.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from gateway.outbound.load import Busy, EndpointLoads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_an_endpoint_below_its_connections_is_never_put_off() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(3, clock)
        async with AsyncExitStack() as held:
            for _ in range(2):
                await held.enter_async_context(loads.attempt("ep"))
            clock.now += 60
            assert loads.put_off("ep") == 0
    run(scenario())


def test_a_fast_endpoint_at_its_limit_only_queues() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(2, clock)
        for _ in range(5):  # answers in 10 ms
            async with loads.attempt("ep"):
                clock.now += 0.01
        async with AsyncExitStack() as held:
            await held.enter_async_context(loads.attempt("ep"))
            await held.enter_async_context(loads.attempt("ep"))
            clock.now += 0.5
            assert loads.put_off("ep") == 0
    run(scenario())


def test_a_full_endpoint_with_no_answer_for_a_second_is_put_off() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(2, clock)
        async with AsyncExitStack() as held:
            await held.enter_async_context(loads.attempt("ep"))
            await held.enter_async_context(loads.attempt("ep"))
            clock.now += 0.9
            assert loads.put_off("ep") == 0
            clock.now += 0.2
            assert loads.put_off("ep") > 0
            assert loads.put_off("other") == 0  # other endpoints go on
    run(scenario())


def test_put_off_attempts_are_spaced_at_the_rate_the_endpoint_answers() -> None:
    async def scenario() -> list[float]:
        clock = Clock()
        loads = EndpointLoads(4, clock)
        async with AsyncExitStack() as held:  # a slow endpoint: 4 connections, 8 s an answer
            for _ in range(4):
                await held.enter_async_context(loads.attempt("slow"))
            clock.now += 8
        async with AsyncExitStack() as held:
            for _ in range(4):
                await held.enter_async_context(loads.attempt("slow"))
            return [loads.put_off("slow") for _ in range(6)]
    # 4 connections / 8 s = one free connection every 2 s.
    assert run(scenario()) == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_an_attempt_waits_for_a_connection_then_gives_up_as_busy() -> None:
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


def test_an_endpoint_that_answers_again_is_no_longer_put_off() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(1, clock)
        async with loads.attempt("ep"):
            clock.now += 5
        for _ in range(20):  # now fast: the average comes down
            async with loads.attempt("ep"):
                clock.now += 0.01
        async with loads.attempt("ep"):
            assert loads.put_off("ep") == 0
    run(scenario())


def test_an_attempt_to_a_saturated_endpoint_is_refused_at_once() -> None:
    async def scenario() -> None:
        clock = Clock()
        loads = EndpointLoads(1, clock)
        async with loads.attempt("ep"):
            clock.now += 2  # its one connection has been busy for two seconds
            with pytest.raises(Busy) as busy:
                async with loads.attempt("ep"):
                    pass
            assert busy.value.seconds == pytest.approx(2.0)
    run(scenario())
