"""Sign-in, sign-out and the overview: the console's front door."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import SessionDep, client_address
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
from gateway.inbound.refusals import recent_refusals
from gateway.outbound.reads import list_events
from gateway.outbound.stats import Stats, attempt_stats, backlog, failing_endpoints
from gateway.signin import end_session, open_session
from gateway.timeutil import as_utc, utcnow

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next)


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
        return _login_page(request, next, "The form expired: sign in again.", 400)
    if failures.blocked_for(address) > 0:
        return _login_page(request, next, "Too many failed sign-ins: wait a moment.", 429)
    keys: KeyStore = request.app.state.keys
    try:
        token, _principal = await open_session(
            session, keys, api_key.strip(), request.app.state.settings.console_session_hours
        )
    except Unauthorized:
        failures.failed(address)
        return _login_page(request, next, "That API key is not valid.", 401)
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


def _login_page(
    request: Request, next: str | None, error: str | None = None, status_code: int = 200
) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        {"next": safe_next(next), "csrf_token": token, "error": error},
        status_code=status_code,
    )
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


@router.post("/logout")
async def logout(request: Request, session: SessionDep, _form: CheckedFormDep) -> Response:
    await end_session(session, request.cookies.get(SESSION_COOKIE))
    response: RedirectResponse = redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, user: SignedInDep, session: SessionDep) -> Response:
    """Deliveries over the last hour and day, latency, backlog, what is failing now and
    (for admins) the inbound requests refused lately. The live section is this same
    page: console.js fetches it again and swaps the section in."""
    scope = user.principal.tenant_id
    hour = await attempt_stats(session, bucket="minute", scope=scope, bucket_percentiles=False)
    # The day's counts only: ranking a day of durations costs more than the rest of
    # the page together on a busy gateway, and the hour's latency is the one to watch.
    day = await attempt_stats(session, bucket="hour", scope=scope, percentiles=False)
    context = {
        "hour": hour,
        "day": day,
        "hour_chart": _chart(hour, "Last hour, per minute", "%H:%M"),
        "day_chart": _chart(day, "Last 24 hours, per hour", "%H:00"),
        "backlog": await backlog(session, scope),
        "failing": await failing_endpoints(session, scope, limit=20),
        "refusals": await recent_refusals(session, limit=10) if user.principal.is_admin else None,
        "events": (await list_events(session, scope=scope, limit=10)).data,
        "now": _when(utcnow()),
        "when": _when,
        "age": _age,
    }
    return render(request, "overview.html", context, signed_in=user)


# The charts' drawing area, in SVG user units (the SVG scales to the card's width).
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 720, 180, 12


def _chart(stats: Stats, title: str, label: str) -> dict[str, Any]:
    """Stacked bars per bucket (succeeded, put off to a retry, failed for good), as
    rectangles the template draws, and the same figures as rows for a table."""
    buckets = stats.buckets
    peak = max((f.attempts for _, f in buckets), default=0)
    scale = (CHART_HEIGHT - CHART_TOP) / peak if peak else 0.0
    step = CHART_WIDTH / max(len(buckets), 1)
    bars = []
    rows = []
    for i, (start, figures) in enumerate(buckets):
        y = float(CHART_HEIGHT)
        segments = []
        for kind, value in (
            ("ok", figures.succeeded),
            ("retried", figures.retried),
            ("failed", figures.given_up),
        ):
            height = value * scale
            if value:
                y -= height
                segments.append({"kind": kind, "y": round(y, 1), "height": round(height, 1)})
        when = start.strftime(label)
        bars.append(
            {
                "x": round(i * step + step * 0.1, 1),
                "width": round(step * 0.8, 1),
                "segments": segments,
                "tip": f"{when}: {figures.succeeded} succeeded, {figures.retried} put off, "
                f"{figures.given_up} failed",
            }
        )
        rows.append((when, figures))
    ticks = [
        {"x": round(i * step + step / 2, 1), "text": start.strftime(label)}
        for i, (start, _) in enumerate(buckets)
        # Every few bars, and none so near an edge that its text would be cut.
        if i % max(1, len(buckets) // 6) == 0 and 24 < i * step + step / 2 < CHART_WIDTH - 24
    ]
    return {
        "title": title,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "peak": peak,
        "bars": bars,
        "ticks": ticks,
        "rows": rows,
        "desc": f"{stats.totals.attempts} attempts: {stats.totals.succeeded} succeeded, "
        f"{stats.totals.retried} failed and put off to a retry, {stats.totals.given_up} "
        f"failed for good; at most {peak} in one bucket.",
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


@router.get("/brand.css")
async def brand_css(request: Request) -> Response:
    """The accent colour from the settings, as a stylesheet: the CSP allows no inline style."""
    accent = request.app.state.settings.brand_accent  # validated as #rrggbb
    return Response(
        f":root {{ --accent: {accent}; }}\n",
        media_type="text/css",
        headers={"Cache-Control": "max-age=300"},
    )
