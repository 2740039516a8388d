"""Endpoint health: a circuit breaker for failing endpoints, and disabling dead ones.

Following the Standard Webhooks guidance: a `410 Gone` disables an endpoint at
once, and one that has done nothing but fail for `GATEWAY_DISABLE_AFTER` is
disabled too, as is one whose last `disable_after_failures` deliveries (its retry
policy's, else `GATEWAY_DISABLE_AFTER_FAILURES`; 0: off) all ended failed; any
success resets that. On the way, `endpoint.failing` is published at 50, 70 and 90%
of the nearer threshold, then `endpoint.disabled`, and `endpoint.recovered` when a
warned endpoint succeeds again (`alerts.py`, which mails them too).

Meanwhile the breaker keeps a failing endpoint from soaking up connections: after
`GATEWAY_BREAKER_THRESHOLD` failures in a row (timeouts, connection errors, 5xx,
429) its deliveries are put off, not attempted, for a while that doubles each
time (up to `GATEWAY_BREAKER_MAX_OPEN`); then one probe is let through.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, literal, update

from gateway.metrics import ENDPOINTS_DISABLED
from gateway.outbound.alerts import announce
from gateway.outbound.context import DeliveryContext
from gateway.outbound.policy import WARNING_LEVELS, effective, warning_level
from gateway.store.models import Endpoint, table
from gateway.timeutil import as_utc, rfc3339

log = logging.getLogger("gateway.health")

_ENDPOINT = table(Endpoint)
PROBE_WAIT = 2.0  # seconds to put off a delivery while another one probes the endpoint


def unhealthy(status_code: int | None) -> bool:
    """A failure that says the endpoint is down or overloaded, not that it refused us."""
    return status_code is None or status_code >= 500 or status_code == 429


def breaker_wait(ctx: DeliveryContext, endpoint: Row[Any], now: datetime) -> float:
    """Seconds to put a delivery off because the endpoint's breaker is open; 0 to send."""
    open_until = endpoint.circuit_open_until
    if open_until is not None and as_utc(open_until) > now:
        # Spread over the first spell's length, so that they do not all return at once.
        wait = (as_utc(open_until) - now).total_seconds()
        return wait + random.uniform(0, ctx.settings.breaker_base_open)
    if endpoint.consecutive_failures >= ctx.settings.breaker_threshold:
        # Half open: one delivery at a time (per process) finds out whether it is back.
        # The others wait until the probe can have ended (it may take the whole timeout),
        # spread out: coming back every few seconds, thousands of deliveries to a hanging
        # endpoint would flood the queue that healthy endpoints' jobs wait in.
        started = ctx.probing.get(endpoint.id)
        if started is not None:
            left = started + ctx.settings.delivery_timeout - time.monotonic()
            return max(PROBE_WAIT, left) + random.uniform(0, ctx.settings.breaker_base_open)
        ctx.probing[endpoint.id] = time.monotonic()
    return 0.0


@dataclass
class _Tally:
    endpoint: Row[Any]
    successes: int = 0
    unhealthy: int = 0
    failures: int = 0
    ended_failed: int = 0  # deliveries whose last attempt this was, failed
    gone: bool = False


async def record_health(
    ctx: DeliveryContext,
    results: Iterable[tuple[Row[Any], int | None, bool, bool | None]],
    now: datetime,
) -> None:
    """Update health from (endpoint, status code, ok, delivery ended failed) of the
    attempts just recorded."""
    tallies: dict[str, _Tally] = {}
    for endpoint, status_code, ok, ended_failed in results:
        tally = tallies.setdefault(endpoint.id, _Tally(endpoint))
        if ok:
            tally.successes += 1
        else:
            tally.failures += 1
            tally.unhealthy += unhealthy(status_code)
            tally.gone |= status_code == 410
            tally.ended_failed += bool(ended_failed)
    for tally in tallies.values():
        try:
            await _apply(ctx, tally, now)
        except Exception:  # health bookkeeping must never lose the attempts themselves
            log.exception("could not update the health of endpoint %s", tally.endpoint.id)


async def _apply(ctx: DeliveryContext, tally: _Tally, now: datetime) -> None:
    endpoint, c = tally.endpoint, _ENDPOINT.c
    if tally.successes:
        if (
            endpoint.failing_since is not None
            or endpoint.consecutive_failures
            or endpoint.failed_deliveries_in_row
            or endpoint.warned_percent
        ):
            await _recovered(ctx, endpoint)
        return
    if tally.gone:
        await _disable(ctx, endpoint, "the endpoint answered 410 Gone", now, "gone")
        return
    async with ctx.sessionmaker() as session, session.begin():
        row = (
            await session.execute(
                update(_ENDPOINT)
                .where(c.id == endpoint.id)
                .values(
                    # The row's own value: the endpoint as claimed may be stale by now.
                    failing_since=func.coalesce(
                        c.failing_since, literal(now, c.failing_since.type)
                    ),
                    # A quick refusal (4xx) shows the endpoint is up: the breaker starts over.
                    consecutive_failures=(
                        c.consecutive_failures + tally.unhealthy
                        if tally.unhealthy == tally.failures
                        else 0
                    ),
                    failed_deliveries_in_row=c.failed_deliveries_in_row + tally.ended_failed,
                )
                .returning(
                    c.consecutive_failures,
                    c.failing_since,
                    c.failed_deliveries_in_row,
                    c.warned_percent,
                )
            )
        ).first()
        if row is None:
            return
        settings = ctx.settings
        if row.consecutive_failures >= settings.breaker_threshold:
            doublings = min(20, row.consecutive_failures - settings.breaker_threshold)
            open_for = min(settings.breaker_max_open, settings.breaker_base_open * 2**doublings)
            await session.execute(
                update(_ENDPOINT)
                .where(c.id == endpoint.id)
                .values(circuit_open_until=now + timedelta(seconds=open_for))
            )
    failing_since = as_utc(row.failing_since)
    if now - failing_since >= timedelta(seconds=ctx.settings.disable_after):
        await _disable(
            ctx,
            endpoint,
            f"every attempt has failed since {rfc3339(failing_since)}",
            now,
            "failing",
        )
        return
    threshold = effective(endpoint.retry_policy, ctx.settings).disable_after_failures
    if threshold and row.failed_deliveries_in_row >= threshold:
        await _disable(
            ctx,
            endpoint,
            f"{row.failed_deliveries_in_row} deliveries in a row failed",
            now,
            "failures",
        )
        return
    await _warn(ctx, endpoint, row, failing_since, threshold, now)


async def _warn(
    ctx: DeliveryContext,
    endpoint: Row[Any],
    row: Row[Any],
    failing_since: datetime,
    threshold: int,
    now: datetime,
) -> None:
    """Publish `endpoint.failing` for each warning level the nearer rule has passed."""
    by_time = (now - failing_since).total_seconds() / ctx.settings.disable_after
    by_count = row.failed_deliveries_in_row / threshold if threshold else 0.0
    reached = warning_level(max(by_time, by_count))
    c = _ENDPOINT.c
    for level in WARNING_LEVELS:
        if not row.warned_percent < level <= reached:
            continue
        # Only one process raises the level: the crossing is published once.
        async with ctx.sessionmaker() as session, session.begin():
            won = (
                await session.execute(
                    update(_ENDPOINT)
                    .where(c.id == endpoint.id, c.warned_percent < level, c.disabled.is_(False))
                    .values(warned_percent=level)
                    .returning(c.id)
                )
            ).first()
        if won is None:
            continue
        if by_count >= by_time:
            rule = "count"
            rule_text = f"{row.failed_deliveries_in_row} of {threshold} failed deliveries in a row"
        else:
            rule = "time"
            rule_text = (
                f"failing since {rfc3339(failing_since)}; disabled after "
                f"{ctx.settings.disable_after:g} seconds of failures"
            )
        log.warning("endpoint %s failing: %d%% of the way to disabled", endpoint.id, level)
        await announce(
            ctx,
            endpoint,
            "failing",
            {
                "percent": level,
                "rule": rule,
                "rule_text": rule_text,
                "failing_since": rfc3339(failing_since),
                "failed_deliveries_in_row": row.failed_deliveries_in_row,
                "disable_after_failures": threshold,
                "disable_at": rfc3339(
                    failing_since + timedelta(seconds=ctx.settings.disable_after)
                ),
            },
        )


async def _recovered(ctx: DeliveryContext, endpoint: Row[Any]) -> None:
    """A success: the failure counts start over; a warned endpoint announces it is back."""
    c = _ENDPOINT.c
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(
            update(_ENDPOINT)
            .where(c.id == endpoint.id)
            .values(
                failing_since=None,
                consecutive_failures=0,
                circuit_open_until=None,
                failed_deliveries_in_row=0,
            )
        )
        warned = (
            await session.execute(
                update(_ENDPOINT)
                .where(c.id == endpoint.id, c.warned_percent > 0)
                .values(warned_percent=0)
                .returning(c.id)
            )
        ).first()
    if warned is not None:
        log.info("endpoint %s recovered", endpoint.id)
        await announce(
            ctx,
            endpoint,
            "recovered",
            {"failing_since": rfc3339(endpoint.failing_since) if endpoint.failing_since else None},
        )


async def _disable(
    ctx: DeliveryContext, endpoint: Row[Any], reason: str, now: datetime, code: str
) -> None:
    c = _ENDPOINT.c
    async with ctx.sessionmaker() as session, session.begin():
        changed = (
            await session.execute(
                update(_ENDPOINT)
                .where(c.id == endpoint.id, c.disabled.is_(False))
                .values(
                    disabled=True,
                    disabled_reason=reason,
                    updated_at=now,
                    circuit_open_until=None,
                )
                .returning(c.id)
            )
        ).first()
    if changed is None:
        return  # already disabled, by someone else or by hand: announce it once
    log.warning("endpoint %s disabled: %s", endpoint.id, reason)
    ENDPOINTS_DISABLED.labels(code).inc()
    await announce(
        ctx,
        endpoint,
        "disabled",
        {"reason": reason, "failing_since": rfc3339(endpoint.failing_since)},
    )
