"""Sign-in, sign-out and the overview: the console's front door."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import BoxDep, SessionDep, client_address
from gateway.auth import KeyStore
from gateway.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CheckedFormDep,
    SignedInDep,
    cookie_is_secure,
    new_login_csrf,
    redirect,
    render,
    safe_next,
)
from gateway.errors import Unauthorized
from gateway.failures import FailureLimiter
from gateway.outbound.reads import list_endpoints, list_events
from gateway.signin import end_session, open_session

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    token = new_login_csrf()
    response = render(request, "login.html", {"next": safe_next(next), "csrf_token": token})
    # Double-submit: the form's token must match this cookie, so no other site can
    # sign a browser in under its own key.
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request),
        path="/console/login",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/console",
) -> Response:
    failures: FailureLimiter = request.app.state.failures
    address = client_address(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_again(request, next, "The form expired: sign in again.", 400)
    if failures.blocked_for(address) > 0:
        return _login_again(request, next, "Too many failed sign-ins: wait a moment.", 429)
    keys: KeyStore = request.app.state.keys
    try:
        token, _principal = await open_session(
            session, keys, api_key.strip(), request.app.state.settings.console_session_hours
        )
    except Unauthorized:
        failures.failed(address)
        return _login_again(request, next, "That API key is not valid.", 401)
    response: Response = redirect(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(request.app.state.settings.console_session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request),
        path="/console",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


def _login_again(request: Request, next: str, message: str, status_code: int) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        {"next": safe_next(next), "csrf_token": token, "error": message},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cookie_is_secure(request),
        path="/console/login",
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, _form: CheckedFormDep) -> Response:
    await end_session(session, request.cookies.get(SESSION_COOKIE))
    response: RedirectResponse = redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("", response_class=HTMLResponse)
async def overview(
    request: Request, user: SignedInDep, session: SessionDep, box: BoxDep
) -> Response:
    scope = user.principal.tenant_id
    endpoints = await list_endpoints(session, box, scope=scope, limit=250)
    failing = [e for e in endpoints.data if e.get("failing_since") or e.get("disabled")]
    events = await list_events(session, scope=scope, limit=10)
    return render(
        request,
        "overview.html",
        {"failing": failing, "events": events.data, "endpoint_count": len(endpoints.data)},
        signed_in=user,
    )


@router.get("/brand.css")
async def brand_css(request: Request) -> Response:
    """The accent colour from the settings, as a stylesheet: the CSP allows no inline style."""
    accent = request.app.state.settings.brand_accent  # validated as #rrggbb
    return Response(
        f":root {{ --accent: {accent}; }}\n",
        media_type="text/css",
        headers={"Cache-Control": "max-age=300"},
    )
