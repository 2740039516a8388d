"""Sign-in sessions of the console: an API key presented once, a cookie afterwards.

The cookie carries a random token; the database keeps only its SHA-256, the key it
was opened with and a CSRF token. Every request looks the session up again and
checks that the key still stands, so a revoked key (or a changed bootstrap key)
ends its sessions at once, in every process; sign-out deletes the row.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.auth import ADMIN, KeyStore, Principal, hash_key
from gateway.store.models import ApiKey, ConsoleSession
from gateway.timeutil import utcnow


@dataclass(frozen=True)
class SignedIn:
    """Who a console request acts for, and the token its forms must carry."""

    principal: Principal
    csrf_token: str
    key_name: str  # what the page header says: the key's name, or "bootstrap key"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    session: AsyncSession, keys: KeyStore, presented: str, hours: float
) -> tuple[str, Principal]:
    """A new session for a valid key: the cookie's token. `Unauthorized` otherwise."""
    principal = await keys.authenticate(presented)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            token_hash=_digest(token),
            api_key_id=principal.key_id,
            bootstrap_hash=hash_key(presented) if principal.key_id is None else None,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    # Expired sessions go when anyone signs in: nothing else needs to sweep them.
    await session.execute(delete(ConsoleSession).where(col(ConsoleSession.expires_at) < now))
    await session.commit()
    return token, principal


async def resolve_session(
    session: AsyncSession, keys: KeyStore, token: str | None
) -> SignedIn | None:
    """The session's principal, or None when it is unknown, expired, or its key is gone."""
    if not token:
        return None
    row = (
        await session.execute(
            select(ConsoleSession, ApiKey)
            .outerjoin(ApiKey, col(ApiKey.id) == col(ConsoleSession.api_key_id))
            .where(
                col(ConsoleSession.token_hash) == _digest(token),
                col(ConsoleSession.expires_at) > utcnow(),
            )
        )
    ).first()
    if row is None:
        return None
    console, key = row
    if console.api_key_id is None:
        if console.bootstrap_hash is None or console.bootstrap_hash != keys.bootstrap_hash:
            return None
        return SignedIn(ADMIN, console.csrf_token, "bootstrap key")
    if key is None or key.revoked_at is not None:
        return None
    return SignedIn(Principal(key.id, key.tenant_id, key.rate_limit), console.csrf_token, key.name)


async def end_session(session: AsyncSession, token: str | None) -> None:
    if token:
        await session.execute(
            delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _digest(token))
        )
        await session.commit()
