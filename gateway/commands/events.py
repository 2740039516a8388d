"""`gateway events publish|list`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    Cursor,
    JsonFlag,
    Limit,
    fail,
    input_error,
    load_settings,
    note,
)
from gateway.commands.dispatching import CommandDispatcher
from gateway.commands.output import dump, print_json, print_page, print_record
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Publish and list events (directly in the database).", no_args_is_help=True)

COLUMNS = {
    "id": "id",
    "type": "type",
    "tenant_id": "tenant",
    "source_id": "source",
    "created_at": "created",
}
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
    from pydantic import ValidationError

    from gateway.outbound.fanout import publish
    from gateway.outbound.reads import published_out
    from gateway.outbound.schemas import EventCreate, EventPublished

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
            published = await publish(
                session,
                dispatcher,
                event_type=body.type,
                data=body.data,
                tenant_id=body.tenant_id,
                schema_check=settings.event_types,
            )
        return dump(EventPublished, published_out(published))

    event = run(settings, work, OPTIONS)
    count = event["deliveries"]
    if count:
        note(
            f"[green]published {event['id']}[/green] to {count} "
            f"endpoint{'s' if count != 1 else ''}; {dispatcher.summary()}"
        )
    else:
        note(
            f"[green]published {event['id']}[/green]; no enabled endpoint subscribes to it, "
            "so nothing is delivered"
        )
    if as_json:
        print_json(event)
    else:
        print_record(event, {**COLUMNS, "deliveries": "deliveries", "data": "data"})


@app.command("list")
def events_list(
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only events of this type.")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    """List events, newest first."""
    from gateway.outbound.reads import list_events
    from gateway.outbound.schemas import EventOut

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_events(
            session, event_type=event_type, tenant_id=tenant, limit=limit, cursor=cursor
        )
        return [dump(EventOut, e) for e in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "events")
