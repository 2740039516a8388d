"""Which attempts the per-endpoint load tracking puts off, and by how much (a clock of our own)."""

from __future__ import annotations

from contextlib import ExitStack

from gateway.outbound.load import EndpointLoads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_endpoint_below_its_connections_is_never_put_off() -> None:
    clock = Clock()
    loads = EndpointLoads(3, clock)
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(loads.attempt("ep"))
        clock.now += 60
        assert loads.put_off("ep") == 0


def test_a_fast_endpoint_at_its_limit_only_queues() -> None:
    clock = Clock()
    loads = EndpointLoads(2, clock)
    for _ in range(5):  # answers in 10 ms
        with loads.attempt("ep"):
            clock.now += 0.01
    with ExitStack() as held:
        held.enter_context(loads.attempt("ep"))
        held.enter_context(loads.attempt("ep"))
        clock.now += 0.5
        assert loads.put_off("ep") == 0


def test_a_full_endpoint_with_no_answer_for_a_second_is_put_off() -> None:
    clock = Clock()
    loads = EndpointLoads(2, clock)
    with ExitStack() as held:
        held.enter_context(loads.attempt("ep"))
        held.enter_context(loads.attempt("ep"))
        clock.now += 0.9
        assert loads.put_off("ep") == 0
        clock.now += 0.2
        assert loads.put_off("ep") > 0
        assert loads.put_off("other") == 0  # other endpoints go on


def test_put_off_attempts_are_spaced_at_the_rate_the_endpoint_answers() -> None:
    clock = Clock()
    loads = EndpointLoads(4, clock)
    with ExitStack() as held:  # a slow endpoint: 4 connections, 8 s an answer
        for _ in range(4):
            held.enter_context(loads.attempt("slow"))
        clock.now += 8
    with ExitStack() as held:
        for _ in range(4):
            held.enter_context(loads.attempt("slow"))
        waits = [loads.put_off("slow") for _ in range(6)]
    # 4 connections / 8 s = one free connection every 2 s.
    assert waits == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_an_endpoint_that_answers_again_is_no_longer_put_off() -> None:
    clock = Clock()
    loads = EndpointLoads(1, clock)
    with loads.attempt("ep"):
        clock.now += 5
    for _ in range(20):  # now fast: the average comes down
        with loads.attempt("ep"):
            clock.now += 0.01
    with loads.attempt("ep"):
        assert loads.put_off("ep") == 0
