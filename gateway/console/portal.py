"""The tenant portal (/portal): one tenant's endpoints, deliveries and event types, opened
with a portal link and embeddable in the operator's own app.

A link (`/portal/enter?token=...`) is traded at once for a session cookie scoped to
/portal, and the browser is sent on to /portal: the token leaves the address bar and
never reaches a log line (the access log records paths without their query). Every
page acts for the session's tenant alone, through the services the API calls with a
tenant-scoped key: another tenant's id is "not found", whatever the path. Forms
carry a CSRF token derived from the session.

One endpoint's pages are the console's (`console/endpoints.py`), for a viewer that is
this tenant: the same handlers, forms and messages, in the portal's look.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway import portal_links as links
from gateway.api.deps import BoxDep, SessionDep, SettingsDep
from gateway.console.endpoints import PAGE_SIZE, Short, Viewer, cursor_or_none, endpoint_pages
from gateway.console.web import BadCsrf, cookie_is_secure, error_page, redirect, render
from gateway.outbound import reads
from gateway.outbound.catalogue import shown_event_types
from gateway.settings import Settings
from gateway.timeutil import utcnow

router = APIRouter(prefix="/portal", include_in_schema=False)
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "cancelled", "skipped")

COOKIE = "gw_portal"


# --- what every portal page shares


async def portal_session(request: Request, session: SessionDep, box: BoxDep) -> links.PortalSession:
    """The tenant of this browser's portal session; a clear refusal without one."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise links.LinkRefused(
            "This browser has no portal session, or it has ended: open the portal with "
            "the link you were given, or ask for a new one."
        )
    return await links.resolve_session(session, box, token)


PortalDep = Annotated[links.PortalSession, Depends(portal_session)]


async def checked_form(request: Request, portal: PortalDep) -> dict[str, str]:
    """A state-changing form's fields, once its CSRF token matches the session's."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not hmac.compare_digest(fields.get("csrf_token", ""), portal.csrf_token):
        raise BadCsrf
    return fields


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def _same_site(request: Request, settings: Settings) -> tuple[str, bool]:
    """(SameSite, Secure) of the session cookie. Framed by another site, a browser sends
    only SameSite=None cookies, which it accepts only with Secure (so over https): that
    is chosen when the gateway is reached over https and other origins may frame the
    portal. Otherwise Lax, which still comes with the top-level navigation from a link
    in an email or another site (Strict would not, on the redirect that follows)."""
    framed = settings.portal_frame_ancestors not in ("'none'", "'self'")
    if framed and (settings.public_url or "").startswith("https://"):
        return "none", True
    return "lax", cookie_is_secure(request)


# --- entering


@router.get("/enter", response_class=HTMLResponse)
async def enter(
    request: Request,
    session: SessionDep,
    box: BoxDep,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=4096)] = "",
) -> Response:
    try:
        cookie, expires_at = await links.open_link(session, box, token)
    except links.LinkRefused as exc:
        refused = error_page(request, 410 if exc.expired else 403, exc.detail)
        refused.delete_cookie(COOKIE, path="/portal")
        return refused
    same_site, secure = _same_site(request, settings)
    response = redirect("/portal")
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max(1, int((expires_at - utcnow()).total_seconds())),
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
        secure=secure,
        path="/portal",
    )
    return response


# --- endpoints


@router.get("", response_class=HTMLResponse)
async def endpoint_list(
    request: Request, portal: PortalDep, session: SessionDep, box: BoxDep, cursor: Short = None
) -> Response:
    found = await reads.list_endpoints(
        session,
        box,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor_or_none(cursor),
    )
    return render(
        request,
        "portal/endpoints.html",
        {"endpoints": found.data, "next_cursor": found.next_cursor},
        portal=portal,
    )


async def portal_viewer(portal: PortalDep) -> Viewer:
    return Viewer(
        scope=portal.tenant_id,
        base="/portal/endpoints",
        home="/portal",
        layout="portal/base.html",
        csrf_token=portal.csrf_token,
        operator=False,
        portal=portal,
    )


router.include_router(endpoint_pages("/endpoints", portal_viewer, checked_form))


# --- deliveries, events, event types


@router.get("/deliveries", response_class=HTMLResponse)
async def delivery_list(
    request: Request,
    portal: PortalDep,
    session: SessionDep,
    status: Short = None,
    cursor: Short = None,
) -> Response:
    status = status if status in DELIVERY_STATUSES else None
    found = await reads.list_deliveries(
        session,
        status=status,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor_or_none(cursor),
    )
    return render(
        request,
        "portal/deliveries.html",
        {"deliveries": found.data, "next_cursor": found.next_cursor, "status": status},
        portal=portal,
    )


@router.get("/deliveries/{delivery_id}", response_class=HTMLResponse)
async def delivery_detail(
    request: Request, delivery_id: str, portal: PortalDep, session: SessionDep
) -> Response:
    delivery = await reads.get_delivery_with_attempts(session, delivery_id, portal.tenant_id)
    return render(request, "portal/delivery.html", {"delivery": delivery}, portal=portal)


@router.get("/events", response_class=HTMLResponse)
async def event_list(
    request: Request, portal: PortalDep, session: SessionDep, cursor: Short = None
) -> Response:
    found = await reads.list_events(
        session,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor_or_none(cursor),
    )
    return render(
        request,
        "portal/events.html",
        {"events": found.data, "next_cursor": found.next_cursor},
        portal=portal,
    )


@router.get("/events/{event_id}", response_class=HTMLResponse)
async def event_detail(
    request: Request, event_id: str, portal: PortalDep, session: SessionDep
) -> Response:
    event = await reads.get_event_detail(session, event_id, portal.tenant_id)
    deliveries = await reads.list_deliveries(
        session, event_id=event_id, scope=portal.tenant_id, limit=PAGE_SIZE
    )
    return render(
        request,
        "portal/event.html",
        {"event": event, "deliveries": deliveries.data},
        portal=portal,
    )


@router.get("/event-types", response_class=HTMLResponse)
async def event_types(request: Request, portal: PortalDep, session: SessionDep) -> Response:
    """The catalogue (without archived types) when the operator keeps one; otherwise the
    types this tenant has been sent so far."""
    catalogue = await shown_event_types(session)
    types = [] if catalogue else await reads.tenant_event_types(session, portal.tenant_id)
    return render(
        request,
        "portal/event_types.html",
        {"catalogue": catalogue, "types": types},
        portal=portal,
    )
