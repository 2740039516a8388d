"""Who is calling: the bootstrap key (`GATEWAY_API_KEY`) or a created key, stored hashed.

A created key may be scoped to one tenant: it then sees and changes only that
tenant's endpoints, events and deliveries, and gets 404 for anything else, so
that existence does not leak. Keys are looked up by their SHA-256 (they are
long random strings, so a fast hash is enough) and cached for a few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.db import SessionMaker
from gateway.errors import Forbidden, Invalid, Unauthorized
from gateway.ids import new_id
from gateway.store.models import ApiKey
from gateway.store.queries import Page, get_or_404, page
from gateway.timeutil import utcnow
from gateway.validation import Input, TenantId, Text

KEY_PREFIX = "gw_"
# A revoked key stops working everywhere within this many seconds.
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    key_id: str | None  # None for the bootstrap key
    tenant_id: str | None  # None: every tenant
    rate_limit: int | None = None  # requests per second; None: the configured default

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this API key is scoped to one tenant and cannot do this")


ADMIN = Principal(None, None)


def scoped_tenant(principal: Principal, requested: str | None) -> str | None:
    """The tenant a write applies to: a scoped key's own, whatever the body says."""
    if principal.tenant_id is None:
        return requested
    if requested is not None and requested != principal.tenant_id:
        raise Invalid(
            f"this API key is scoped to tenant {principal.tenant_id!r}", loc=("body", "tenant_id")
        )
    return principal.tenant_id


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """Resolves a presented key to a principal; one per process."""

    def __init__(self, bootstrap_key: str | None, sessionmaker: SessionMaker) -> None:
        self._bootstrap = bootstrap_key.encode() if bootstrap_key else None
        # Its own sessions, only on a cache miss: most requests need no database for this.
        self._sessionmaker = sessionmaker
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, presented: str) -> Principal:
        if self._bootstrap is not None and hmac.compare_digest(presented.encode(), self._bootstrap):
            return ADMIN
        digest = hash_key(presented)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            async with self._sessionmaker() as session:
                row = (
                    await session.execute(
                        select(col(ApiKey.id), col(ApiKey.tenant_id), col(ApiKey.rate_limit)).where(
                            col(ApiKey.key_hash) == digest, col(ApiKey.revoked_at).is_(None)
                        )
                    )
                ).first()
            principal = Principal(row.id, row.tenant_id, row.rate_limit) if row else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CACHE_SECONDS, principal)
        if principal is None:
            raise Unauthorized("invalid API key")
        return principal

    @property
    def bootstrap_hash(self) -> str | None:
        """The bootstrap key's hash: what a console session opened with it remembers."""
        return hash_key(self._bootstrap.decode()) if self._bootstrap is not None else None

    def forget(self) -> None:
        """Drop cached look-ups (after a revocation in this process)."""
        self._cache.clear()


async def create_key(
    session: AsyncSession, name: str, tenant_id: str | None, rate_limit: int | None = None
) -> tuple[ApiKey, str]:
    key = generate_key()
    row = ApiKey(
        id=new_id("key"),
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[:10],
        tenant_id=tenant_id,
        rate_limit=rate_limit,
        created_at=utcnow(),
    )
    session.add(row)
    return row, key


async def list_keys(
    session: AsyncSession, limit: int = 50, cursor: str | None = None
) -> Page[ApiKey]:
    """API keys, newest first (revoked ones too, with when)."""
    return await page(session, select(ApiKey), ApiKey.id, limit, cursor)


async def get_key(session: AsyncSession, key_id: str) -> ApiKey:
    """One API key (its hash and prefix, never the key); NotFound when unknown."""
    return await get_or_404(session, ApiKey, key_id, "API key")


async def revoke_key(session: AsyncSession, key_id: str) -> tuple[ApiKey, bool]:
    """Revoke (committed here) unless it already is; (the key, whether it already was).
    Other processes refuse it once their cache of it expires (`CACHE_SECONDS`)."""
    row = await get_key(session, key_id)
    already = row.revoked_at is not None
    if not already:
        row.revoked_at = utcnow()
        await session.commit()
    return row, already


# Request and response bodies


_KEY_NAME_DOC = "A name for people, such as the service that uses it (1 to 255 characters)."
_KEY_TENANT_DOC = (
    "The tenant the key is scoped to: it sees and changes only that tenant's endpoints, "
    "events and deliveries, and cannot manage sources or keys. Null: an unscoped (admin) key."
)
_KEY_RATE_DOC = (
    "Requests per second the key may make (1 to 1000000); null: GATEWAY_API_RATE_LIMIT. "
    "Over it, 429 with Retry-After."
)
_KEY_EXAMPLE: dict[str, Any] = {
    "id": "key_01KF3V2D5G8J1K4N7Q9S2T5W8Y",
    "name": "billing service",
    "key_prefix": "gw_5fK2mQ8",
    "tenant_id": "acme",
    "rate_limit": None,
    "created_at": "2026-01-15T08:00:41.906000Z",
    "revoked_at": None,
}


class ApiKeyCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "billing service", "tenant_id": "acme"}]}
    )

    name: Annotated[Text, Field(min_length=1, max_length=255)] = Field(description=_KEY_NAME_DOC)
    tenant_id: TenantId | None = Field(None, description=_KEY_TENANT_DOC)
    rate_limit: int | None = Field(None, gt=0, le=1_000_000, description=_KEY_RATE_DOC)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_KEY_EXAMPLE]})

    id: str = Field(description="The key's id (`key_` and a ULID), to revoke it by.")
    name: str = Field(description=_KEY_NAME_DOC)
    key_prefix: str = Field(
        description="The key's first 10 characters, to recognise it: the key itself is "
        "stored only as a hash."
    )
    tenant_id: str | None = Field(description=_KEY_TENANT_DOC)
    rate_limit: int | None = Field(description=_KEY_RATE_DOC)
    created_at: datetime = Field(description="When it was created (RFC 3339, UTC).")
    revoked_at: datetime | None = Field(
        description="When it was revoked (RFC 3339, UTC); null while it works."
    )


class ApiKeyCreated(ApiKeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_KEY_EXAMPLE, "key": "gw_5fK2mQ8xR1vT7bN4cW9zH3jK6pS0dY2eA8gV1iM4kE7"}]
        }
    )

    key: str = Field(
        description="The key, for `Authorization: Bearer <key>`: shown in this answer only."
    )
