"""Liveness, readiness and Prometheus metrics: no API key needed."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.api.deps import DispatcherDep, SchemaDep, SessionMakerDep, SettingsDep
from gateway.api.schemas import NOT_READY, ErrorOut, Health, Readiness
from gateway.db import SessionMaker
from gateway.metrics import DISABLED, OLDEST_DUE, PENDING, render
from gateway.migrate import Schema
from gateway.store.models import Delivery, DeliveryStatus, Endpoint
from gateway.timeutil import as_utc, utcnow

log = logging.getLogger("gateway.health")

router = APIRouter(tags=["health"])

METRICS_401 = "metrics need 'Authorization: Bearer <token>' (GATEWAY_METRICS_TOKEN)"
METRICS_EXAMPLE = """\
# HELP gateway_deliveries_pending Deliveries not yet succeeded or failed
# TYPE gateway_deliveries_pending gauge
gateway_deliveries_pending 3.0
# HELP gateway_oldest_due_delivery_seconds Age of the oldest delivery that is due and not yet sent
# TYPE gateway_oldest_due_delivery_seconds gauge
gateway_oldest_due_delivery_seconds 0.0
"""


@router.get("/healthz", response_model=Health, response_description="The process is up")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Database or queue unreachable, or the schema behind",
            "content": {"application/json": {"example": NOT_READY}},
        }
    },
    response_description="Ready to serve",
)
async def readyz(
    sessionmaker: SessionMakerDep, dispatcher: DispatcherDep, schema: SchemaDep
) -> JSONResponse:
    """The database and the queue answer and the schema is this version's; 503 with what
    is wrong otherwise."""
    checks: dict[str, str] = {}
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["schema"] = await _schema_check(session, schema)
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    checks["queue"] = "ok" if await dispatcher.ping() else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"example": METRICS_EXAMPLE}},
        },
        401: {
            "model": ErrorOut,
            "description": "GATEWAY_METRICS_TOKEN is set and not given",
            "content": {"application/json": {"example": {"detail": METRICS_401}}},
        },
    },
)
async def metrics(
    request: Request, settings: SettingsDep, sessionmaker: SessionMakerDep
) -> Response:
    """Prometheus text: counters of this process, and the backlog read from the database.

    Open unless `GATEWAY_METRICS_TOKEN` is set; then `Authorization: Bearer <token>`."""
    token = settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse(
                {"detail": METRICS_401},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    try:
        await _observe_backlog(sessionmaker)
    except Exception as exc:  # metrics must answer while the database is down
        log.warning("metrics: backlog not read: %s", type(exc).__name__)
    body, content_type = render()
    return Response(body, media_type=content_type)


async def _schema_check(session: AsyncSession, schema: Schema) -> str:
    """On the session that just answered: the check costs one query, not a connection."""
    try:
        versions = await session.execute(text("SELECT version_num FROM alembic_version"))
        current = versions.scalar_one_or_none()
    except Exception:  # no alembic_version table: nothing was ever migrated
        current = None
    return schema.problem(current) or "ok"


async def _observe_backlog(sessionmaker: SessionMaker) -> None:
    now = utcnow()
    async with sessionmaker() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(col(Delivery.status) == DeliveryStatus.PENDING)
        )
        oldest = await session.scalar(
            select(func.min(col(Delivery.next_attempt_at))).where(
                col(Delivery.status) == DeliveryStatus.PENDING, col(Delivery.next_attempt_at) <= now
            )
        )
        disabled = await session.scalar(
            select(func.count()).select_from(Endpoint).where(col(Endpoint.disabled).is_(True))
        )
    PENDING.set(pending or 0)
    OLDEST_DUE.set((now - as_utc(oldest)).total_seconds() if oldest is not None else 0)
    DISABLED.set(disabled or 0)
