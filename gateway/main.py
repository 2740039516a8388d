"""The app factory: routers, error handlers, and the lifespan that owns every connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gateway import __version__, console, gctune, migrate
from gateway.access import AccessLog
from gateway.api import (
    api_keys,
    deliveries,
    endpoints,
    event_types,
    events,
    health,
    inbound,
    openapi,
    portal_links,
    sources,
    stats,
    streams,
)
from gateway.api.deps import get_principal
from gateway.api.schemas import error_responses
from gateway.apikey import resolve_api_key
from gateway.auth import KeyStore
from gateway.console import web as console_web
from gateway.crypto import load_box
from gateway.db import create_engine, create_sessionmaker
from gateway.errors import GatewayError, Invalid, TooManyRequests
from gateway.failures import FailureLimiter
from gateway.inbound.ingest import InboundContext
from gateway.inbound.refusals import RefusalLog
from gateway.limits import BodyLimitMiddleware
from gateway.logs import configure_logging
from gateway.outbound.batcher import PublishBatcher
from gateway.outbound.context import DeliveryContext
from gateway.outbound.ratelimit import MemoryAdmission, RedisAdmission
from gateway.outbound.retention import purge
from gateway.outbound.streams import MemoryHub, RedisHub
from gateway.outbound.sweeper import sweep
from gateway.outbound.tasks import CTX_KEY, FUNCTIONS, build_delivery_context
from gateway.queue.dispatch import ArqDispatcher, Dispatcher, InProcessDispatcher
from gateway.settings import Settings, get_settings
from gateway.tracing import setup_tracing

log = logging.getLogger("gateway")

DESCRIPTION = """
Publish events with `POST /v1/events` (or up to 500 at once, all or none, with
`POST /v1/events/batch`); the gateway signs them per the Standard
Webhooks specification and delivers them to every subscribed endpoint, with
retries and a full attempt log. Management routes need `Authorization: Bearer <key>`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    setup_tracing("hookgate-api")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        box = load_box(settings)
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.schema = migrate.schema(settings)  # what /readyz checks the database against
        app.state.box = box
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.keys = KeyStore(resolve_api_key(settings), app.state.sessionmaker)
        sweeper: asyncio.Task[None] | None = None
        delivery: DeliveryContext | None = None
        dispatcher: Dispatcher
        if settings.redis_url is None:
            # Embedded mode: this process delivers too, with the same code as a worker.
            ctx: dict[str, Any] = {}
            dispatcher = InProcessDispatcher(FUNCTIONS, ctx, settings.worker_max_jobs)
            delivery = build_delivery_context(settings, app.state.sessionmaker, dispatcher, box)
            ctx[CTX_KEY] = delivery
            sweeper = asyncio.create_task(_sweep_forever(delivery), name="sweeper")
            log.info("embedded mode: deliveries run in this process")
        else:
            dispatcher = ArqDispatcher(settings.redis_url, settings.queue_name)
        app.state.dispatcher = dispatcher
        # Stream endpoints' clients (`api/streams.py`) meet the attempts offered to them
        # in this process (embedded) or through Redis.
        app.state.streams = (
            delivery.streams
            if delivery is not None
            else RedisHub(dispatcher.redis, settings.queue_name)
            if isinstance(dispatcher, ArqDispatcher)
            else MemoryHub()
        )
        app.state.admission = (
            RedisAdmission(dispatcher.redis, settings.queue_name)
            if isinstance(dispatcher, ArqDispatcher)
            else MemoryAdmission()
        )
        # Published deliveries are leased to their jobs for the sweeper's grace: a job
        # lost meanwhile leaves a lease that has lapsed when the sweeper looks.
        app.state.batcher = PublishBatcher(
            app.state.sessionmaker,
            dispatcher,
            lease=timedelta(seconds=settings.sweep_grace) if settings.sweep_grace > 0 else None,
        )
        app.state.failures = FailureLimiter(settings.auth_failure_rate_limit)
        app.state.inbound = InboundContext(
            box,
            app.state.admission,
            settings.inbound_rate_limit,
            app.state.batcher,
            app.state.sessionmaker,
            app.state.failures,
            RefusalLog(app.state.sessionmaker),
            event_types=settings.event_types,
            transform_timeout_ms=settings.transform_timeout_ms,
        )
        gctune.settle()
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)
            # Graceful: attempts in flight finish and are recorded; nothing new starts.
            grace = settings.delivery_timeout + 5
            await app.state.batcher.close()
            if app.state.inbound.refusals is not None:
                await app.state.inbound.refusals.close()
            await dispatcher.close(grace)
            if delivery is not None:
                await delivery.drain(grace)
            if delivery is not None:
                await delivery.client.close()
            await engine.dispose()

    # The docs pages load Swagger UI from this installation, never from a CDN: /docs
    # works where the gateway has no internet. ReDoc is off: it fetches its logo from
    # its vendor's CDN, and no docs page may reach outside the gateway.
    app = FastAPIOffline(
        title="Webhook gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        static_url="/docs/assets",
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog)  # outermost: it sees the 413s too
    authenticated = [Depends(get_principal)]
    # What every management route can answer; each route adds its own (404, 409, ...).
    managed = error_responses(401, 422, 429, 503)
    # Routes are matched in order: publishing, the hottest, first.
    for module in (
        events,
        endpoints,
        streams,
        event_types,
        deliveries,
        sources,
        api_keys,
        portal_links,
        stats,
    ):
        app.include_router(module.router, dependencies=authenticated, responses=managed)
    app.include_router(inbound.router)
    app.include_router(health.router)
    console.install(app)
    _add_error_handlers(app)
    openapi.install(app)
    return app


async def _sweep_forever(ctx: DeliveryContext) -> None:
    """Embedded mode's cron: the sweeper every `sweep_interval`, retention every
    `purge_interval_minutes`."""
    next_purge = 0.0
    while True:
        try:
            await sweep(ctx)
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + 60 * ctx.settings.purge_interval_minutes
                await purge(ctx.sessionmaker, ctx.settings.retention_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweep failed, will retry: %s", type(exc).__name__)
        await asyncio.sleep(ctx.settings.sweep_interval)


CLIENT_CLOSED_REQUEST = 499

# SQLSTATE classes that mean "the database cannot serve now", not "this request is wrong":
# connection exceptions, operator intervention (shutting down, starting up), resources.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")


def _database_unavailable(exc: DBAPIError) -> bool:
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if isinstance(error, OSError | ConnectionError):
            return True
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


def _printable(value: object) -> object:
    """A loc part that JSON can carry whatever the client sent (lone surrogates included)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's wrapping of a hang-up
            return await client_gone(request, exc.__cause__)
        if console_web.is_page(request):
            message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
            return console_web.error_page(request, exc.status_code, message)
        # FastAPI answers a JSON body it cannot even decode (not UTF-8) with a bare 400;
        # every other malformed body is a 422, so this one is too.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "json_invalid",
                            "loc": ["body"],
                            "msg": "the body is not valid UTF-8 JSON",
                        }
                    ]
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if console_web.is_page(request):
            problems = "; ".join(
                f"{error.get('loc', ('',))[-1]}: {error.get('msg', '')}" for error in exc.errors()
            )
            return console_web.error_page(request, 400, problems)
        # FastAPI's own handler echoes each rejected value back as "input": for a
        # bad secret that would be the secret itself. Field, message and type suffice.
        detail = [
            {
                "type": error.get("type"),
                "loc": [_printable(p) for p in error.get("loc", ())],
                "msg": _printable(error.get("msg", "")),
            }
            for error in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        if console_web.is_page(request):
            return console_web.gateway_error_page(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if isinstance(exc, Invalid):
            content: dict[str, Any] = {
                "detail": [{"type": "value_error", "loc": list(exc.loc), "msg": exc.detail}]
            }
        else:
            content = {"detail": exc.detail}
        return JSONResponse(content, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _exc: ClientDisconnect) -> Response:
        # The client hung up before its body arrived: nothing went wrong here, and
        # nobody is left to answer. 499 is what the access log records (nginx's code).
        log.info(
            "client disconnected before its request arrived: %s %s",
            request.method,
            request.url.path,
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for exc_type in (OperationalError, InterfaceError, PoolTimeoutError, ConnectionError, OSError):
        app.add_exception_handler(exc_type, unavailable)

    @app.exception_handler(DBAPIError)
    async def db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated or _database_unavailable(exc):
            return await unavailable(request, exc)
        return await internal_error(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return JSONResponse({"detail": "internal error"}, status_code=500)
