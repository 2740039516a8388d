"""Dependencies shared by the routers, as `Annotated` aliases.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool, a
costly hop for what is a dictionary lookup.
"""

from __future__ import annotations

import email.message
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import KeyStore, Principal
from gateway.crypto import SecretBox
from gateway.db import SessionMaker
from gateway.errors import TooManyRequests, Unauthorized, UnsupportedMediaType
from gateway.failures import FailureLimiter
from gateway.inbound.ingest import InboundContext
from gateway.migrate import Schema
from gateway.outbound.batcher import PublishBatcher
from gateway.outbound.ratelimit import Admission
from gateway.queue.dispatch import Dispatcher
from gateway.settings import Settings
from gateway.validation import Text


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request: committed when the route returns, rolled back if it raises."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher  # type: ignore[no-any-return]


bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await authenticate(request, credentials)


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The caller of a management route, admitted under its rate limit; 401 or 429."""
    failures: FailureLimiter = request.app.state.failures
    address = client_address(request)
    blocked = failures.blocked_for(address)
    if blocked > 0:  # before the key is looked at: no guessing at speed
        raise TooManyRequests(
            "too many requests with a missing or invalid API key from this address", blocked
        )
    try:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        keys: KeyStore = request.app.state.keys
        principal = await keys.authenticate(credentials.credentials)
    except Unauthorized:
        failures.failed(address)
        raise
    rate = principal.rate_limit or request.app.state.settings.api_rate_limit
    admission: Admission = request.app.state.admission
    wait = await admission.admit(f"key:{principal.key_id or 'bootstrap'}", rate)
    if wait > 0:
        raise TooManyRequests(f"rate limit of {rate} requests per second exceeded", wait)
    return principal


def is_json(content_type: str | None) -> bool:
    """What FastAPI parses as JSON: `application/json` or `application/*+json`."""
    if not content_type:
        return False
    if content_type == "application/json":  # nearly every request: no parsing needed
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def require_json(request: Request) -> None:
    """A body not labelled JSON would otherwise be reported as "not a valid dictionary",
    which hides the mistake: the missing or wrong content-type."""
    content_type = request.headers.get("content-type")
    if await request.body() and not is_json(content_type):
        sent = f"not {content_type!r}" if content_type else "and this request has none"
        raise UnsupportedMediaType(
            f"the body must be JSON, sent with 'content-type: application/json' ({sent})"
        )


# For the routes that take a JSON body: 415 before the body is validated.
JSON_BODY = [Depends(require_json)]


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy, as uvicorn's --forwarded-allow-ips trusts it)."""
    return request.client.host if request.client else "unknown"


async def get_box(request: Request) -> SecretBox:
    return request.app.state.box  # type: ignore[no-any-return]


async def get_sessionmaker(request: Request) -> SessionMaker:
    """For routes that open their own sessions (health checks, which must not fail early)."""
    return request.app.state.sessionmaker  # type: ignore[no-any-return]


async def get_schema(request: Request) -> Schema:
    return request.app.state.schema  # type: ignore[no-any-return]


async def get_batcher(request: Request) -> PublishBatcher:
    return request.app.state.batcher  # type: ignore[no-any-return]


async def get_keys(request: Request) -> KeyStore:
    return request.app.state.keys  # type: ignore[no-any-return]


async def get_inbound(request: Request) -> InboundContext:
    return request.app.state.inbound  # type: ignore[no-any-return]


SessionDep = Annotated[AsyncSession, Depends(get_session)]
BoxDep = Annotated[SecretBox, Depends(get_box)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
SessionMakerDep = Annotated[SessionMaker, Depends(get_sessionmaker)]
BatcherDep = Annotated[PublishBatcher, Depends(get_batcher)]
SchemaDep = Annotated[Schema, Depends(get_schema)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
InboundDep = Annotated[InboundContext, Depends(get_inbound)]
Limit = Annotated[int, Query(ge=1, le=250, description="Page size (at most 250)")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=64, pattern=r"^[A-Za-z0-9_]+$", description="`next_cursor` of the previous page"
    ),
]
IdPath = Annotated[
    str,
    Path(
        max_length=255,
        description="The id, as the API gave it (`ep_...`, `evt_...`, `dlv_...`, `src_...`, "
        "`key_...`)",
    ),
]


@dataclass(frozen=True)
class Paging:
    """Which page of a list: how many rows, after which id (newest first)."""

    limit: int
    cursor: str | None


async def get_paging(limit: Limit = 50, cursor: Cursor = None) -> Paging:
    return Paging(limit, cursor)


PagingDep = Annotated[Paging, Depends(get_paging)]
StatusFilter = Annotated[
    str | None,
    Query(
        alias="status",
        pattern="^(pending|succeeded|failed|cancelled|skipped)$",
        description="Only deliveries in this state",
    ),
]
TenantFilter = Annotated[
    Text | None, Query(max_length=255, description="Only those of this tenant")
]
TypeFilter = Annotated[
    Text | None, Query(max_length=255, description="Only events of exactly this type")
]
SourceFilter = Annotated[
    Text | None,
    Query(max_length=255, description="Only events received through this source (`src_...`)"),
]
