"""`/v1/portal-links`: links that open one tenant's portal, and revoking them. Admin keys only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from gateway.api.deps import JSON_BODY, BoxDep, PrincipalDep, SessionDep, SettingsDep
from gateway.api.schemas import error_responses
from gateway.portal_links import (
    PortalLinkCreate,
    PortalLinkOut,
    PortalLinksRevoke,
    create_link,
    link_url,
    revoke_links,
)


async def _admin_only(principal: PrincipalDep) -> None:
    principal.require_admin()


# A tenant-scoped key must not mint links (to its own portal or any other): the
# operator decides who gets one.
router = APIRouter(
    prefix="/v1/portal-links",
    tags=["portal links"],
    dependencies=[Depends(_admin_only)],
    responses=error_responses(403),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PortalLinkOut,
    dependencies=JSON_BODY,
    responses=error_responses(413, 415),
    response_description="The link; nothing is stored, so it is shown in this answer only",
)
async def create_portal_link(
    body: PortalLinkCreate, request: Request, settings: SettingsDep, box: BoxDep
) -> dict[str, object]:
    """A URL that signs its holder in to the tenant's portal until `expires_at`.
    Absolute on GATEWAY_PUBLIC_URL when set, else on the address this request came to."""
    token, expires_at = create_link(box, body.tenant_id, body.expires_in)
    url = link_url(token, settings.public_url, str(request.base_url))
    return {"url": url, "expires_at": expires_at}


@router.post(
    "/revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=JSON_BODY,
    responses=error_responses(413, 415),
    response_description="Every link of the tenant issued until now no longer works",
)
async def revoke_portal_links(body: PortalLinksRevoke, session: SessionDep) -> Response:
    """Void all the tenant's links issued until now, and end the portal sessions opened
    with them at once. Links created afterwards work."""
    await revoke_links(session, body.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
