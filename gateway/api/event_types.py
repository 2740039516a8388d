"""`/v1/event-types`: the event-type catalogue. Every key reads it (a tenant's endpoints
subscribe to its types); only unscoped (admin) keys change it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from gateway.api.deps import JSON_BODY, Limit, PrincipalDep, SessionDep
from gateway.api.schemas import Page, error_responses
from gateway.outbound import catalogue as service
from gateway.outbound import dataschema
from gateway.outbound.catalogue_schemas import (
    EventTypeCreate,
    EventTypeOut,
    EventTypesImported,
    EventTypeUpdate,
    OpenAPIDocument,
)
from gateway.validation import EVENT_TYPE_PATTERN

router = APIRouter(prefix="/v1/event-types", tags=["event types"])


async def _admin_only(principal: PrincipalDep) -> None:
    principal.require_admin()


ADMIN = [Depends(_admin_only)]
NamePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=EVENT_TYPE_PATTERN,
        description="The event type's name (`invoice.paid`)",
    ),
]
NameCursor = Annotated[
    str | None,
    Query(
        max_length=255,
        pattern=EVENT_TYPE_PATTERN,
        description="`next_cursor` of the previous page",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EventTypeOut,
    dependencies=[*JSON_BODY, *ADMIN],
    responses=error_responses(403, 409, 413, 415),
    response_description="Added to the catalogue",
)
async def create_event_type(body: EventTypeCreate, session: SessionDep) -> dict[str, object]:
    """Add a type: events of it are then checked against its schema when published."""
    row = await service.create_event_type(session, body)
    await session.commit()
    dataschema.forget([row.name])  # this process's publishes see it at once
    return service.event_type_out(row)


@router.get(
    "",
    response_model=Page[EventTypeOut],
    response_description="A page of event types, by name",
)
async def list_event_types(
    session: SessionDep,
    limit: Limit = 50,
    cursor: NameCursor = None,
    include_archived: Annotated[
        bool, Query(description="Archived types too (left out: only the others)")
    ] = False,
) -> dict[str, object]:
    """The catalogue, in the order of the names (not newest first: names are its keys)."""
    return (await service.list_event_types(session, limit, cursor, include_archived)).body()


@router.post(
    "/import",
    response_model=EventTypesImported,
    dependencies=[*JSON_BODY, *ADMIN],
    responses=error_responses(403, 413, 415),
    response_description="The types created and updated",
)
async def import_event_types(body: OpenAPIDocument, session: SessionDep) -> dict[str, list[str]]:
    """Create or update a type from each entry of an OpenAPI 3.1 document's `webhooks`,
    with its request body's schema and examples; all or nothing."""
    result = await service.import_openapi(session, body.model_dump())
    await session.commit()
    dataschema.forget([*result["created"], *result["updated"]])
    return result


@router.get(
    "/{name}",
    response_model=EventTypeOut,
    responses=error_responses(404),
    response_description="The event type, archived or not",
)
async def get_event_type(name: NamePath, session: SessionDep) -> dict[str, object]:
    return service.event_type_out(await service.get_event_type(session, name))


@router.patch(
    "/{name}",
    response_model=EventTypeOut,
    dependencies=[*JSON_BODY, *ADMIN],
    responses=error_responses(403, 404, 413, 415),
    response_description="The event type as changed",
)
async def update_event_type(
    name: NamePath, body: EventTypeUpdate, session: SessionDep
) -> dict[str, object]:
    """Change a type; a new schema applies to the next event published."""
    row = await service.update_event_type(session, name, body)
    await session.commit()
    dataschema.forget([name])
    return service.event_type_out(row)


@router.delete(
    "/{name}",
    response_model=EventTypeOut,
    dependencies=ADMIN,
    responses=error_responses(403, 404),
    response_description="Archived",
)
async def archive_event_type(name: NamePath, session: SessionDep) -> dict[str, object]:
    """Archive the type: kept for the events already sent, refused in new endpoints'
    `event_types`, hidden from the list; PATCH `{"archived": false}` brings it back."""
    row = await service.archive_event_type(session, name)
    await session.commit()
    dataschema.forget([name])
    return service.event_type_out(row)
