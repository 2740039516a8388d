"""An endpoint's retry and disable policy: its `retry_policy`, over the gateway's settings.

`RetryPolicy` is what the API takes; `effective` merges what an endpoint stored with
the settings (a field left out is the setting's), and `retry_delay` decides, from that,
whether and when a failed attempt is tried again. An endpoint without a policy gets
exactly the settings: the behaviour from before policies existed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from gateway.outbound.retry import next_delay
from gateway.settings import Settings
from gateway.validation import Input

MAX_SCHEDULE = 50  # entries
MAX_DELAY = 7 * 24 * 3600  # seconds between two attempts
MAX_DURATION = 30 * 24 * 3600  # seconds a delivery may be retried, from its first attempt
# The warnings before an endpoint is disabled, in percent of the nearer threshold.
WARNING_LEVELS = (50, 70, 90)

POLICY_DOC = (
    "How deliveries to it are retried and when it is disabled; any of `schedule` (seconds "
    "to wait after each failed attempt, instead of GATEWAY_RETRY_SCHEDULE), `max_duration` "
    "(keep retrying at the schedule's last interval until this many seconds after the "
    "first attempt), `final_statuses` (status codes that end a delivery as failed without "
    "retrying) and `disable_after_failures` (deliveries failed in a row that disable it; "
    "0: never for that reason). A field left out (or null) takes the gateway's setting; the "
    "whole policy null: all of them. A 410 Gone always disables the endpoint."
)


class RetryPolicy(Input):
    """An endpoint's own retry and disable policy; a field left out is the gateway's."""

    schedule: list[float] | None = Field(
        None,
        max_length=MAX_SCHEDULE,
        description=f"Seconds to wait after each failed attempt (0 to {MAX_DELAY}, at most "
        f"{MAX_SCHEDULE} entries), each spread by about 20%; a delivery gets one attempt "
        "more than there are entries (or more, with `max_duration`). `[]`: no retries.",
    )
    max_duration: int | None = Field(
        None,
        ge=1,
        le=MAX_DURATION,
        description="Seconds since the delivery's first attempt during which a failed "
        "delivery keeps being retried at the schedule's last interval once the schedule "
        "is used up (for example 604800: until a 2xx, for up to a week).",
    )
    final_statuses: list[int] | None = Field(
        None,
        max_length=100,
        description="Status codes that end a delivery as failed at once, without retrying "
        "(for example `[400, 401, 403, 404, 422]`); codes 300 to 599.",
    )
    disable_after_failures: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="Deliveries that end failed in a row (a success resets the count) "
        "before the endpoint is disabled; 0 turns this rule off. Left out: "
        "GATEWAY_DISABLE_AFTER_FAILURES.",
    )

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: list[float] | None) -> list[float] | None:
        for i, seconds in enumerate(value or []):
            if not 0 <= seconds <= MAX_DELAY:  # NaN fails this too
                raise ValueError(f"schedule[{i}] must be between 0 and {MAX_DELAY} seconds")
        return value

    @field_validator("final_statuses")
    @classmethod
    def _check_statuses(cls, value: list[int] | None) -> list[int] | None:
        for i, status in enumerate(value or []):
            if not 300 <= status <= 599:
                raise ValueError(
                    f"final_statuses[{i}] ({status}) must be a status code from 300 to 599"
                )
        return None if value is None else sorted(set(value))

    def stored(self) -> dict[str, Any] | None:
        """What the endpoint keeps: the fields given (None when none was)."""
        return self.model_dump(exclude_none=True) or None


@dataclass(frozen=True)
class Policy:
    schedule: list[float]
    max_duration: float | None
    final_statuses: frozenset[int]
    disable_after_failures: int


def effective(stored: dict[str, Any] | None, settings: Settings) -> Policy:
    """The endpoint's policy: what it stored, the settings for the rest."""
    stored = stored or {}
    schedule = stored.get("schedule")
    disable_after = stored.get("disable_after_failures")
    return Policy(
        schedule=settings.retry_schedule if schedule is None else [float(s) for s in schedule],
        max_duration=stored.get("max_duration"),
        final_statuses=frozenset(stored.get("final_statuses") or ()),
        disable_after_failures=settings.disable_after_failures
        if disable_after is None
        else int(disable_after),
    )


def retry_delay(
    policy: Policy,
    attempts_made: int,
    status_code: int | None,
    retry_after: float | None,
    first_attempt_at: datetime,
    now: datetime,
    rand: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after `attempts_made` failures; None: no more.

    A pure function (tested without a network): the schedule first, then, with a
    `max_duration`, the schedule's last interval again until that much time has passed
    since the first attempt. A final status ends the delivery at once.
    """
    if status_code is not None and status_code in policy.final_statuses:
        return None
    delay = next_delay(attempts_made, policy.schedule, retry_after, rand)
    if delay is not None or policy.max_duration is None or attempts_made < 1:
        return delay
    if (now - first_attempt_at).total_seconds() >= policy.max_duration:
        return None
    last = policy.schedule[-1] if policy.schedule else 60.0
    return next_delay(1, [last], retry_after, rand)


def warning_level(fraction: float) -> int:
    """The highest warning level (percent) reached at `fraction` of a threshold; 0: none."""
    return max((level for level in WARNING_LEVELS if fraction * 100 >= level), default=0)
