"""Events and deliveries: the list with its filters, an event with the request as received
and every attempt of each delivery, retrying one delivery, and retrying all the failed
deliveries of a filter (counted first, then followed as it goes)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway.api.deps import DispatcherDep, SessionDep
from gateway.console.web import CheckedFormDep, SignedInDep, redirect, render, safe_next, templates
from gateway.errors import NotFound
from gateway.outbound import bulk
from gateway.outbound.endpoints import retry_delivery
from gateway.outbound.reads import (
    EventFilter,
    event_deliveries,
    get_delivery_with_attempts,
    get_event_detail,
    list_events,
)
from gateway.signin import SignedIn
from gateway.timeutil import as_utc, rfc3339
from gateway.validation import storable

router = APIRouter(prefix="/console", include_in_schema=False)
templates.env.filters.setdefault("rfc3339", rfc3339)

PAGE_SIZE = 50
STATUSES = ("failed", "pending", "succeeded", "cancelled", "skipped")
_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_]{1,64}$")
FILTER_FIELDS = ("type", "tenant_id", "source_id", "since", "until", "delivery_status")


@dataclass
class Filters:
    """A list's filters as typed (to show them again) and as the service takes them."""

    values: dict[str, str]
    events: EventFilter
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> str:
        """The filters as a query string, for links that keep them (paging, bulk retry)."""
        return urlencode({k: v for k, v in self.values.items() if v})

    @property
    def shown(self) -> list[tuple[str, str]]:
        names = {
            "type": "type",
            "tenant_id": "tenant",
            "source_id": "source",
            "since": "from",
            "until": "until",
            "delivery_status": "with a delivery",
        }
        return [(names[k], v) for k, v in self.values.items() if v]


def _time(values: dict[str, str], name: str, errors: dict[str, str]) -> datetime | None:
    """A time typed in a datetime-local field (UTC), or given in RFC 3339 in a link;
    shown again as the field takes it."""
    if not values[name]:
        return None
    try:
        when = as_utc(datetime.fromisoformat(values[name]))
    except (ValueError, OverflowError):  # past the calendar's edge once in UTC
        errors[name] = "not a date and time (2026-01-15T08:00, in UTC)"
        return None
    values[name] = when.strftime("%Y-%m-%dT%H:%M:%S")
    return when


def parse_filters(fields: Mapping[str, str], user: SignedIn) -> Filters:
    """The filters of a list's query string (or a form repeating them). A tenant user's
    tenant is its own whatever is asked, and sources are the operator's: both fields
    are ignored for one."""
    values = {name: fields.get(name, "").strip()[:255] for name in FILTER_FIELDS}
    if not user.principal.is_admin:
        values["tenant_id"] = values["source_id"] = ""
    errors: dict[str, str] = {}
    for name, value in values.items():
        try:
            storable(value)  # a NUL would make PostgreSQL fail the query, not find nothing
        except ValueError as exc:
            errors[name] = str(exc)
            values[name] = ""
    if values["source_id"] and not _ID.match(values["source_id"]):
        errors["source_id"] = "not a source id (src_...)"
    if values["delivery_status"] and values["delivery_status"] not in STATUSES:
        errors["delivery_status"] = f"one of {', '.join(STATUSES)}"
    since = _time(values, "since", errors)
    until = _time(values, "until", errors)
    if since and until and since >= until:
        errors["until"] = "must be after the start of the range"
    events = EventFilter(
        event_type=values["type"] or None,
        tenant_id=values["tenant_id"] or None,
        source_id=values["source_id"] or None,
        since=since,
        until=until,
        delivery_status=values["delivery_status"] or None,
    )
    return Filters(values, events, errors)


@router.get("/events", response_class=HTMLResponse)
async def events_list(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=255)] = "",
    cursor: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    scope = user.principal.tenant_id
    filters = parse_filters(request.query_params, user)
    context: dict[str, object] = {"filters": filters, "q": q, "events": [], "next_cursor": None}
    q = q.strip()
    if q:
        # An exact id goes straight to its page; the look-up is the page's own (scoped).
        try:
            if q.startswith("evt_"):
                await get_event_detail(session, q, scope)
                return redirect(f"/console/events/{q}")
            if q.startswith("dlv_"):
                await get_delivery_with_attempts(session, q, scope)
                return redirect(f"/console/deliveries/{q}")
            context["search_error"] = "Search by an event id (evt_...) or a delivery id (dlv_...)."
        except NotFound:
            context["search_error"] = f"No event or delivery has the id {q}."
        return render(request, "events.html", context, status_code=404, signed_in=user)
    if cursor and not _CURSOR.match(cursor):
        filters.errors["cursor"] = "not a page of this list: start again from the first"
    if filters.errors:
        return render(request, "events.html", context, status_code=400, signed_in=user)
    found = await list_events(
        session,
        event_type=filters.events.event_type,
        tenant_id=filters.events.tenant_id,
        source_id=filters.events.source_id,
        since=filters.events.since,
        until=filters.events.until,
        delivery_status=filters.events.delivery_status,
        scope=scope,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    context.update(events=found.data, next_cursor=found.next_cursor, first_page=not cursor)
    return render(request, "events.html", context, signed_in=user)


@router.get("/events/retry-failed", response_class=HTMLResponse)
async def bulk_retry_confirm(request: Request, user: SignedInDep, session: SessionDep) -> Response:
    filters = parse_filters(request.query_params, user)
    if filters.errors:
        return redirect(f"/console/events?{filters.query}")
    counted = await bulk.count_failed(session, filters.events, user.principal.tenant_id)
    return render(
        request, "events_retry.html", {"filters": filters, "counted": counted}, signed_in=user
    )


@router.post("/events/retry-failed", response_class=HTMLResponse)
async def bulk_retry(
    user: SignedInDep, session: SessionDep, dispatcher: DispatcherDep, form: CheckedFormDep
) -> Response:
    filters = parse_filters(form, user)
    if filters.errors:
        return redirect(f"/console/events?{filters.query}")
    done = await bulk.retry_failed(session, dispatcher, filters.events, user.principal.tenant_id)
    progress = {
        "at": rfc3339(done.at) or "",
        "requeued": str(done.requeued),
        "more": "1" if done.more_left else "",
    }
    query = urlencode({**{k: v for k, v in filters.values.items() if v}, **progress})
    return redirect(f"/console/events/retry-failed/progress?{query}")


@router.get("/events/retry-failed/progress", response_class=HTMLResponse)
async def bulk_retry_progress(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    at: Annotated[str, Query(max_length=64)] = "",
    requeued: Annotated[int, Query(ge=0)] = 0,
    more: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    filters = parse_filters(request.query_params, user)
    started = _time({"at": at}, "at", filters.errors)
    if filters.errors or started is None:
        return redirect(f"/console/events?{filters.query}")
    scope = user.principal.tenant_id
    progress = await bulk.retry_progress(session, filters.events, started, scope)
    return render(
        request,
        "events_progress.html",
        {
            "filters": filters,
            "progress": progress,
            "requeued": requeued,
            "more": bool(more),
            "limit": bulk.MAX_PER_REQUEST,
            "live_url": str(request.url.path) + "?" + str(request.url.query),
        },
        signed_in=user,
    )


@router.get("/events/{event_id}", response_class=HTMLResponse)
async def event_page(
    request: Request,
    event_id: str,
    user: SignedInDep,
    session: SessionDep,
    retried: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    scope = user.principal.tenant_id
    event = await get_event_detail(session, event_id, scope)
    deliveries = await event_deliveries(session, event_id, scope)
    return render(
        request,
        "event.html",
        {
            "event": event,
            "payload": json.dumps(event["data"], indent=2, ensure_ascii=False),
            "previous_payload": (
                json.dumps(event["previous_data"], indent=2, ensure_ascii=False)
                if event["previous_data"] is not None
                else None
            ),
            "deliveries": deliveries,
            "retried": retried if any(d["id"] == retried for d in deliveries) else "",
        },
        signed_in=user,
    )


@router.get("/deliveries/{delivery_id}", response_class=HTMLResponse)
async def delivery_page(
    request: Request,
    delivery_id: str,
    user: SignedInDep,
    session: SessionDep,
    retried: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    delivery = await get_delivery_with_attempts(session, delivery_id, user.principal.tenant_id)
    return render(
        request,
        "delivery.html",
        {"delivery": delivery, "retried": retried == delivery_id},
        signed_in=user,
    )


@router.post("/deliveries/{delivery_id}/retry")
async def retry(
    delivery_id: str,
    user: SignedInDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
    form: CheckedFormDep,
) -> Response:
    """The API's retry (`POST /v1/deliveries/{id}/retry`), then back to the page it came from."""
    await retry_delivery(session, dispatcher, delivery_id, user.principal.tenant_id)
    back = safe_next(form.get("next"))
    if back == "/console":
        back = f"/console/deliveries/{delivery_id}"
    joiner = "&" if "?" in back else "?"
    return redirect(f"{back}{joiner}{urlencode({'retried': delivery_id})}")
