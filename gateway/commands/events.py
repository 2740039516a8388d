"""`gateway events publish|list`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from gateway.commands.common import (
    EXIT_USAGE,
    CommandDispatcher,
    Cursor,
    JsonFlag,
    Limit,
    dump,
    fail,
    input_error,
    load_settings,
    note,
    print_json,
    print_page,
    print_record,
    run,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Publish and list events (directly in the database).",
                  no_args_is_help=True)

COLUMNS = {"id": "id", "type": "type", "tenant_id": "tenant", "source_id": "source",
           "created_at": "created"}
OPTIONS = {"type": "TYPE", "data": "--data", "tenant_id": "--tenant"}

Tenant = Annotated[str | None, typer.Option(help="The tenant the event belongs to.")]


@app.command("publish")
def events_publish(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="The event type.")],
    data: Annotated[str, typer.Option(help="The payload: a JSON object.")],
    tenant: Tenant = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish an event to every endpoint subscribed to TYPE (of the tenant, if given)."""
    from gateway.api.events import published_out
    from gateway.api.schemas import EventCreate, EventPublished
    from gateway.outbound.fanout import publish

    settings = load_settings()
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        fail(f"--data is not valid JSON: {exc}", EXIT_USAGE)
    try:
        body = EventCreate(type=event_type, data=parsed, tenant_id=tenant)
    except ValidationError as exc:
        input_error(exc, OPTIONS)
    dispatcher = CommandDispatcher(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        async with dispatcher:
            published = await publish(session, dispatcher, event_type=body.type,
                                      data=body.data, tenant_id=body.tenant_id)
        return dump(EventPublished, published_out(published))

    event = run(settings, work, OPTIONS)
    count = event["deliveries"]
    if count:
        note(f"[green]published {event['id']}[/green] to {count} "
             f"endpoint{'s' if count != 1 else ''}; {dispatcher.summary()}")
    else:
        note(f"[green]published {event['id']}[/green]; no enabled endpoint subscribes to it, "
             "so nothing is delivered")
    if as_json:
        print_json(event)
    else:
        print_record(event, {**COLUMNS, "deliveries": "deliveries", "data": "data"})


@app.command("list")
def events_list(
    event_type: Annotated[str | None, typer.Option("--type", help="Only events of this type.")
                          ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    """List events, newest first."""
    from sqlalchemy import select
    from sqlmodel import col

    from gateway.api.events import event_out
    from gateway.api.schemas import EventOut
    from gateway.store.models import Event
    from gateway.store.queries import page

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        query = select(Event)
        if event_type is not None:
            query = query.where(col(Event.type) == event_type)
        if tenant is not None:
            query = query.where(col(Event.tenant_id) == tenant)
        rows, next_cursor = await page(session, query, Event.id, limit, cursor)
        return [dump(EventOut, event_out(e)) for e in rows], next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "events")
