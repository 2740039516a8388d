"""The retry policy as a pure function: no network, no clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from gateway.outbound.retry import MAX_RETRY_AFTER, next_delay, parse_retry_after

SCHEDULE = [5.0, 300.0, 1800.0]


@pytest.mark.parametrize("attempts, base", [(1, 5.0), (2, 300.0), (3, 1800.0)])
def test_delay_follows_schedule_within_jitter(attempts: int, base: float) -> None:
    rand = random.Random(7)
    delays = [next_delay(attempts, SCHEDULE, rand=rand) for _ in range(500)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    # Jitter really spreads them: not all the same, and both sides of the base.
    assert min(delays) < base * 0.95 and max(delays) > base * 1.05  # type: ignore[operator]


def test_exhausted_after_schedule() -> None:
    assert next_delay(len(SCHEDULE) + 1, SCHEDULE) is None
    assert next_delay(0, SCHEDULE) is None
    assert next_delay(1, []) is None


def test_retry_after_is_a_floor_not_a_shortcut() -> None:
    rand = random.Random(1)
    assert next_delay(1, SCHEDULE, retry_after=60, rand=rand) == 60
    # An endpoint asking for 1 s does not make us come back sooner than the schedule.
    delay = next_delay(2, SCHEDULE, retry_after=1, rand=rand)
    assert delay is not None and delay >= 240


def test_parse_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("99999999") == MAX_RETRY_AFTER
    for bad in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(bad, now) is None
