"""The retry policy, a pure function: when (if ever) to try a failed delivery again."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.2
# A Retry-After further out than this is treated as this, so that one header
# cannot park a delivery for months.
MAX_RETRY_AFTER = 24 * 3600.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_delay(
    attempts_made: int,
    schedule: list[float],
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after `attempts_made` failures; None when exhausted.

    The schedule's n-th entry is the wait after the n-th failed attempt, spread by
    about +-20% so that retries of one burst do not arrive together. A Retry-After
    from the endpoint is a floor: we never come back sooner than it asked.
    """
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    delay = base * (1 + (rand or random).uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
