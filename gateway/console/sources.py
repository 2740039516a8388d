"""Sources: the inbound URLs, with the ingest URL to give a provider, what came in
through each and what was refused. Sources are the operator's: a tenant's key is not
allowed here, as in the API."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway.api.deps import SessionDep
from gateway.console.web import SignedInDep, render, templates
from gateway.inbound import sources as service
from gateway.inbound.refusals import recent_refusals
from gateway.outbound.reads import list_events
from gateway.timeutil import rfc3339

router = APIRouter(prefix="/console", include_in_schema=False)
templates.env.filters.setdefault("rfc3339", rfc3339)

PAGE_SIZE = 50
RECENT = 20
_CURSOR = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def ingest_url(request: Request, path: str) -> str:
    """Where a provider posts: on GATEWAY_PUBLIC_URL when set (behind a proxy the
    request's own address is often not the public one), else this request's origin."""
    public = request.app.state.settings.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base + path


@router.get("/sources", response_class=HTMLResponse)
async def sources_list(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    cursor: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    user.principal.require_admin()
    found = await service.list_sources(
        session, PAGE_SIZE, cursor if _CURSOR.match(cursor) else None
    )
    return render(
        request,
        "sources.html",
        {"sources": found.data, "next_cursor": found.next_cursor, "first_page": not cursor},
        signed_in=user,
    )


@router.get("/sources/{source_id}", response_class=HTMLResponse)
async def source_page(
    request: Request, source_id: str, user: SignedInDep, session: SessionDep
) -> Response:
    user.principal.require_admin()
    source = service.source_out(await service.get_source(session, source_id))
    received = await list_events(session, source_id=source_id, limit=RECENT)
    return render(
        request,
        "source.html",
        {
            "source": source,
            "ingest_url": ingest_url(request, str(source["ingest_path"])),
            "received": received.data,
            "refusals": await recent_refusals(session, source_id, limit=RECENT),
        },
        signed_in=user,
    )
