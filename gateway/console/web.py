"""What every console page shares: templates, sign-in, CSRF, security headers, errors."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.api.deps import SessionDep
from gateway.auth import KeyStore
from gateway.errors import GatewayError
from gateway.portal_links import PortalSession
from gateway.settings import Settings
from gateway.signin import SignedIn, resolve_session

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "gw_console"
LOGIN_CSRF_COOKIE = "gw_login_csrf"

templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html


class SignInRequired(Exception):
    """A page asked for without a session: the handler sends the browser to sign in."""

    def __init__(self, path: str) -> None:
        self.path = path


class BadCsrf(Exception):
    """A state-changing form without its session's CSRF token: refused, nothing done."""


def content_security_policy(settings: Settings, frame_ancestors: str = "'none'") -> str:
    images = "'self' data:"
    if settings.brand_logo_url and settings.brand_logo_url.startswith("https://"):
        parts = urlsplit(settings.brand_logo_url)
        images += f" https://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {frame_ancestors}"
    )


def secure_headers(response: Response, settings: Settings, frame_ancestors: str = "'none'") -> None:
    response.headers["Content-Security-Policy"] = content_security_policy(settings, frame_ancestors)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    if frame_ancestors == "'none'":
        response.headers["X-Frame-Options"] = "DENY"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    signed_in: SignedIn | None = None,
    portal: PortalSession | None = None,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        template,
        {"settings": settings, "signed_in": signed_in, "portal": portal, **(context or {})},
        status_code=status_code,
    )
    # Portal pages are framed where GATEWAY_PORTAL_FRAME_ANCESTORS allows; the console never.
    framing = settings.portal_frame_ancestors if is_portal(request) else "'none'"
    secure_headers(response, settings, framing)
    return response


def cookie_is_secure(request: Request) -> bool:
    public = request.app.state.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


async def signed_in(request: Request, session: SessionDep) -> SignedIn:
    """The session of this request; otherwise the browser is sent to sign in."""
    keys: KeyStore = request.app.state.keys
    found = await resolve_session(session, keys, request.cookies.get(SESSION_COOKIE))
    if found is None:
        # The filters in the address come back too, after signing in.
        query = request.url.query
        raise SignInRequired(request.url.path + (f"?{query}" if query else ""))
    return found


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


async def checked_form(request: Request, user: SignedInDep) -> dict[str, str]:
    """A state-changing form's fields, once its CSRF token matches the session's."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not hmac.compare_digest(fields.get("csrf_token", ""), user.csrf_token):
        raise BadCsrf
    return fields


CheckedFormDep = Annotated[dict[str, str], Depends(checked_form)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def sign_in_redirect(path: str) -> RedirectResponse:
    return redirect(f"/console/login?next={quote(path, safe='')}")


def safe_next(value: str | None) -> str:
    """Only a console path: a sign-in must never send the browser elsewhere."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    titles = {
        404: "Not found",
        403: "Not allowed",
        400: "Bad request",
        409: "Not possible now",
        410: "Link expired",
        429: "Too many requests",
    }
    return render(
        request,
        # A portal page keeps the tenant's own look (and no console navigation).
        "portal/error.html" if is_portal(request) else "error.html",
        {"title": titles.get(status_code, "Something went wrong"), "message": message},
        status_code=status_code,
    )


def is_page(request: Request) -> bool:
    return (
        request.url.path == "/console"
        or request.url.path.startswith("/console/")
        or is_portal(request)
    )


def is_portal(request: Request) -> bool:
    return request.url.path == "/portal" or request.url.path.startswith("/portal/")


def gateway_error_page(request: Request, exc: GatewayError) -> HTMLResponse:
    # Another tenant's object is "not found" in the API; it is here too.
    return error_page(request, exc.status_code, str(exc.detail))
