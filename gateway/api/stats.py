"""`/v1/stats` and `/v1/endpoints/{id}/stats`: delivery figures read from the database."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import IdPath, PrincipalDep, SessionDep, TenantFilter
from gateway.api.schemas import error_responses
from gateway.outbound import stats as service

router = APIRouter(tags=["stats"])

_FIGURES_EXAMPLE: dict[str, Any] = {
    "attempts": 1250,
    "succeeded": 1200,
    "failed": 50,
    "retried": 42,
    "success_rate": 0.96,
    "latency_ms": {"p50": 38, "p95": 210, "p99": 1450},
    "status_classes": {"1xx": 0, "2xx": 1200, "3xx": 0, "4xx": 12, "5xx": 30, "none": 8},
}
STATS_EXAMPLE: dict[str, Any] = {
    "since": "2026-01-15T09:00:00.000Z",
    "until": "2026-01-15T11:00:00.000Z",
    "bucket": "hour",
    **_FIGURES_EXAMPLE,
    "buckets": [
        {"start": "2026-01-15T09:00:00.000Z", **_FIGURES_EXAMPLE},
        {
            "start": "2026-01-15T10:00:00.000Z",
            "attempts": 0,
            "succeeded": 0,
            "failed": 0,
            "retried": 0,
            "success_rate": None,
            "latency_ms": {"p50": None, "p95": None, "p99": None},
            "status_classes": {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "none": 0},
        },
    ],
}


class Latency(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_FIGURES_EXAMPLE["latency_ms"]]})

    p50: int | None = Field(
        description="Median attempt duration in milliseconds (nearest rank); null without attempts."
    )
    p95: int | None = Field(
        description="95th percentile of attempt durations in milliseconds (nearest rank)."
    )
    p99: int | None = Field(
        description="99th percentile of attempt durations in milliseconds (nearest rank)."
    )


class StatusClasses(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={"examples": [_FIGURES_EXAMPLE["status_classes"]]},
    )

    c1xx: int = Field(alias="1xx", description="Attempts answered with an informational 1xx.")
    c2xx: int = Field(alias="2xx", description="Attempts answered with a 2xx: delivered.")
    c3xx: int = Field(alias="3xx", description="Attempts answered with a redirect (not followed).")
    c4xx: int = Field(alias="4xx", description="Attempts answered with a client error 4xx.")
    c5xx: int = Field(alias="5xx", description="Attempts answered with a server error 5xx.")
    none: int = Field(
        description="Attempts without an answer: timed out, refused, or a connection error."
    )


class Figures(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_FIGURES_EXAMPLE]})

    attempts: int = Field(description="Attempts started in the span (put-off sends are not).")
    succeeded: int = Field(description="Attempts the endpoint answered with a 2xx.")
    failed: int = Field(description="Attempts that did not succeed (any other answer, or none).")
    retried: int = Field(
        description="Of the failed attempts, those after which the delivery was put off to a "
        "retry; the others were their delivery's last."
    )
    success_rate: float | None = Field(
        description="succeeded / attempts, from 0 to 1 (4 decimals); null without attempts."
    )
    latency_ms: Latency = Field(description="Attempt durations: p50, p95 and p99.")
    status_classes: StatusClasses = Field(
        description="Attempts by the class of the endpoint's answer (`none`: no answer)."
    )


class BucketFigures(Figures):
    model_config = ConfigDict(json_schema_extra={"examples": [STATS_EXAMPLE["buckets"][0]]})

    start: datetime = Field(
        description="Where this bucket starts (RFC 3339, UTC, on a whole minute, hour or "
        "day); it ends where the next starts."
    )


class StatsOut(Figures):
    model_config = ConfigDict(json_schema_extra={"examples": [STATS_EXAMPLE]})

    since: datetime = Field(description="Start of the range, included (RFC 3339, UTC).")
    until: datetime = Field(description="End of the range, excluded (RFC 3339, UTC).")
    bucket: str = Field(
        description="The width of each bucket: `minute`, `hour` or `day`.",
        json_schema_extra={"enum": ["minute", "hour", "day"]},
    )
    buckets: list[BucketFigures] = Field(
        description="Every bucket of the range, oldest first, empty ones included."
    )


Since = Annotated[
    datetime | None,
    Query(
        description="Start of the range (RFC 3339); default: until minus an hour (minute "
        "buckets), a day (hour) or 30 days (day).",
        examples=["2026-01-15T09:00:00Z"],
    ),
]
Until = Annotated[
    datetime | None,
    Query(
        description="End of the range (RFC 3339), excluded; default: now.",
        examples=["2026-01-15T11:00:00Z"],
    ),
]
BucketQuery = Annotated[
    Literal["minute", "hour", "day"],
    Query(
        description="Bucket width. A range covers at most 1 day of minutes, 31 days of "
        "hours or 366 days of days.",
    ),
]
_ANSWERS = "Attempts in the range: totals and per bucket"


@router.get(
    "/v1/stats",
    response_model=StatsOut,
    response_description=_ANSWERS,
    response_model_by_alias=True,
)
async def stats(
    session: SessionDep,
    principal: PrincipalDep,
    since: Since = None,
    until: Until = None,
    bucket: BucketQuery = "hour",
    tenant_id: TenantFilter = None,
) -> dict[str, Any]:
    """Attempts of every endpoint (a tenant's key: of its tenant's) in a time range."""
    found = await service.attempt_stats(
        session,
        since=since,
        until=until,
        bucket=bucket,
        tenant_id=tenant_id,
        scope=principal.tenant_id,
    )
    return found.out()


@router.get(
    "/v1/endpoints/{endpoint_id}/stats",
    response_model=StatsOut,
    responses=error_responses(404),
    response_description=_ANSWERS,
)
async def endpoint_stats(
    endpoint_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    since: Since = None,
    until: Until = None,
    bucket: BucketQuery = "hour",
) -> dict[str, Any]:
    """Attempts of one endpoint in a time range."""
    found = await service.attempt_stats(
        session,
        since=since,
        until=until,
        bucket=bucket,
        endpoint_id=endpoint_id,
        scope=principal.tenant_id,
    )
    return found.out()
