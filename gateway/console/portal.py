"""The tenant portal (/portal): one tenant's endpoints, deliveries and event types, opened
with a portal link and embeddable in the operator's own app.

A link (`/portal/enter?token=...`) is traded at once for a session cookie scoped to
/portal, and the browser is sent on to /portal: the token leaves the address bar and
never reaches a log line (the access log records paths without their query). Every
page acts for the session's tenant alone, through the services the API calls with a
tenant-scoped key: another tenant's id is "not found", whatever the path. Forms
carry a CSRF token derived from the session.

The endpoint form reads its fields as the console's does (`console/endpoints.py`), so
the same text gives the same body and the API's messages.
"""

from __future__ import annotations

import hmac
import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from gateway import portal_links as links
from gateway.api.deps import BoxDep, DispatcherDep, SessionDep, SettingsDep
from gateway.console.endpoints import _endpoint_fields, _schema_errors, _service_error
from gateway.console.web import BadCsrf, cookie_is_secure, redirect, secure_headers, templates
from gateway.errors import Conflict, Invalid
from gateway.outbound import endpoints as service
from gateway.outbound import reads
from gateway.outbound.schemas import EndpointCreate, EndpointUpdate, Recover
from gateway.settings import Settings
from gateway.timeutil import utcnow

router = APIRouter(prefix="/portal", include_in_schema=False)

COOKIE = "gw_portal"
PAGE_SIZE = 50
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
Short = Annotated[str | None, Query(max_length=255)]
Errors = dict[str, list[str]]


# --- what every portal page shares


def portal_render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    portal: links.PortalSession | None = None,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        template,
        {"settings": settings, "signed_in": None, "portal": portal, **(context or {})},
        status_code=status_code,
    )
    # Framed only where GATEWAY_PORTAL_FRAME_ANCESTORS allows; the console never is.
    secure_headers(response, settings, settings.portal_frame_ancestors)
    return response


def portal_error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    titles = {404: "Not found", 403: "Not allowed", 410: "Link expired", 400: "Bad request"}
    return portal_render(
        request,
        "portal/error.html",
        {"title": titles.get(status_code, "Something went wrong"), "message": message},
        status_code=status_code,
    )


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
        refused = portal_error_page(request, 410 if exc.expired else 403, exc.detail)
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


def _path(endpoint_id: str, action: str = "") -> str:
    return f"/portal/endpoints/{endpoint_id}{action}"


@router.get("", response_class=HTMLResponse)
async def endpoint_list(
    request: Request, portal: PortalDep, session: SessionDep, box: BoxDep, cursor: Short = None
) -> Response:
    found = await reads.list_endpoints(
        session,
        box,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor if cursor and _ID_RE.match(cursor) else None,
    )
    return portal_render(
        request,
        "portal/endpoints.html",
        {"endpoints": found.data, "next_cursor": found.next_cursor},
        portal=portal,
    )


def _form_page(
    request: Request,
    portal: links.PortalSession,
    form: dict[str, str],
    errors: Errors,
    endpoint: dict[str, Any] | None = None,
) -> Response:
    return portal_render(
        request,
        "portal/endpoint_form.html",
        {"form": form, "errors": errors, "endpoint": endpoint},
        status_code=422 if errors else 200,
        portal=portal,
    )


@router.get("/endpoints/new", response_class=HTMLResponse)
async def new_endpoint(request: Request, portal: PortalDep) -> Response:
    return _form_page(request, portal, {}, {})


@router.post("/endpoints/new", response_class=HTMLResponse)
async def create_endpoint(
    request: Request,
    portal: PortalDep,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> Response:
    errors: Errors = {}
    fields = _endpoint_fields(form, errors)
    body = None
    try:
        body = EndpointCreate.model_validate({**fields, "tenant_id": portal.tenant_id})
    except ValidationError as exc:
        _schema_errors(exc, errors)
    if body is not None and not errors:
        try:
            endpoint = await service.create_endpoint(session, body, settings, box)
            await session.commit()
            return redirect(_path(endpoint.id, "?created=1"))
        except Invalid as exc:
            _service_error(exc, errors)
    return _form_page(request, portal, _kept(form), errors)


def _kept(form: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k != "csrf_token"}


def _form_of(endpoint: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = endpoint.get("headers") or {}
    return {
        "url": endpoint["url"],
        "description": endpoint.get("description") or "",
        "event_types": ", ".join(endpoint.get("event_types") or []),
        "headers": "\n".join(f"{name}: {value}" for name, value in headers.items()),
        "rate_limit": str(endpoint.get("rate_limit") or ""),
    }


@router.get("/endpoints/{endpoint_id}/edit", response_class=HTMLResponse)
async def edit_endpoint(
    request: Request, endpoint_id: str, portal: PortalDep, session: SessionDep, box: BoxDep
) -> Response:
    endpoint = await service.get_endpoint(session, endpoint_id, portal.tenant_id)
    shown = reads.endpoint_out(endpoint, box)
    return _form_page(request, portal, _form_of(shown), {}, shown)


@router.post("/endpoints/{endpoint_id}/edit", response_class=HTMLResponse)
async def update_endpoint(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> Response:
    endpoint = await service.get_endpoint(session, endpoint_id, portal.tenant_id)
    shown = reads.endpoint_out(endpoint, box)
    errors: Errors = {}
    fields = _endpoint_fields(form, errors)
    fields.pop("source_ids", None)  # a tenant's endpoint takes no sources: left as it is
    body = None
    try:
        body = EndpointUpdate.model_validate(fields)
    except ValidationError as exc:
        _schema_errors(exc, errors)
    if body is not None and not errors:
        try:
            await service.update_endpoint(
                session, endpoint_id, body, settings, box, portal.tenant_id
            )
            await session.commit()
            return redirect(_path(endpoint_id, "?updated=1"))
        except Invalid as exc:
            _service_error(exc, errors)
    return _form_page(request, portal, _kept(form), errors, shown)


@router.get("/endpoints/{endpoint_id}", response_class=HTMLResponse)
async def endpoint_detail(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    created: Short = None,
    updated: Short = None,
    test: Short = None,
    requeued: Short = None,
) -> Response:
    endpoint = await service.get_endpoint(session, endpoint_id, portal.tenant_id)
    deliveries = await reads.list_deliveries(
        session, endpoint_id=endpoint_id, scope=portal.tenant_id, limit=20
    )
    notices = []
    if created:
        notices.append("Endpoint created. Reveal its signing secret below to set up your receiver.")
    if updated:
        notices.append("Changes saved.")
    if test and _ID_RE.match(test):
        notices.append(f"Test event {test} sent: it shows in the deliveries below.")
    if requeued and requeued.isdigit():
        notices.append(f"{requeued} failed deliveries queued again.")
    return portal_render(
        request,
        "portal/endpoint.html",
        {
            "endpoint": reads.endpoint_out(endpoint, box),
            "previous_expires": service.live_previous_secret_expiry(endpoint),
            "deliveries": deliveries.data,
            "notices": notices,
            "overlap_hours": settings.secret_rotation_overlap_hours,
            "recover_since": (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
        portal=portal,
    )


async def _set_disabled(
    endpoint_id: str,
    disabled: bool,
    portal: links.PortalSession,
    session: Any,
    settings: Settings,
    box: Any,
) -> Response:
    body = EndpointUpdate(disabled=disabled)
    await service.update_endpoint(session, endpoint_id, body, settings, box, portal.tenant_id)
    await session.commit()
    return redirect(_path(endpoint_id, "?updated=1"))


@router.post("/endpoints/{endpoint_id}/disable")
async def disable(
    endpoint_id: str,
    portal: PortalDep,
    _form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> Response:
    return await _set_disabled(endpoint_id, True, portal, session, settings, box)


@router.post("/endpoints/{endpoint_id}/enable")
async def enable(
    endpoint_id: str,
    portal: PortalDep,
    _form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> Response:
    return await _set_disabled(endpoint_id, False, portal, session, settings, box)


def _secret_page(
    request: Request,
    portal: links.PortalSession,
    endpoint_id: str,
    secret: str,
    previous_expires: Any,
    rotated: bool,
) -> Response:
    return portal_render(
        request,
        "portal/secret.html",
        {
            "endpoint_id": endpoint_id,
            "secret": secret,
            "previous_expires": previous_expires,
            "rotated": rotated,
        },
        portal=portal,
    )


@router.post("/endpoints/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    _form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> Response:
    endpoint, secret = await service.rotate_secret(
        session, endpoint_id, None, settings.secret_rotation_overlap_hours, box, portal.tenant_id
    )
    expires = endpoint.previous_secret_expires_at
    return _secret_page(request, portal, endpoint_id, secret, expires, True)


@router.post("/endpoints/{endpoint_id}/secret", response_class=HTMLResponse)
async def reveal(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    _form: FormDep,
    session: SessionDep,
    box: BoxDep,
) -> Response:
    secret, expires = await service.reveal_secret(session, endpoint_id, box, portal.tenant_id)
    return _secret_page(request, portal, endpoint_id, secret, expires, False)


@router.post("/endpoints/{endpoint_id}/test")
async def send_test(
    endpoint_id: str,
    portal: PortalDep,
    _form: FormDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> Response:
    published = await service.send_test(session, dispatcher, endpoint_id, portal.tenant_id)
    return redirect(_path(endpoint_id, f"?test={published.event.id}"))


@router.post("/endpoints/{endpoint_id}/recover", response_class=HTMLResponse)
async def recover(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    form: FormDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> Response:
    try:
        body = Recover.model_validate({"since": form.get("since", "")})
    except ValidationError as exc:
        messages = "; ".join(str(error.get("msg", "invalid")) for error in exc.errors())
        raise Invalid(f"since: {messages}") from None
    try:
        count = await service.recover(
            session, dispatcher, endpoint_id, body.since, None, portal.tenant_id
        )
    except Conflict as exc:
        return portal_error_page(request, 409, exc.detail)
    return redirect(_path(endpoint_id, f"?requeued={count}"))


# --- deliveries, events, event types


@router.get("/deliveries", response_class=HTMLResponse)
async def delivery_list(
    request: Request,
    portal: PortalDep,
    session: SessionDep,
    status: Short = None,
    cursor: Short = None,
) -> Response:
    status = status if status in ("pending", "succeeded", "failed") else None
    found = await reads.list_deliveries(
        session,
        status=status,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor if cursor and _ID_RE.match(cursor) else None,
    )
    return portal_render(
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
    return portal_render(request, "portal/delivery.html", {"delivery": delivery}, portal=portal)


@router.get("/events", response_class=HTMLResponse)
async def event_list(
    request: Request, portal: PortalDep, session: SessionDep, cursor: Short = None
) -> Response:
    found = await reads.list_events(
        session,
        scope=portal.tenant_id,
        limit=PAGE_SIZE,
        cursor=cursor if cursor and _ID_RE.match(cursor) else None,
    )
    return portal_render(
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
    return portal_render(
        request,
        "portal/event.html",
        {"event": event, "deliveries": deliveries.data},
        portal=portal,
    )


@router.get("/event-types", response_class=HTMLResponse)
async def event_types(request: Request, portal: PortalDep, session: SessionDep) -> Response:
    types = await reads.tenant_event_types(session, portal.tenant_id)
    return portal_render(request, "portal/event_types.html", {"types": types}, portal=portal)
