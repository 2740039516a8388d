"""Portal links: a URL that opens one tenant's portal, as a signed token with nothing stored.

A link is a JWT (HS256) naming the tenant, when it was issued and when it expires,
signed with a key derived from GATEWAY_SECRET_KEY (`SecretBox.derive_key`), so that
rotating that key voids every link at once. Revoking a tenant's links stores one row:
links of that tenant issued before then are void. Opening a link trades it for a
portal session: another token of the same tenant, issue time and expiry, with its
own audience, so that a session cookie cannot be pasted as a link or the reverse;
its forms carry a CSRF token derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crypto import SecretBox
from gateway.errors import Forbidden
from gateway.store.models import PortalRevocation
from gateway.timeutil import as_utc, utcnow
from gateway.validation import Input, TenantId

LINK = "portal-link"
SESSION = "portal-session"
MAX_SECONDS = 7 * 24 * 3600
DEFAULT_SECONDS = 3600
_ALGORITHM = "HS256"


class LinkRefused(Forbidden):
    """A link or session that does not open the portal; `expired` tells which page to show."""

    def __init__(self, detail: str, expired: bool = False) -> None:
        super().__init__(detail)
        self.expired = expired


@dataclass(frozen=True)
class PortalSession:
    """Who a portal request acts for: one tenant, until `expires_at` at the latest."""

    tenant_id: str
    expires_at: datetime
    csrf_token: str


def _key(box: SecretBox) -> bytes:
    return box.derive_key("gateway portal links v1")


def _sign(box: SecretBox, audience: str, tenant_id: str, issued: float, expires: float) -> str:
    claims = {"aud": audience, "sub": tenant_id, "iat": issued, "exp": expires}
    return jwt.encode(claims, _key(box), algorithm=_ALGORITHM)


def create_link(box: SecretBox, tenant_id: str, expires_in: int) -> tuple[str, datetime]:
    """A link token for the tenant and when it expires. Nothing is stored."""
    now = utcnow()
    expires = now + timedelta(seconds=expires_in)
    # Issue times keep their fraction of a second: a link made just after a revocation
    # must not fall in the same whole second as the revocation and be void with it.
    token = _sign(box, LINK, tenant_id, now.timestamp(), expires.timestamp())
    return token, expires


def _claims(box: SecretBox, token: str, audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            _key(box),
            algorithms=[_ALGORITHM],
            audience=audience,
            options={"require": ["aud", "sub", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise LinkRefused("This portal link has expired.", expired=True) from None
    except jwt.InvalidTokenError:
        raise LinkRefused("This portal link is not valid.") from None


async def _check_not_revoked(session: AsyncSession, tenant_id: str, issued: float) -> None:
    revoked = await session.get(PortalRevocation, tenant_id)
    if revoked is not None and issued < as_utc(revoked.revoked_before).timestamp():
        raise LinkRefused("This portal link has been revoked.")


async def open_link(session: AsyncSession, box: SecretBox, token: str) -> tuple[str, datetime]:
    """A portal session's token for a valid link, and when it ends (the link's expiry).
    `LinkRefused` for an expired, tampered or revoked link."""
    claims = _claims(box, token, LINK)
    tenant_id, issued, expires = claims["sub"], float(claims["iat"]), float(claims["exp"])
    await _check_not_revoked(session, tenant_id, issued)
    return _sign(box, SESSION, tenant_id, issued, expires), datetime.fromtimestamp(expires, UTC)


async def resolve_session(session: AsyncSession, box: SecretBox, token: str) -> PortalSession:
    """The portal session of a cookie: refused once its link expires or is revoked
    (checked on every request, so a revocation ends open sessions at once)."""
    claims = _claims(box, token, SESSION)
    tenant_id, issued = claims["sub"], float(claims["iat"])
    await _check_not_revoked(session, tenant_id, issued)
    csrf = hmac.new(_key(box), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()
    return PortalSession(tenant_id, datetime.fromtimestamp(float(claims["exp"]), UTC), csrf)


async def revoke_links(session: AsyncSession, tenant_id: str) -> datetime:
    """Void every link of the tenant issued until now, and the sessions opened with them.
    Committed. Links created afterwards work."""
    now = utcnow()
    row = await session.get(PortalRevocation, tenant_id)
    if row is None:
        session.add(PortalRevocation(tenant_id=tenant_id, revoked_before=now))
    else:
        row.revoked_before = now
    await session.commit()
    return now


def link_url(token: str, public_url: str | None, request_base: str) -> str:
    """The link as given out: on GATEWAY_PUBLIC_URL when set, else on the address the
    request that made it came to; the token in the query, which no log line records."""
    return f"{(public_url or request_base).rstrip('/')}/portal/enter?token={token}"


# Request and response bodies

_TENANT_DOC = "The tenant whose portal the link opens: it sees and manages that tenant alone."
ExpiresIn = Annotated[int, Field(ge=1, le=MAX_SECONDS)]


class PortalLinkCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tenant_id": "acme", "expires_in": 3600}]}
    )

    tenant_id: TenantId = Field(description=_TENANT_DOC)
    expires_in: ExpiresIn = Field(
        DEFAULT_SECONDS,
        description="Seconds until the link, and any portal session opened with it, stops "
        "working: 1 to 604800 (7 days); 3600 when not given.",
    )


class PortalLinkOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/portal/enter?token=eyJhbGciOiJIUzI1NiIs"
                    "InR5cCI6IkpXVCJ9.eyJhdWQiOiJwb3J0YWwtbGluayIsInN1YiI6ImFjbWUifQ.c2lnbmF0dXJl",
                    "expires_at": "2026-01-15T09:00:41.906000Z",
                }
            ]
        }
    )

    url: str = Field(
        description="The link to give the tenant (or to open in a frame of your app): "
        "anyone holding it can manage that tenant's endpoints until it expires."
    )
    expires_at: datetime = Field(description="When the link stops working (RFC 3339, UTC).")


class PortalLinksRevoke(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tenant_id": "acme"}]})

    tenant_id: TenantId = Field(
        description="The tenant whose links, all issued until now, stop working, with the "
        "portal sessions opened with them."
    )
