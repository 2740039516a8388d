"""Endpoint pages, the console's and the tenant portal's alike: the list, one
endpoint's page, and what the API lets you do to it (create, edit, enable, disable,
rotate or reveal its secret, test, recover, delete).

One set of handlers serves both, through a `Viewer`: who the pages act for (an
operator's console session or a tenant's portal session), where they live and how
they look. Every action calls the service its API route calls, with the viewer's
tenant as the scope: another tenant's endpoint is "not found" here as it is there.
A form that the schemas or the services refuse comes back with their messages
beside its fields.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations
# at runtime, and those of `endpoint_pages` name types local to it.
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import BoxDep, DispatcherDep, SessionDep, SettingsDep
from gateway.console.web import SignedInDep, checked_form, redirect, render
from gateway.errors import Invalid
from gateway.outbound import endpoints as service
from gateway.outbound import reads, signatures, stats
from gateway.outbound.schemas import EndpointCreate, EndpointUpdate, Recover
from gateway.portal_links import PortalSession
from gateway.signin import SignedIn
from gateway.timeutil import utcnow

router = APIRouter(prefix="/console/endpoints", include_in_schema=False)

PAGE_SIZE = 50
RECENT_DELIVERIES = 20
_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_EVENT_ID_RE = re.compile(r"^evt_[A-Za-z0-9]{1,60}$")
# What a form's text fields hold at most: the schemas say the rest.
Short = Annotated[str | None, Query(max_length=255)]

Errors = dict[str, list[str]]


def cursor_or_none(cursor: str | None) -> str | None:
    """A list's cursor from the address; anything else starts at the first page."""
    return cursor if cursor and _ID_RE.match(cursor) else None


@dataclass(frozen=True)
class Viewer:
    """Who the endpoint pages act for, where they live, and how they look."""

    scope: str | None  # the tenant they act for; None: an admin key's, every tenant
    base: str  # where one endpoint's pages live: base/<id>, base/new
    home: str  # the list of endpoints
    layout: str  # the template the pages extend
    csrf_token: str
    # The operator's console: tenants, sources and their links; a tenant's portal
    # shows its own endpoints without them.
    operator: bool
    signed_in: SignedIn | None = None
    portal: PortalSession | None = None

    def path(self, endpoint_id: str, action: str = "") -> str:
        return f"{self.base}/{endpoint_id}{action}"

    def page(
        self, request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        return render(
            request,
            template,
            {"viewer": self, **context},
            status_code=status_code,
            signed_in=self.signed_in,
            portal=self.portal,
        )


async def console_viewer(user: SignedInDep) -> Viewer:
    return Viewer(
        scope=user.principal.tenant_id,
        base="/console/endpoints",
        home="/console/endpoints",
        layout="base.html",
        csrf_token=user.csrf_token,
        operator=True,
        signed_in=user,
    )


# --- the list


@router.get("", response_class=HTMLResponse)
async def endpoint_list(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    box: BoxDep,
    tenant_id: Short = None,
    status: Short = None,
    failing: Short = None,
    cursor: Short = None,
    deleted: Short = None,
) -> Response:
    scope = user.principal.tenant_id
    # A tenant's key has its tenant already; the field is the operator's.
    tenant = ((tenant_id or "").strip() or None) if user.principal.is_admin else None
    status = status if status in ("enabled", "disabled") else None
    failing = failing if failing in ("true", "false") else None
    found = await reads.list_endpoints(
        session,
        box,
        tenant_id=tenant,
        disabled=None if status is None else status == "disabled",
        failing=None if failing is None else failing == "true",
        scope=scope,
        limit=PAGE_SIZE,
        cursor=cursor_or_none(cursor),
    )
    filters = {"tenant_id": tenant, "status": status, "failing": failing}
    next_page = None
    if found.next_cursor:
        query = {k: v for k, v in filters.items() if v} | {"cursor": found.next_cursor}
        next_page = f"/console/endpoints?{urlencode(query)}"
    return render(
        request,
        "endpoints.html",
        {
            "endpoints": found.data,
            "filters": filters,
            "next_page": next_page,
            "deleted": cursor_or_none(deleted),
        },
        signed_in=user,
    )


# --- creating and editing: the form's text, read into what the API's schemas take


def _items(text: str) -> list[str]:
    """A list typed with commas or lines between its items; each kept as typed (but for
    the spaces around it), so that a message about one names what was typed."""
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def _headers(text: str, errors: Errors) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            errors.setdefault("headers", []).append(
                f"line {number}: write each header as 'Name: value'"
            )
            continue
        headers[name.strip()] = value.strip()
    return headers


# The form's choices for `ordered`, and the API's value of each.
ORDERED_CHOICES: dict[str, bool | str] = {"false": False, "true": True, "strict": "strict"}


def _endpoint_fields(form: dict[str, str], errors: Errors, sources: bool = True) -> dict[str, Any]:
    """The fields of a create or an update body, as the API would receive them; without
    `sources` (a tenant's portal: sources are the operator's), none about origins."""
    types = _items(form.get("event_types", ""))
    origin = form.get("origin", "all")
    rate = form.get("rate_limit", "").strip()
    if origin == "sources" and not _items(form.get("source_ids", "")):
        # An empty list is "published only" to the API; here it would be a surprise.
        errors.setdefault("source_ids", []).append(
            "name at least one source, or choose 'Published only'"
        )
    fields: dict[str, Any] = {
        "url": form.get("url", "").strip(),
        "description": form.get("description", "").strip() or None,
        "event_types": types or None,
        "transformation": form.get("transformation", "").strip() or None,
        "headers": _headers(form.get("headers", ""), errors),
        "rate_limit": rate or None,
        "filter": form.get("filter", "").strip() or None,
        # A value the select does not offer goes through as typed: the schema names it.
        "ordered": ORDERED_CHOICES.get(form.get("ordered", "false"), form.get("ordered")),
    }
    scheme = form.get("signature_scheme", "").strip()
    if scheme:  # the scheme with its default options; the API sets other options
        fields["signature"] = {"scheme": scheme}
    if sources:
        fields["source_ids"] = (
            None
            if origin == "all"
            else []
            if origin == "published"
            else _items(form.get("source_ids", ""))
        )
    return fields


def _schema_errors(exc: ValidationError, errors: Errors) -> None:
    """Pydantic's messages, the same the API answers, under the field they are about."""
    for error in exc.errors():
        loc = error.get("loc", ())
        field = str(loc[0]) if loc else "form"
        errors.setdefault(field, []).append(error.get("msg", "invalid"))


def _service_error(exc: Invalid, errors: Errors) -> None:
    # A service says where as the API does: ("body", "<field>", ...).
    field = str(exc.loc[1]) if len(exc.loc) > 1 else "form"
    errors.setdefault(field, []).append(exc.detail)


def _form_of(endpoint: dict[str, Any]) -> dict[str, str]:
    """An endpoint as the form shows it."""
    sources = endpoint.get("source_ids")
    headers: dict[str, str] = endpoint.get("headers") or {}
    return {
        "url": endpoint["url"],
        "tenant_id": endpoint.get("tenant_id") or "",
        "description": endpoint.get("description") or "",
        "event_types": ", ".join(endpoint.get("event_types") or []),
        "transformation": endpoint.get("transformation") or "",
        "origin": "all" if sources is None else "sources" if sources else "published",
        "source_ids": ", ".join(sources or []),
        "headers": "\n".join(f"{name}: {value}" for name, value in headers.items()),
        "rate_limit": str(endpoint.get("rate_limit") or ""),
        "filter": endpoint.get("filter") or "",
        "signature_scheme": (endpoint.get("signature") or {}).get("scheme", "standard"),
        "ordered": next(
            (k for k, v in ORDERED_CHOICES.items() if v == endpoint.get("ordered")), "false"
        ),
    }


def _kept(form: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k != "csrf_token"}


def _recover_body(since: str, until: str, errors: Errors) -> Recover | None:
    try:
        return Recover.model_validate({"since": since.strip(), "until": until.strip() or None})
    except ValidationError as exc:
        _schema_errors(exc, errors)
        return None


# --- one endpoint


# The chart's ranges: what the select offers, each with the bucket that draws it.
RANGES: dict[str, tuple[str, timedelta, str]] = {
    "hour": ("minute", timedelta(hours=1), "the last hour, per minute"),
    "day": ("hour", timedelta(days=1), "the last day, per hour"),
    "month": ("day", timedelta(days=30), "the last 30 days, per day"),
}
CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_RIGHT, CHART_BOTTOM = 600, 150, 44, 8, 18


def _line(points: list[tuple[float, float] | None]) -> str:
    """An SVG path through the points; a None (a bucket without attempts) breaks it."""
    parts: list[str] = []
    pen_down = False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def _chart(result: stats.Stats) -> dict[str, Any]:
    """What the template draws: the lines' paths in the SVG's own units, and labels."""
    buckets = result.buckets
    span = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    step = span / max(len(buckets) - 1, 1)

    def x(index: int) -> float:
        return CHART_LEFT + index * step

    def y(fraction: float) -> float:
        return CHART_HEIGHT - fraction * (CHART_HEIGHT - 8)

    rates = [
        (x(i), y(f.success_rate)) if f.success_rate is not None else None
        for i, (_start, f) in enumerate(buckets)
    ]
    slowest = max((f.latency_ms["p95"] or 0 for _start, f in buckets), default=0) or 1
    latency = {
        name: _line(
            [
                (x(i), y((f.latency_ms[name] or 0) / slowest)) if f.attempts else None
                for i, (_start, f) in enumerate(buckets)
            ]
        )
        for name in ("p50", "p95")
    }
    fmt = "%H:%M" if result.bucket != "day" else "%m-%d"
    ticks = [0, len(buckets) // 2, len(buckets) - 1] if len(buckets) > 2 else []
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT + CHART_BOTTOM,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "bottom": CHART_HEIGHT,
        "top": y(1),
        "rate": _line(rates),
        "latency": latency,
        "slowest": slowest,
        "ticks": [
            (x(i), buckets[i][0].strftime(fmt), anchor)
            for i, anchor in zip(ticks, ("start", "middle", "end"), strict=True)
        ],
        # Dots as well as lines: a bucket between two empty ones is a point, not a line.
        "rate_dots": [point for point in rates if point is not None],
        "latency_dots": {
            name: [
                (x(i), y((f.latency_ms[name] or 0) / slowest))
                for i, (_start, f) in enumerate(buckets)
                if f.attempts
            ]
            for name in ("p50", "p95")
        },
    }


async def _stats(
    session: AsyncSession, endpoint_id: str, scope: str | None, chosen: str
) -> dict[str, Any]:
    """Success rate and latency over the chosen range, from the stats service."""
    bucket, length, label = RANGES[chosen]
    result = await stats.attempt_stats(
        session,
        since=utcnow() - length,
        bucket=bucket,
        endpoint_id=endpoint_id,
        scope=scope,
    )
    return {
        "range": chosen,
        "label": label,
        "totals": result.totals,
        "buckets": result.buckets,
        "chart": _chart(result),
    }


# --- one endpoint's pages and actions, for a viewer


def endpoint_pages(
    prefix: str,
    viewer_of: Callable[..., Awaitable[Viewer]],
    checked_form: Callable[..., Awaitable[dict[str, str]]],
) -> APIRouter:
    """The pages of one endpoint under `prefix`, for the viewer `viewer_of` resolves;
    `checked_form` reads a state-changing form once its CSRF token is checked."""
    pages = APIRouter(prefix=prefix, include_in_schema=False)
    ViewerDep = Annotated[Viewer, Depends(viewer_of)]
    FormDep = Annotated[dict[str, str], Depends(checked_form)]

    def form_page(
        request: Request,
        viewer: Viewer,
        form: dict[str, str],
        errors: Errors,
        endpoint: dict[str, Any] | None = None,
    ) -> Response:
        return viewer.page(
            request,
            "endpoints_form.html",
            {"form": form, "errors": errors, "endpoint": endpoint},
            status_code=422 if errors else 200,
        )

    @pages.get("/new", response_class=HTMLResponse)
    async def new_endpoint(request: Request, viewer: ViewerDep) -> Response:
        return form_page(request, viewer, {"origin": "all"}, {})

    @pages.post("/new", response_class=HTMLResponse)
    async def create_endpoint(
        request: Request,
        viewer: ViewerDep,
        form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        errors: Errors = {}
        fields = _endpoint_fields(form, errors, viewer.operator)
        # An admin key names the tenant in the form; any other viewer has its own.
        fields["tenant_id"] = (
            form.get("tenant_id", "").strip() or None if viewer.scope is None else viewer.scope
        )
        body = None
        try:
            body = EndpointCreate.model_validate(fields)
        except ValidationError as exc:
            _schema_errors(exc, errors)
        if body is not None and not errors:
            try:
                endpoint = await service.create_endpoint(session, body, settings, box)
                await session.commit()
                return redirect(viewer.path(endpoint.id, "?created=1"))
            except Invalid as exc:
                _service_error(exc, errors)
        return form_page(request, viewer, _kept(form), errors)

    @pages.get("/{endpoint_id}/edit", response_class=HTMLResponse)
    async def edit_endpoint(
        request: Request, endpoint_id: str, viewer: ViewerDep, session: SessionDep, box: BoxDep
    ) -> Response:
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        shown = reads.endpoint_out(endpoint, box)
        return form_page(request, viewer, _form_of(shown), {}, shown)

    @pages.post("/{endpoint_id}/edit", response_class=HTMLResponse)
    async def update_endpoint(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        shown = reads.endpoint_out(endpoint, box)
        errors: Errors = {}
        body = None
        fields = _endpoint_fields(form, errors, viewer.operator)
        if shown["kind"] == "stream":
            del fields["url"]  # it has none, and the form shows no field for one
        if fields.get("signature") == {"scheme": signatures.scheme_of(endpoint.signature)}:
            del fields["signature"]  # unchanged: keep its options as they are
        try:
            body = EndpointUpdate.model_validate(fields)
        except ValidationError as exc:
            _schema_errors(exc, errors)
        if body is not None and not errors:
            try:
                await service.update_endpoint(
                    session, endpoint_id, body, settings, box, viewer.scope
                )
                await session.commit()
                return redirect(viewer.path(endpoint_id, "?updated=1"))
            except Invalid as exc:
                _service_error(exc, errors)
        return form_page(request, viewer, _kept(form), errors, shown)

    @pages.get("/{endpoint_id}", response_class=HTMLResponse)
    async def endpoint_detail(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
        created: Short = None,
        updated: Short = None,
        test: Short = None,
        requeued: Short = None,
        chart: Short = None,
    ) -> Response:
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        deliveries = await reads.list_deliveries(
            session, endpoint_id=endpoint_id, scope=viewer.scope, limit=RECENT_DELIVERIES
        )
        notices = []
        if created:
            notices.append(
                "Endpoint created. Reveal its signing secret below to set up the receiver."
            )
        if updated:
            notices.append("Changes saved.")
        if test and _EVENT_ID_RE.match(test):
            notices.append(f"Test event {test} sent: it shows in the deliveries below.")
        if requeued and requeued.isdigit():
            notices.append(f"{requeued} failed deliveries queued again.")
        chosen = chart if chart in RANGES else "day"
        return viewer.page(
            request,
            "endpoints_detail.html",
            {
                "endpoint": reads.endpoint_out(endpoint, box),
                "previous_expires": service.live_previous_secret_expiry(endpoint),
                "deliveries": deliveries.data,
                "more_deliveries": deliveries.next_cursor is not None,
                "notices": notices,
                "stats": await _stats(session, endpoint_id, viewer.scope, chosen),
                "ranges": {key: label for key, (_b, _l, label) in RANGES.items()},
                "overlap_hours": settings.secret_rotation_overlap_hours,
            },
        )

    async def set_disabled(
        endpoint_id: str, disabled: bool, viewer: Viewer, session: Any, settings: Any, box: Any
    ) -> Response:
        body = EndpointUpdate(disabled=disabled)
        await service.update_endpoint(session, endpoint_id, body, settings, box, viewer.scope)
        await session.commit()
        return redirect(viewer.path(endpoint_id, "?updated=1"))

    @pages.post("/{endpoint_id}/disable")
    async def disable(
        endpoint_id: str,
        viewer: ViewerDep,
        _form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        return await set_disabled(endpoint_id, True, viewer, session, settings, box)

    @pages.post("/{endpoint_id}/enable")
    async def enable(
        endpoint_id: str,
        viewer: ViewerDep,
        _form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        return await set_disabled(endpoint_id, False, viewer, session, settings, box)

    def secret_page(
        request: Request,
        viewer: Viewer,
        endpoint_id: str,
        secret: str,
        previous_expires: Any,
        rotated: bool,
        overlap_hours: float,
    ) -> Response:
        return viewer.page(
            request,
            "endpoints_secret.html",
            {
                "endpoint_id": endpoint_id,
                "secret": secret,
                "previous_expires": previous_expires,
                "rotated": rotated,
                "overlap_hours": overlap_hours,
            },
        )

    @pages.post("/{endpoint_id}/rotate", response_class=HTMLResponse)
    async def rotate(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        _form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        hours = settings.secret_rotation_overlap_hours
        endpoint, secret = await service.rotate_secret(
            session, endpoint_id, None, hours, box, viewer.scope
        )
        expires = endpoint.previous_secret_expires_at
        return secret_page(request, viewer, endpoint_id, secret, expires, True, hours)

    @pages.post("/{endpoint_id}/secret", response_class=HTMLResponse)
    async def reveal(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        _form: FormDep,
        session: SessionDep,
        settings: SettingsDep,
        box: BoxDep,
    ) -> Response:
        secret, expires = await service.reveal_secret(session, endpoint_id, box, viewer.scope)
        hours = settings.secret_rotation_overlap_hours
        return secret_page(request, viewer, endpoint_id, secret, expires, False, hours)

    @pages.post("/{endpoint_id}/test")
    async def send_test(
        endpoint_id: str,
        viewer: ViewerDep,
        _form: FormDep,
        session: SessionDep,
        dispatcher: DispatcherDep,
    ) -> Response:
        published = await service.send_test(session, dispatcher, endpoint_id, viewer.scope)
        return redirect(viewer.path(endpoint_id, f"?test={published.event.id}"))

    def recover_page(
        request: Request,
        viewer: Viewer,
        endpoint: Any,
        since: str,
        until: str,
        count: int | None,
        errors: Errors,
    ) -> Response:
        return viewer.page(
            request,
            "endpoints_recover.html",
            {
                "endpoint": endpoint,
                "since": since,
                "until": until,
                "count": count,
                "errors": errors,
            },
            status_code=422 if errors else 200,
        )

    @pages.get("/{endpoint_id}/recover", response_class=HTMLResponse)
    async def recover_preview(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        session: SessionDep,
        since: Short = None,
        until: Short = None,
    ) -> Response:
        """The form; once it names a time, how many deliveries recovering would re-queue."""
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        errors: Errors = {}
        count = None
        if since is None:
            since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            body = _recover_body(since, until or "", errors)
            if body is not None:
                count = await service.count_recoverable(
                    session, endpoint_id, body.since, body.until, viewer.scope
                )
        return recover_page(request, viewer, endpoint, since, until or "", count, errors)

    @pages.post("/{endpoint_id}/recover")
    async def recover(
        request: Request,
        endpoint_id: str,
        viewer: ViewerDep,
        form: FormDep,
        session: SessionDep,
        dispatcher: DispatcherDep,
    ) -> Response:
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        errors: Errors = {}
        since, until = form.get("since", ""), form.get("until", "")
        body = _recover_body(since, until, errors)
        if body is None:
            return recover_page(request, viewer, endpoint, since, until, None, errors)
        count = await service.recover(
            session, dispatcher, endpoint_id, body.since, body.until, viewer.scope
        )
        return redirect(viewer.path(endpoint_id, f"?requeued={count}"))

    @pages.get("/{endpoint_id}/delete", response_class=HTMLResponse)
    async def delete_confirm(
        request: Request, endpoint_id: str, viewer: ViewerDep, session: SessionDep
    ) -> Response:
        endpoint = await service.get_endpoint(session, endpoint_id, viewer.scope)
        return viewer.page(request, "endpoints_delete.html", {"endpoint": endpoint})

    @pages.post("/{endpoint_id}/delete")
    async def delete(
        endpoint_id: str, viewer: ViewerDep, _form: FormDep, session: SessionDep
    ) -> Response:
        await service.delete_endpoint(session, endpoint_id, viewer.scope)
        await session.commit()
        return redirect(f"{viewer.home}?{urlencode({'deleted': endpoint_id})}")

    return pages


# The console's list is above; one endpoint's pages follow it under the same prefix.
router.include_router(endpoint_pages("", console_viewer, checked_form))
