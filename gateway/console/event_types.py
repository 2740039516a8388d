"""The event-type catalogue: each type with its description, schema and examples. Read
only (types are added with the API or `gateway event-types import`); every signed-in
key may read it, as in the API."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from gateway.api.deps import SessionDep
from gateway.console.web import SignedInDep, render, templates
from gateway.outbound import catalogue as service
from gateway.timeutil import rfc3339
from gateway.validation import EVENT_TYPE_PATTERN

router = APIRouter(prefix="/console", include_in_schema=False)
templates.env.filters.setdefault("rfc3339", rfc3339)

PAGE_SIZE = 100
_NAME = re.compile(EVENT_TYPE_PATTERN)


def pretty_json(value: Any) -> str:
    """JSON to read: indented, keys as written (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


templates.env.filters.setdefault("pretty_json", pretty_json)


@router.get("/event-types", response_class=HTMLResponse)
async def event_types_list(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    cursor: Annotated[str, Query(max_length=255)] = "",
    archived: Annotated[bool, Query()] = False,
) -> Response:
    found = await service.list_event_types(
        session, PAGE_SIZE, cursor if _NAME.match(cursor) else None, include_archived=archived
    )
    return render(
        request,
        "event_types.html",
        {
            "types": found.data,
            "next_cursor": found.next_cursor,
            "first_page": not cursor,
            "archived": archived,
        },
        signed_in=user,
    )


@router.get("/event-types/{name}", response_class=HTMLResponse)
async def event_type_page(
    request: Request, name: str, user: SignedInDep, session: SessionDep
) -> Response:
    event_type = service.event_type_out(await service.get_event_type(session, name))
    return render(request, "event_type.html", {"type": event_type}, signed_in=user)
